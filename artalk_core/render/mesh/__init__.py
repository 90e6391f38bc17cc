"""Mesh rendering: the reference ARTalk mesh look (pytorch3d Phong) as fast offscreen OpenGL.

``create_renderer(faces)`` returns a renderer whose ``render(vertices)`` gives one [H,W,3] uint8
frame. Backends: ``gl`` (moderngl + EGL, default) and ``pytorch3d`` (only where pytorch3d is
installed; the reference implementation itself).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from artalk_core.colors import parse_color
from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR, MESH_RENDERERS
from artalk_core.errors import InputError

BACKENDS = MESH_RENDERERS



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
    bg = parse_color(background, "background colour")
    fg = parse_color(color, "mesh colour")
    if backend == "gl":
        from artalk_core.render.mesh.gl import GLMeshRenderer

        return GLMeshRenderer(f, size=int(size), background=bg, color=fg, device=device)
    if backend == "pytorch3d":
        from artalk_core.render.mesh.pytorch3d import Pytorch3DMeshRenderer

        return Pytorch3DMeshRenderer(f, size=int(size), background=bg, color=fg, device=device)
    raise InputError(f"unknown render backend {backend!r}: choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MeshRenderer", "create_renderer", "parse_color"]
