"""Camera and shading facts of the reference mesh video, in plain numpy.

The reference renders with pytorch3d: a ``PerspectiveCameras`` with focal length 12 in NDC units,
principal point at the image centre, world-to-view ``view = world @ R + T`` (row vectors) with
``R = diag(-1, 1, -1)``, ``T = (0, 0, 2)``, a point light at (0, 1, 3) and a Phong shader.

pytorch3d's view and NDC spaces have +X pointing LEFT, +Y up and +Z into the screen; image
column 0 is at NDC x = +1 and row 0 at NDC y = +1. With the reference ``R`` a world point
``(x, y, z)`` has view coordinates ``(-x, y, 2 - z)``, so world +x lands on the image's RIGHT,
world +y at the top, and a face looking along +z looks at the camera. Seen from the camera the
subject's own left (+x) is on the viewer's right: a portrait, not a mirror image.

This module holds those facts and the matching OpenGL matrices (column-vector convention), plus
numpy reference implementations of the per-vertex normals and the per-pixel Phong formula that
both the renderer and the tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artalk_core.constants import (
    AMBIENT,
    CAMERA_DISTANCE,
    DIFFUSE,
    FOCAL_NDC,
    LIGHT_POSITION,
    MATERIAL_SPECULAR,
    SHININESS,
    SPECULAR,
)


def _reference_rotation() -> np.ndarray:
    return np.diag([-1.0, 1.0, -1.0])


def _reference_translation() -> np.ndarray:
    return np.array([0.0, 0.0, CAMERA_DISTANCE])


@dataclass(frozen=True)
class Camera:
    """A pytorch3d-style perspective camera (NDC focal length, centred principal point).

    ``rotation`` [3,3] and ``translation`` [3] follow pytorch3d's row-vector convention:
    ``view = world @ rotation + translation``. ``znear``/``zfar`` only bound the OpenGL depth
    range (pytorch3d's rasteriser has no far plane; the head sits ~2 m away).
    """

    focal: float = FOCAL_NDC
    rotation: np.ndarray = field(default_factory=_reference_rotation)
    translation: np.ndarray = field(default_factory=_reference_translation)
    znear: float = 0.05
    zfar: float = 100.0

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates [3]: the world point whose view coordinates are 0."""
        return -np.asarray(self.translation, dtype=np.float64) @ np.asarray(self.rotation, dtype=np.float64).T

    def world_to_view(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] world points -> [..., 3] pytorch3d view coordinates (+X left, +Y up, +Z forward)."""
        return np.asarray(points, dtype=np.float64) @ np.asarray(self.rotation, dtype=np.float64) + np.asarray(
            self.translation, dtype=np.float64)

    def world_to_ndc(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] world points -> [..., 3] pytorch3d NDC (x left, y up) and view depth z."""
        view = self.world_to_view(points)
        z = view[..., 2]
        return np.stack([self.focal * view[..., 0] / z, self.focal * view[..., 1] / z, z], axis=-1)

    def world_to_pixel(self, points: np.ndarray, size: int) -> np.ndarray:
        """[..., 3] world points -> [..., 2] continuous (column, row) pixel coordinates.

        Pixel (c, r) covers [c, c+1) x [r, r+1); its centre is at (c + 0.5, r + 0.5). Column 0 is at
        NDC x = +1 (pytorch3d's +X is left) and row 0 at NDC y = +1 (top).
        """
        ndc = self.world_to_ndc(points)
        col = (1.0 - ndc[..., 0]) * size / 2.0
        row = (1.0 - ndc[..., 1]) * size / 2.0
        return np.stack([col, row], axis=-1)

    def view_matrix(self) -> np.ndarray:
        """4x4 world -> view matrix for column vectors (the transpose of pytorch3d's row form)."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.rotation, dtype=np.float64).T
        m[:3, 3] = np.asarray(self.translation, dtype=np.float64)
        return m

    def projection_matrix(self, *, flip_y: bool = False) -> np.ndarray:
        """4x4 pytorch3d view -> OpenGL clip matrix (column vectors).

        OpenGL's NDC x grows to the right while pytorch3d's grows to the left, hence ``-focal``
        on x. With ``flip_y`` the image comes out of ``glReadPixels`` top row first (OpenGL
        stores the bottom row first), which saves a copy per frame.
        """
        n, f = float(self.znear), float(self.zfar)
        p = np.zeros((4, 4))
        p[0, 0] = -self.focal
        p[1, 1] = -self.focal if flip_y else self.focal
        p[2, 2] = (f + n) / (f - n)
        p[2, 3] = -2.0 * f * n / (f - n)
        p[3, 2] = 1.0
        return p

    def gl_matrix(self, *, flip_y: bool = False) -> np.ndarray:
        """4x4 world -> OpenGL clip matrix (column vectors): ``projection @ view``."""
        return self.projection_matrix(flip_y=flip_y) @ self.view_matrix()


@dataclass(frozen=True)
class Lighting:
    """pytorch3d ``PointLights`` + ``Materials`` of the reference (light colours are grey)."""

    light_position: tuple[float, float, float] = LIGHT_POSITION
    ambient: float = AMBIENT
    diffuse: float = DIFFUSE
    specular: float = SPECULAR
    material_specular: float = MATERIAL_SPECULAR
    shininess: float = SHININESS


REFERENCE_CAMERA = Camera()
REFERENCE_LIGHTING = Lighting()


def face_incidence(faces: np.ndarray, num_vertices: int):
    """Sparse [V,F] matrix with a 1 where vertex v is a corner of face f (scipy CSR, float32).

    ``incidence @ face_normals`` sums the (area-weighted) face normals at each vertex; build it
    once per topology and pass it to :func:`vertex_normals` to make that sum ~5x faster.
    """
    import scipy.sparse as sp

    f = np.asarray(faces, dtype=np.int64)
    rows = f.reshape(-1)
    cols = np.repeat(np.arange(f.shape[0]), 3)
    return sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows, cols)),
                         shape=(int(num_vertices), f.shape[0]))


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals [F,3] float32: (v1 - v0) x (v2 - v0), length = twice the area."""
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces)
    # component-major gathers and a hand-written cross product: np.cross is several times slower
    vt = v.T
    p0, p1, p2 = vt[:, f[:, 0]], vt[:, f[:, 1]], vt[:, f[:, 2]]
    a = p1 - p0
    b = p2 - p0
    n = np.empty((f.shape[0], 3), dtype=np.float32)
    n[:, 0] = a[1] * b[2] - a[2] * b[1]
    n[:, 1] = a[2] * b[0] - a[0] * b[2]
    n[:, 2] = a[0] * b[1] - a[1] * b[0]
    return n


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence=None,
                   face_normal: np.ndarray | None = None) -> np.ndarray:
    """Unit per-vertex normals [V,3] float32: area-weighted sums of face normals, as pytorch3d.

    ``vertices`` [V,3] float, ``faces`` [F,3] int, ``incidence`` the optional
    :func:`face_incidence` matrix of these faces, ``face_normal`` the optional
    :func:`face_normals` of these vertices. A vertex used by no face (or only by degenerate
    faces) gets a zero normal.
    """
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces)
    n = face_normals(v, f) if face_normal is None else face_normal
    count = v.shape[0]
    if incidence is not None:
        out = np.asarray(incidence @ n, dtype=np.float32)
    else:
        idx = f.reshape(-1)
        out = np.empty((count, 3), dtype=np.float32)
        for k in range(3):
            out[:, k] = np.bincount(idx, weights=np.repeat(n[:, k], 3), minlength=count)
    norm = np.sqrt(np.einsum("ij,ij->i", out, out))
    np.maximum(norm, 1e-12, out=norm)
    out /= norm[:, None]
    return out


