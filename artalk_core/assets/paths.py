"""Where the released assets are: the reference tool's folder layout.

``<assets>/ARTalk_wav2vec.pt`` (or ``ARTalk_mimi.pt``), ``<assets>/config.json``, ``<assets>/style_motion/*.pt`` and the
licensed ``<assets>/FLAME_with_eye.pt``. The folder is ``--assets DIR``, else ``$ARTALK_ASSETS``,
else ``./assets``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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
AVATAR_HINT = "get it with `artalk assets download --include-optional`"
LICENCE_HINT = ("the FLAME head model needs the FLAME licence: register at https://flame.is.tue.mpg.de and "
                f"download it (ARTalk's {FLAME_NAME} or FLAME 2020/2023 generic_model.pkl)")
DOWNLOAD_HINT = (f"download the released files from https://huggingface.co/{HF_REPO} "
                 f"(or run `artalk assets download`) into the assets folder")


def assets_dir(assets: PathLike | None = None) -> Path:
    """The asset folder: ``assets``, else ``$ARTALK_ASSETS``, else ``./assets``."""
    if assets is not None:
        return Path(assets)
    env = os.environ.get(ASSETS_ENV)
    return Path(env) if env else Path("assets")


@dataclass(frozen=True)
class Asset:
    """One file of the asset folder that a flag can name instead."""

    flag: str
    """The flag that names another file (``--checkpoint``)."""
    name: str
    """Its place in the asset folder (``GAGAvatar/tracked.pt``); the checkpoint's depends on the config."""
    what: str
    """What it is, in messages."""
    hint: str
    """How to get it, in messages."""
    hint_when_given: bool = False
    """Whether the hint applies to a file the flag named too (the FLAME licence does)."""


ASSETS: dict[str, Asset] = {a.flag: a for a in (
    Asset("--checkpoint", CHECKPOINT_NAME, "model checkpoint",
          f"{DOWNLOAD_HINT}, pass --checkpoint FILE, or use --engine energy for a weight-free preview"),
    Asset("--model-config", CONFIG_NAME, "model config", "without it the released config is used"),
    Asset("--flame", FLAME_NAME, "FLAME head", LICENCE_HINT, hint_when_given=True),
    Asset("--tracked", TRACKED_FILE, "tracked avatars file",
          f"{AVATAR_HINT}, or pass --tracked FILE (or --avatar PATH to a single tracked entry)"),
    Asset("--avatar-checkpoint", AVATAR_CHECKPOINT_FILE, "avatar checkpoint",
          f"{AVATAR_HINT}, or pass --avatar-checkpoint FILE"),
)}
"""Every asset file the tools read, by the flag that overrides it: the one table of the folder's layout."""

NOT_RELEASED_HINT = ("{name} (the Mimi audio encoder variant, named by the reference's loading code) is not "
                     "released yet, so it cannot be downloaded: pass --checkpoint FILE with your own Mimi "
                     "checkpoint, or use the released wav2vec2 model (AR_CONFIG.AUDIO_ENCODER wav2vec)")


def _where(assets: PathLike | None) -> str:
    if assets is not None:
        return "--assets"
    return f"${ASSETS_ENV}" if os.environ.get(ASSETS_ENV) else "the default ./assets"


def asset_default(flag: str, assets: PathLike | None = None, *, model_config: PathLike | None = None) -> Path:
    """Where the asset of ``flag`` sits in the asset folder (whether or not it is there)."""
    name = checkpoint_name(model_config, assets) if flag == "--checkpoint" else ASSETS[flag].name
    return assets_dir(assets) / name


def find_asset(flag: str, given: PathLike | None, assets: PathLike | None = None, *, required: bool = True,
               model_config: PathLike | None = None) -> Path | None:
    """The one asset lookup: the file ``given`` with ``flag`` (it must exist), else its place in the
    asset folder (:func:`asset_default`). A missing asset is an AssetError naming where it was
    looked for and how to get it; unless ``required``, a missing default is None (the model config:
    the released one is built in; the FLAME head: the stand-in)."""
    asset = ASSETS[flag]
    if given is not None:
        p = Path(given)
        if not p.is_file():
            hint = f"; {asset.hint}" if asset.hint_when_given else ""
            raise AssetError(f"{asset.what} not found: {p.resolve()} (given with {flag}){hint}")
        return p
    p = asset_default(flag, assets, model_config=model_config)
    if p.is_file():
        return p
    if not required:
        return None
    hint = NOT_RELEASED_HINT.format(name=p.name) if p.name == CHECKPOINT_NAMES["mimi"] else asset.hint
    raise AssetError(f"{asset.what} {p.name} not found: looked for {p.resolve()} (asset folder from "
                     f"{_where(assets)}); {hint}")


def asset_file(flag: str, given: PathLike | None, assets: PathLike | None = None, *,
               model_config: PathLike | None = None) -> Path:
    """:func:`find_asset` of a required asset (never None)."""
    path = find_asset(flag, given, assets, model_config=model_config)
    assert path is not None
    return path


def asset_inputs(assets: PathLike | None, given: Mapping[str, PathLike | None]) -> dict[str, PathLike]:
    """The asset files a step reads, by flag: the file given with the flag, else its place in the
    asset folder (for :func:`~artalk_core.fileio.check_not_input`: ``-o assets/ARTalk_wav2vec.pt``
    must not replace the checkpoint being used). The default checkpoint's name follows the
    ``--model-config`` given with it (``ARTalk_mimi.pt`` for a Mimi config)."""
    config = given.get("--model-config")
    return {flag: value if value is not None else asset_default(flag, assets, model_config=config)
            for flag, value in given.items()}


def checkpoint_path(checkpoint: PathLike | None = None, assets: PathLike | None = None, *,
                    model_config: PathLike | None = None) -> Path:
    """The model weights: ``checkpoint`` if given, else ``<assets>/ARTalk_<encoder>.pt`` as the reference
    names them, the encoder being the model config's ``AR_CONFIG.AUDIO_ENCODER`` (``model_config``, else
    ``<assets>/config.json``; ``wav2vec`` when it names none); AssetError if absent."""
    return asset_file("--checkpoint", checkpoint, assets, model_config=model_config)


def checkpoint_name(model_config: PathLike | None = None, assets: PathLike | None = None) -> str:
    """``ARTalk_<encoder>.pt`` for the audio encoder the model config names (``model_config``, else
    ``<assets>/config.json``; ``wav2vec`` when there is none or it names none). ConfigError if unreadable."""
    from artalk_core.model.config import DEFAULT_AUDIO_ENCODER, ModelConfig

    path = config_path(model_config, assets)
    return CHECKPOINT_NAMES[ModelConfig.from_file(path).audio_encoder if path is not None else DEFAULT_AUDIO_ENCODER]


def config_path(model_config: PathLike | None = None, assets: PathLike | None = None) -> Path | None:
    """The model config JSON: ``model_config`` if given, else ``<assets>/config.json`` if present, else None
    (meaning: the released config built into the package)."""
    return find_asset("--model-config", model_config, assets, required=False)


def style_dir(assets: PathLike | None = None) -> Path:
    return assets_dir(assets) / STYLE_DIR


def available_styles(assets: PathLike | None = None) -> list[str]:
    """Names of the style files ``<assets>/style_motion/*.pt``, sorted."""
    folder = style_dir(assets)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.pt") if p.is_file())
