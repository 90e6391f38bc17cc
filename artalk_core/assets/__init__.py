"""The released asset files: where they are (:mod:`.paths`), what they are and whether they check out
(:mod:`.manifest`: the release manifest, the lock file, verify, list), and fetching them from the Hugging
Face hub (:mod:`.download`, imported on use: ``from artalk_core.assets.download import download``).
"""

from __future__ import annotations

from artalk_core.assets.manifest import (
    FLAME_NOTICE,
    LOCK_NAME,
    MANIFEST_FORMAT,
    MANIFEST_PATH,
    MISSING,
    OK,
    PARTIAL_DIR,
    UNVERIFIED,
    WRONG_HASH,
    WRONG_SIZE,
    ReleasedFile,
    VerifyResult,
    flame_notice,
    flame_path,
    list_assets,
    load_manifest,
    raise_for_problems,
    verify,
)
from artalk_core.assets.paths import (
    DOWNLOAD_HINT,
    HF_REPO,
    asset_inputs,
    assets_dir,
    available_styles,
    checkpoint_name,
    checkpoint_path,
    config_path,
    style_dir,
)

__all__ = ["DOWNLOAD_HINT", "HF_REPO", "asset_inputs", "assets_dir", "available_styles", "checkpoint_name", "checkpoint_path",
           "config_path",
           "style_dir", "FLAME_NOTICE", "LOCK_NAME", "MANIFEST_FORMAT", "MANIFEST_PATH", "MISSING", "OK",
           "PARTIAL_DIR", "UNVERIFIED", "WRONG_HASH", "WRONG_SIZE", "ReleasedFile", "VerifyResult", "flame_notice",
           "flame_path", "list_assets", "load_manifest", "raise_for_problems", "verify"]
