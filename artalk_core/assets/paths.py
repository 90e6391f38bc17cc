"""Where the released assets are: the reference tool's folder layout.

``<assets>/ARTalk_wav2vec.pt`` (or ``ARTalk_mimi.pt``), ``<assets>/config.json``, ``<assets>/style_motion/*.pt`` and the
licensed ``<assets>/FLAME_with_eye.pt``. The folder is ``--assets DIR``, else ``$ARTALK_ASSETS``,
else ``./assets``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from artalk_core.constants import (
    ASSETS_ENV,
    AVATAR_CHECKPOINT_FILE,
    CHECKPOINT_NAME,
    CHECKPOINT_NAMES,
    CONFIG_NAME,
    FLAME_NAME,
    STYLE_DIR,
    TRACKED_FILE,
)
from artalk_core.errors import AssetError
from artalk_core.fileio import PathLike

HF_REPO = "xg-chu/ARTalk"
DOWNLOAD_HINT = (f"download the released files from https://huggingface.co/{HF_REPO} "
                 f"(or run `artalk assets download`) into the assets folder")


def assets_dir(assets: PathLike | None = None) -> Path:
    """The asset folder: ``assets``, else ``$ARTALK_ASSETS``, else ``./assets``."""
    if assets is not None:
        return Path(assets)
    env = os.environ.get(ASSETS_ENV)
    return Path(env) if env else Path("assets")


ASSET_FLAGS: dict[str, str] = {"--checkpoint": CHECKPOINT_NAME, "--model-config": CONFIG_NAME, "--flame": FLAME_NAME,
                               "--tracked": TRACKED_FILE, "--avatar-checkpoint": AVATAR_CHECKPOINT_FILE}
"""The asset file each flag overrides, relative to the asset folder."""


def asset_inputs(assets: PathLike | None, given: Mapping[str, PathLike | None]) -> dict[str, PathLike]:
    """The asset files a step reads, by flag (keys of :data:`ASSET_FLAGS`): the file given with the
    flag, else its default in the asset folder (for :func:`~artalk_core.fileio.check_not_input`:
    ``-o assets/ARTalk_wav2vec.pt`` must not replace the checkpoint being used)."""
    folder = assets_dir(assets)
    return {flag: value if value is not None else folder / ASSET_FLAGS[flag] for flag, value in given.items()}


def _where(assets: PathLike | None) -> str:
    if assets is not None:
        return "--assets"
    return f"${ASSETS_ENV}" if os.environ.get(ASSETS_ENV) else "the default ./assets"


def asset_file(given: PathLike | None, name: str, assets: PathLike | None, *, what: str, flag: str,
               hint: str) -> Path:
    """An asset file: ``given`` (from ``flag``) if set, else ``<assets>/<name>``.

    AssetError if it is not a file, naming where it was looked for and ``hint`` (how to get it).
    """
    if given is not None:
        p = Path(given)
        if not p.is_file():
            raise AssetError(f"{what} not found: {p} (given with {flag})")
        return p
    p = assets_dir(assets) / name
    if not p.is_file():
        raise AssetError(f"{what} {name} not found: looked for {p.resolve()} (asset folder from {_where(assets)}); "
                         f"{hint}")
    return p


NOT_RELEASED_HINT = ("{name} (the Mimi audio encoder variant, named by the reference's loading code) is not "
                     "released yet, so it cannot be downloaded: pass --checkpoint FILE with your own Mimi "
                     "checkpoint, or use the released wav2vec2 model (AR_CONFIG.AUDIO_ENCODER wav2vec)")


def checkpoint_path(checkpoint: PathLike | None = None, assets: PathLike | None = None, *,
                    model_config: PathLike | None = None) -> Path:
    """The model weights: ``checkpoint`` if given, else ``<assets>/ARTalk_<encoder>.pt`` as the reference
    names them, the encoder being the model config's ``AR_CONFIG.AUDIO_ENCODER`` (``model_config``, else
    ``<assets>/config.json``; ``wav2vec`` when it names none); AssetError if absent."""
    name = checkpoint_name(model_config, assets) if checkpoint is None else ""
    hint = (NOT_RELEASED_HINT.format(name=name) if name == CHECKPOINT_NAMES["mimi"] else
            f"{DOWNLOAD_HINT}, pass --checkpoint FILE, or use --engine energy for a weight-free preview")
    return asset_file(checkpoint, name, assets, what="model checkpoint", flag="--checkpoint", hint=hint)


def checkpoint_name(model_config: PathLike | None = None, assets: PathLike | None = None) -> str:
    """``ARTalk_<encoder>.pt`` for the audio encoder the model config names (``model_config``, else
    ``<assets>/config.json``; ``wav2vec`` when there is none or it names none). ConfigError if unreadable."""
    from artalk_core.model.config import DEFAULT_AUDIO_ENCODER, ModelConfig

    path = config_path(model_config, assets)
    return CHECKPOINT_NAMES[ModelConfig.from_file(path).audio_encoder if path is not None else DEFAULT_AUDIO_ENCODER]


def config_path(model_config: PathLike | None = None, assets: PathLike | None = None) -> Path | None:
    """The model config JSON: ``model_config`` if given, else ``<assets>/config.json`` if present, else None
    (meaning: the released config built into the package)."""
    if model_config is not None:
        p = Path(model_config)
        if not p.is_file():
            raise AssetError(f"model config not found: {p} (given with --model-config)")
        return p
    p = assets_dir(assets) / CONFIG_NAME
    return p if p.is_file() else None


def style_dir(assets: PathLike | None = None) -> Path:
    return assets_dir(assets) / STYLE_DIR


def available_styles(assets: PathLike | None = None) -> list[str]:
    """Names of the style files ``<assets>/style_motion/*.pt``, sorted."""
    folder = style_dir(assets)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.pt") if p.is_file())
