"""Camera, normals and Phong facts (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from artalk_core.constants import FOCAL_NDC
from artalk_core.render.mesh.camera import REFERENCE_CAMERA, face_incidence, phong, to_uint8, vertex_normals

CAM = REFERENCE_CAMERA


def test_camera_position_and_view():
    np.testing.assert_allclose(CAM.position, [0.0, 0.0, 2.0])
    # pytorch3d row-vector convention with R = diag(-1, 1, -1), T = (0, 0, 2)
    np.testing.assert_allclose(CAM.world_to_view([0.1, 0.2, 0.3]), [-0.1, 0.2, 1.7])


def test_pixel_directions_are_a_portrait_not_a_mirror():
    c = CAM.world_to_pixel(np.zeros(3), 512)
    np.testing.assert_allclose(c, [256.0, 256.0])
    right = CAM.world_to_pixel(np.array([0.05, 0.0, 0.0]), 512)  # the subject's left (+x)
    up = CAM.world_to_pixel(np.array([0.0, 0.05, 0.0]), 512)
    assert right[0] > 256 and right[1] == pytest.approx(256)
    assert up[1] < 256 and up[0] == pytest.approx(256)
    # focal 12 in NDC: 0.05 m at 2 m -> 0.3 NDC -> 0.3 * 256 px
    assert right[0] - 256 == pytest.approx(0.05 / 2.0 * FOCAL_NDC * 256)


def test_sphere_silhouette_radius_in_ndc():
    # tangent rays to a 0.1 m sphere 2 m away: tan(asin(0.05)) * 12 ~ 0.6 NDC ~ 154 px at 512
    r_ndc = FOCAL_NDC * math.tan(math.asin(0.1 / 2.0))
    assert r_ndc == pytest.approx(0.6008, abs=1e-3)
    assert r_ndc * 256 == pytest.approx(153.8, abs=0.1)


@pytest.mark.parametrize("flip", [False, True])
def test_gl_matrix_matches_pytorch3d_ndc(flip):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.2, 0.2, size=(50, 3))
    clip = np.c_[pts, np.ones(len(pts))] @ CAM.gl_matrix(flip_y=flip).T
    gl_ndc = clip[:, :3] / clip[:, 3:]
    p3d = CAM.world_to_ndc(pts)
    # OpenGL x grows to the right, pytorch3d's to the left
    np.testing.assert_allclose(gl_ndc[:, 0], -p3d[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gl_ndc[:, 1], -p3d[:, 1] if flip else p3d[:, 1], rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(gl_ndc[:, 2]) < 1.0)
    np.testing.assert_allclose(clip[:, 3], p3d[:, 2])  # w = view depth


def test_vertex_normals_area_weighted():
    # a big triangle in the xy plane (normal +z, area 2) and a small one in the xz plane
    # (normal -y, area 0.125) share vertex 0
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0.5, 0, 0], [0, 0, 0.5]], dtype=np.float32)
    f = np.array([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(v, f)
    expected = np.array([0.0, -0.125, 2.0]) / np.linalg.norm([0.0, -0.125, 2.0])
    np.testing.assert_allclose(n[0], expected, atol=1e-6)
    np.testing.assert_allclose(n[1], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(n[3], [0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(vertex_normals(v, f, face_incidence(f, len(v))), n, atol=1e-7)


def test_vertex_normals_of_sphere_are_radial(sphere):
    v, f = sphere
    n = vertex_normals(v, f)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.min(np.sum(n * radial, axis=1)) > 0.999
    np.testing.assert_allclose(vertex_normals(v, f, face_incidence(f, len(v))), n, atol=1e-6)


def test_phong_terms():
    albedo = np.array([142, 179, 247]) / 255.0
    p = np.zeros(3)
    l_dir = np.array([0.0, 1.0, 3.0]) / math.sqrt(10.0)
    # facing the camera: diffuse N.L = 3/sqrt(10); R.V = 2 (N.L) n_z - l_z = 3/sqrt(10)
    cos = 3.0 / math.sqrt(10.0)
    expected = albedo * (0.5 + 0.3 * cos) + 0.2 * 0.6 * cos ** 10
    np.testing.assert_allclose(phong(np.array([0.0, 0.0, 1.0]), p, albedo), expected)
    # facing the light: full diffuse
    np.testing.assert_allclose(phong(l_dir, p, albedo)[0], albedo[0] * 0.8 + 0.12 * (l_dir[2]) ** 10)
    # facing away from the light: ambient only, and NO specular although R.V > 0 there
    n = np.array([0.0, 0.0, -1.0])
    r = 2 * np.dot(n, l_dir) * n - l_dir
    assert np.dot(r, [0, 0, 1]) > 0.9
    np.testing.assert_allclose(phong(n, p, albedo), albedo * 0.5)
    # clamped
    assert phong(np.array([0.0, 0.0, 1.0]), p, np.ones(3)).max() <= 1.0


def test_to_uint8_truncates_like_the_reference():
    assert to_uint8(np.array([0.0, 0.999, 1.0, 1.5, -0.2, 128.9 / 255])).tolist() == [0, 254, 255, 255, 0, 128]
