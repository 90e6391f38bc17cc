"""Where the released assets are: the reference tool's folder layout.

``<assets>/ARTalk_wav2vec.pt``, ``<assets>/config.json``, ``<assets>/style_motion/*.pt`` and the
licensed ``<assets>/FLAME_with_eye.pt``. The folder is ``--assets DIR``, else ``$ARTALK_ASSETS``,
else ``./assets``.
"""

from __future__ import annotations

import os
from pathlib import Path

from artalk_core.constants import ASSETS_ENV, CHECKPOINT_NAME, CONFIG_NAME, STYLE_DIR
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


def _where(assets: PathLike | None) -> str:
    if assets is not None:
        return "--assets"
    return f"${ASSETS_ENV}" if os.environ.get(ASSETS_ENV) else "the default ./assets"


def checkpoint_path(checkpoint: PathLike | None = None, assets: PathLike | None = None) -> Path:
    """The model weights: ``checkpoint`` if given, else ``<assets>/ARTalk_wav2vec.pt``; AssetError if absent."""
    if checkpoint is not None:
        p = Path(checkpoint)
        if not p.is_file():
            raise AssetError(f"checkpoint not found: {p} (given with --checkpoint)")
        return p
    folder = assets_dir(assets)
    p = folder / CHECKPOINT_NAME
    if not p.is_file():
        raise AssetError(
            f"model checkpoint {CHECKPOINT_NAME} not found: looked for {p.resolve()} "
            f"(asset folder from {_where(assets)}); {DOWNLOAD_HINT}, pass --checkpoint FILE, "
            f"or use --engine energy for a weight-free preview")
    return p


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