def phong(normals: np.ndarray, points: np.ndarray, albedo: np.ndarray, *,
          camera: Camera = REFERENCE_CAMERA, lighting: Lighting = REFERENCE_LIGHTING) -> np.ndarray:
    """Reference per-pixel Phong colour in [0, 1] (float64), exactly the pytorch3d formula.

    ``normals`` [...,3] (normalised here), ``points`` [...,3] world positions, ``albedo`` [3] or
    [...,3] in [0, 1]. colour = albedo * (ambient + diffuse * max(N.L, 0))
    + specular * material_specular * max(R.V, 0) ** shininess (only where N.L > 0), clamped.
    """
    n = np.asarray(normals, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    light = np.asarray(lighting.light_position, dtype=np.float64) - p
    light = light / np.maximum(np.linalg.norm(light, axis=-1, keepdims=True), 1e-6)
    view = camera.position - p
    view = view / np.maximum(np.linalg.norm(view, axis=-1, keepdims=True), 1e-6)
    cos = np.sum(n * light, axis=-1, keepdims=True)
    reflect = 2.0 * cos * n - light
    rv = np.maximum(np.sum(reflect * view, axis=-1, keepdims=True), 0.0)
    spec = np.where(cos > 0, rv ** lighting.shininess, 0.0)
    colour = (np.asarray(albedo, dtype=np.float64) * (lighting.ambient + lighting.diffuse * np.maximum(cos, 0.0))
              + lighting.specular * lighting.material_specular * spec)
    return np.clip(colour, 0.0, 1.0)


def to_uint8(colour: np.ndarray) -> np.ndarray:
    """[0, 1] colour -> uint8 as the reference stores frames: ``(c * 255).astype(uint8)`` (truncation)."""
    return np.floor(np.clip(np.asarray(colour, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
