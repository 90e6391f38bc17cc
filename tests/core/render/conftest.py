"""Shared meshes and renderers for the render tests (OpenGL via EGL; skipped where none exists)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from artalk_core.errors import RenderError
from artalk_core.render.mesh import create_renderer
from tests.meshes import synthetic_head


@pytest.fixture(scope="session")
def head() -> tuple[np.ndarray, np.ndarray]:
    """A ~1.9k-vertex head: ellipsoid (0.09, 0.12, 0.1) m at the origin, nose on +z."""
    return synthetic_head(30, 64)


@pytest.fixture(scope="session")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 0.1 m at the origin (no nose)."""
    return synthetic_head(48, 96, radii=(0.1, 0.1, 0.1), nose=0.0)


@pytest.fixture(scope="session")
def gl_available() -> None:
    try:
        r = create_renderer(np.array([[0, 1, 2]]), size=16)
    except RenderError as e:  # no EGL on this machine: the RenderError test still runs
        pytest.skip(f"no offscreen OpenGL here: {e}")
    r.close()


@pytest.fixture(scope="module")
def head_renderer(head, gl_available) -> Iterator:
    r = create_renderer(head[1])
    yield r
    r.close()
