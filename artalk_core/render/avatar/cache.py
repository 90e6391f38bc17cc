"""On-disk cache of built avatar Gaussians (the ~780 GFLOP source path runs once per avatar).

One safetensors file per (checkpoint, tracked entry, network sizes), named by the sha256 of the
three; written atomically, so an interrupted run never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from artalk_core.errors import OutputError, warn
from artalk_core.fileio import PathLike, atomic_output, provenance

if TYPE_CHECKING:
    from torch import Tensor

    from artalk_core.render.avatar.gaussians import Gaussians
    from artalk_core.render.avatar.model import GAGAvatarNet

CACHE_ENV: str = "ARTALK_CACHE"
CACHE_FORMAT: int = 1
"""Bump when the cached contents change meaning (the key includes it)."""


def default_cache_dir() -> Path:
    """``$ARTALK_CACHE`` (as is) if set, else ``$XDG_CACHE_HOME/artalk/avatars``, else ``~/.cache/artalk/avatars``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "artalk" / "avatars"


def cache_key(*, checkpoint_sha256: str, entry_sha256: str, config: dict) -> str:
    """Hex sha256 naming the cache file of one avatar built by one checkpoint with one set of sizes."""
    ident = json.dumps({"format": CACHE_FORMAT, "checkpoint": checkpoint_sha256, "entry": entry_sha256,
                        "config": config}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()


def _read(path: Path, n_global: int, n_total: int, channels: int) -> dict[str, Tensor] | None:
    """The cached tensors, or None when the file is missing, unreadable or of the wrong shape."""
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception:  # a damaged file is rebuilt, never trusted
        return None
    want = {"xyz": 3, "colors": channels, "opacities": 1, "scales": 3, "rotations": 4}
    for name, width in want.items():
        t = tensors.get(name)
        if t is None or tuple(t.shape) != (n_total, width) or not t.is_floating_point():
            return None
    if not bool(tensors["xyz"][:n_global].eq(0).all()):
        return None
    return {k: tensors[k] for k in want}


def _write(path: Path, g: Gaussians, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in g.tensors().items()}, str(tmp), metadata=meta)


def cached_gaussians(net: GAGAvatarNet, *, image: Tensor, transform_matrix: Tensor, checkpoint_sha256: str,
                     entry_sha256: str, cache_dir: PathLike | None = None) -> Gaussians:
    """The avatar's Gaussians from the cache, or built by ``net.build_gaussians`` and stored.

    ``image`` [3,512,512] in [0,1] and ``transform_matrix`` [3,4] are the tracked entry's;
    ``entry_sha256`` identifies that entry (its arrays), ``checkpoint_sha256`` the weights. The
    result lives on the net's device. A cache folder that cannot be written is not an error: the
    Gaussians are returned and a warning says why they were not stored.
    """
    from artalk_core.render.avatar.gaussians import Gaussians

    cfg = net.config
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = cache_key(checkpoint_sha256=checkpoint_sha256, entry_sha256=entry_sha256, config=cfg.to_dict())
    path = folder / f"{key}.safetensors"
    hit = _read(path, cfg.n_global, cfg.n_gaussians, cfg.color_channels)
    if hit is not None:
        dev = net.device
        return Gaussians(**{k: v.to(dev).float() for k, v in hit.items()}, n_global=cfg.n_global)
    g = net.build_gaussians(image, transform_matrix)
    meta = provenance("artalk avatar cache", options={"format": CACHE_FORMAT, "n_global": cfg.n_global},
                      inputs={"checkpoint": checkpoint_sha256, "tracked_entry": entry_sha256})
    try:
        _write(path, g, meta)
    except (OSError, OutputError) as exc:
        warn(f"avatar cache not written ({folder}): {exc}")
    return g


__all__ = ["CACHE_ENV", "cache_key", "cached_gaussians", "default_cache_dir"]
