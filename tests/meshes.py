"""Test meshes: a synthetic head the size of FLAME's, for the renderer tests and benchmarks."""

from __future__ import annotations

import numpy as np

from artalk_core.errors import InputError


def synthetic_head(n_lat: int = 50, n_lon: int = 100, *, radii: tuple[float, float, float] = (0.09, 0.12, 0.1),
                   nose: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in head for checks and benchmarks: an ellipsoid at the origin facing +z, with a nose.

    A UV sphere with ``n_lat`` rings and ``n_lon`` segments scaled by ``radii`` (metres, FLAME-like
    size) and a Gaussian bump of height ``nose`` at the front (+z). Returns vertices
    [(n_lat-1)*n_lon+2, 3] float32 and outward-facing (counter-clockwise) faces [2*n_lon*(n_lat-1), 3] int64.
    The defaults give 4,902 vertices and 9,800 faces, about a FLAME head's size.
    """
    if n_lat < 2 or n_lon < 3:
        raise InputError("a synthetic head needs n_lat >= 2 and n_lon >= 3")
    theta = np.pi * np.arange(1, n_lat) / n_lat  # polar angle from +y
    phi = 2.0 * np.pi * np.arange(n_lon) / n_lon  # 0 at +z, growing towards +x
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack([st * np.sin(phi), np.broadcast_to(ct, (n_lat - 1, n_lon)), st * np.cos(phi)], axis=-1)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], ring.reshape(-1, 3), [[0.0, -1.0, 0.0]]])
    verts = unit * np.asarray(radii)
    # nose: push the front outwards along +z around (x, y) = (0, 0)
    bump = np.exp(-((verts[:, 0] / 0.02) ** 2 + (verts[:, 1] / 0.03) ** 2)) * (unit[:, 2] > 0)
    verts[:, 2] += nose * bump
    top, bottom = 0, len(unit) - 1
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces = [np.stack([np.full(n_lon, top), 1 + jn, 1 + j], axis=1)]
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon + j, 1 + i * n_lon + jn
        c, d = a + n_lon, b + n_lon
        faces += [np.stack([a, b, c], axis=1), np.stack([b, d, c], axis=1)]
    last = 1 + (n_lat - 2) * n_lon
    faces.append(np.stack([last + j, last + jn, np.full(n_lon, bottom)], axis=1))
    # the rings above run clockwise seen from outside: reverse each triangle to face outwards
    return verts.astype(np.float32), np.ascontiguousarray(np.concatenate(faces)[:, ::-1]).astype(np.int64)
