"""Mesh rendering: the reference ARTalk mesh look (pytorch3d Phong) as fast offscreen OpenGL.

``create_renderer(faces)`` returns a renderer whose ``render(vertices)`` gives one [H,W,3] uint8
frame. Backends: ``gl`` (moderngl + EGL, default) and ``pytorch3d`` (only where pytorch3d is
installed; the reference implementation itself).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

import numpy as np

from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import InputError

BACKENDS: tuple[str, ...] = ("gl", "pytorch3d")

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
    "pink": (255, 192, 203),
    "skin": (224, 172, 105),
    "artalk": MESH_COLOR,
}


@runtime_checkable
class MeshRenderer(Protocol):
    """Renders one fixed-topology mesh, frame by frame."""

    device_name: str
    """Human-readable name of what renders (e.g. ``OpenGL: llvmpipe ...``)."""

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """``vertices`` [V,3] float32 world coordinates (metres) -> image [H,W,3] uint8, row 0 = top."""
        ...

    def close(self) -> None:
        """Free the renderer's context and buffers."""
        ...


def parse_color(text: str) -> tuple[int, int, int]:
    """A colour given as ``#rrggbb``, ``#rgb``, a name (``white``) or ``r,g,b`` (0-255) -> (r, g, b)."""
    s = str(text).strip().lower()
    if s in NAMED_COLORS:
        return NAMED_COLORS[s]
    m = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", s)
    if m and (s.startswith("#") or len(s) == 6):
        h = m.group(1)
        if len(h) == 3:
            h = "".join(ch * 2 for ch in h)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    parts = [p.strip() for p in s.replace(" ", ",").split(",") if p.strip()]
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= c <= 255 for c in rgb):
            return rgb[0], rgb[1], rgb[2]
    raise InputError(f"cannot read colour {text!r}: use '#rrggbb', a name such as 'white', or 'r,g,b' with 0-255 values")


def _check_color(value: Any, what: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        return parse_color(value)
    try:
        rgb = tuple(int(c) for c in value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} colour must be three 0-255 integers, got {value!r}") from e
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise InputError(f"{what} colour must be three 0-255 integers, got {value!r}")
    return rgb[0], rgb[1], rgb[2]


def _check_faces(faces: np.ndarray) -> np.ndarray:
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise InputError(f"mesh faces must be a non-empty [F,3] integer array, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise InputError(f"mesh faces must be integers, got {f.dtype}")
    if f.min() < 0:
        raise InputError("mesh faces contain negative vertex indices")
    return f.astype(np.int64)


def create_renderer(faces: np.ndarray, *, backend: str = "gl", size: int = IMAGE_SIZE,
                    background: tuple[int, int, int] | str = BACKGROUND_COLOR,
                    color: tuple[int, int, int] | str = MESH_COLOR, device: str = "auto") -> MeshRenderer:
    """A renderer for meshes with triangle list ``faces`` [F,3] at ``size`` x ``size`` pixels.

    ``backend``: ``gl`` (offscreen OpenGL via EGL) or ``pytorch3d``. ``device``: for ``gl``,
    ``auto`` or ``egl:N``; for ``pytorch3d``, ``auto``, ``cpu`` or a torch device such as ``cuda:0``.
    Raises RenderError when OpenGL is unavailable, DependencyError when pytorch3d is missing.
    """
    f = _check_faces(faces)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= int(size) <= 8192:
        raise InputError(f"image size must be an integer between 16 and 8192 pixels, got {size!r}")
    bg = _check_color(background, "background")
    fg = _check_color(color, "mesh")
    if backend == "gl":
        from artalk_core.render.mesh.gl import GLMeshRenderer

        return GLMeshRenderer(f, size=int(size), background=bg, color=fg, device=device)
    if backend == "pytorch3d":
        from artalk_core.render.mesh.pytorch3d import Pytorch3DMeshRenderer

        return Pytorch3DMeshRenderer(f, size=int(size), background=bg, color=fg, device=device)
    raise InputError(f"unknown render backend {backend!r}: choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MeshRenderer", "create_renderer", "parse_color"]
