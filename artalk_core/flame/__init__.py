"""FLAME head model: loading (reference .pt, official .pkl, bundled stand-in) and skinning of motion.

Heavy imports (torch) happen inside the functions, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from artalk_core.flame.load import load_flame, load_shape, resolve_flame
    from artalk_core.flame.model import FlameModel

__all__ = ["FlameModel", "load_flame", "load_shape", "resolve_flame", "make_standin", "write_standin",
           "load_standin"]


def __getattr__(name: str) -> Any:
    if name == "FlameModel":
        from artalk_core.flame.model import FlameModel

        return FlameModel
    if name in ("load_flame", "load_shape", "resolve_flame"):
        from artalk_core.flame import load

        return getattr(load, name)
    if name in ("make_standin", "write_standin", "load_standin"):
        from artalk_core.flame import standin

        return getattr(standin, name)
    raise AttributeError(f"module 'artalk_core.flame' has no attribute {name!r}")
