"""FLAME head model: loading (reference .pt, official .pkl, bundled stand-in) and skinning of motion.

Importing this package is cheap: torch is imported inside the functions that need it.
"""

from __future__ import annotations

from artalk_core.flame.load import load_flame, load_shape, resolve_flame
from artalk_core.flame.model import FlameModel
from artalk_core.flame.standin import load_standin, make_standin, write_standin

__all__ = ["FlameModel", "load_flame", "load_shape", "load_standin", "make_standin", "resolve_flame",
           "write_standin"]
