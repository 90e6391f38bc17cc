"""The OpenGL renderer reproduces the reference look: framing, colours, shading, orientation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from artalk_core.constants import BACKGROUND_COLOR, FOCAL_NDC, MESH_COLOR
from artalk_core.errors import DependencyError, InputError, RenderError
from artalk_core.render.mesh import create_renderer, parse_color
from artalk_core.render.mesh.camera import REFERENCE_CAMERA, phong, to_uint8
from tests.meshes import synthetic_head

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en" / "flame_synthetic.pt"
ALBEDO = np.array(MESH_COLOR) / 255.0


def yaw(vertices: np.ndarray, angle: float) -> np.ndarray:
    """Rotate about +y by ``angle`` (right-handed: positive turns +z towards +x, the head's own left)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return (vertices @ rot.T).astype(np.float32)


def foreground(img: np.ndarray, background=BACKGROUND_COLOR) -> np.ndarray:
    return (img != np.array(background, dtype=np.uint8)).any(axis=-1)


def flat_patch(z: float = 0.1, half: float = 0.03, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A square grid in the plane z = ``z`` facing +z (every vertex normal is exactly +z)."""
    xs = np.linspace(-half, half, n + 1)
    gx, gy = np.meshgrid(xs, xs)
    v = np.c_[gx.ravel(), gy.ravel(), np.full(gx.size, z)].astype(np.float32)
    faces = []
    for i in range(n):
        for j in range(n):
            a = i * (n + 1) + j
            faces += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return v, np.array(faces)


def pixel_to_plane(size: int, z: float) -> np.ndarray:
    """World points [size,size,3] where each pixel centre's ray meets the plane z = ``z``."""
    centres = (np.arange(size) + 0.5) * 2.0 / size
    ndc_x = 1.0 - centres  # pytorch3d: column 0 at NDC x = +1
    ndc_y = 1.0 - centres  # row 0 at NDC y = +1
    depth = 2.0 - z  # view z for the reference camera
    x = -ndc_x * depth / FOCAL_NDC  # view x = -world x
    y = ndc_y * depth / FOCAL_NDC
    gx, gy = np.meshgrid(x, y)  # [row, col]
    return np.stack([gx, gy, np.full_like(gx, z)], axis=-1)


def test_sphere_is_centred_and_sized_like_the_reference(sphere, gl_available):
    v, f = sphere
    with create_renderer(f) as r:
        img = r.render(v)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    mask = foreground(img)
    rows, cols = np.nonzero(mask)
    expected = FOCAL_NDC * math.tan(math.asin(0.1 / 2.0)) * 256  # ~153.8 px
    assert cols.mean() == pytest.approx(255.5, abs=0.3)
    assert rows.mean() == pytest.approx(255.5, abs=0.3)
    assert (cols.max() - cols.min() + 1) / 2 == pytest.approx(expected, abs=1.5)
    assert (rows.max() - rows.min() + 1) / 2 == pytest.approx(expected, abs=1.5)
    assert mask.sum() == pytest.approx(math.pi * expected ** 2, rel=0.01)
    # everything off the disc is exactly the background colour
    rr, cc = np.mgrid[0:512, 0:512]
    dist = np.hypot(rr + 0.5 - 256, cc + 0.5 - 256)
    assert (img[dist > expected + 1.5] == 255).all()
    assert mask[dist < expected - 2].all()


def test_shading_matches_the_phong_formula_pixel_for_pixel(gl_available):
    z = 0.1
    v, f = flat_patch(z)
    with create_renderer(f) as r:
        img = r.render(v)
    pts = pixel_to_plane(512, z)
    expected = to_uint8(phong(np.broadcast_to([0.0, 0.0, 1.0], pts.shape), pts, ALBEDO))
    # the patch spans +-0.03 m -> +-0.03/1.9*12*256 = 48.5 px around the centre; keep off its edges
    inner = slice(256 - 44, 256 + 44)
    got = img[inner, inner].astype(int)
    want = expected[inner, inner].astype(int)
    assert np.abs(got - want).max() <= 1  # float32 on the GPU vs float64 here, at truncation edges
    assert (got == want).all(axis=-1).mean() > 0.97
    # the centre pixel: a normal pointing at the camera
    centre = to_uint8(phong(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, z]), ALBEDO))
    assert np.abs(img[255, 255].astype(int) - centre.astype(int)).max() <= 1
    # the specular term is really there (else the test above could not tell)
    no_spec = to_uint8(ALBEDO * (0.5 + 0.3 * np.dot([0, 0, 1], [0, 0.9, 2.9] / np.linalg.norm([0, 0.9, 2.9]))))
    assert int(centre[2]) - int(no_spec[2]) >= 10
    # brighter towards the light (above) than below
    assert img[256 - 40, 256].astype(int).sum() > img[256 + 40, 256].astype(int).sum()


def test_jaw_opening_changes_only_the_mouth_region(head, head_renderer):
    v, _ = head
    closed = head_renderer.render(v)
    opened = v.copy()
    jaw = (v[:, 1] < -0.03) & (v[:, 2] > 0.0)
    opened[jaw, 1] -= 0.02
    opened[jaw, 2] -= 0.01
    img = head_renderer.render(opened)
    diff = (img != closed).any(axis=-1)
    rows, _ = np.nonzero(diff)
    assert diff.sum() > 500
    # y = -0.03 m at the front projects ~ 0.03/1.9*12*256 = 48 px below the centre; the shading of
    # the ring of faces just above the moved vertices changes too (their normals change)
    assert rows.min() > 256 + 10
    assert not diff[:256].any()


def test_positive_yaw_moves_the_nose_to_the_image_right(head, head_renderer):
    """+yaw about +y turns the face (+z) towards +x, the head's own left. The reference camera
    looks at the face, so the subject's left is on the viewer's right: pytorch3d maps world +x to
    NDC -x, and NDC +x is the image's left edge (column 0). The nose must move to larger columns."""
    v, f = head
    flat, _ = synthetic_head(30, 64, nose=0.0)
    for angle, side in [(0.0, 0), (0.4, 1), (-0.4, -1)]:
        diff = (head_renderer.render(yaw(v, angle)) != head_renderer.render(yaw(flat, angle))).any(axis=-1)
        col = np.median(np.nonzero(diff)[1])
        if side == 0:
            assert col == pytest.approx(255.5, abs=2)
        else:
            assert np.sign(col - 255.5) == side and abs(col - 255.5) > 20


def test_a_marker_lands_where_the_camera_projects_it(gl_available):
    """A small cube in front of the face, turned by +-yaw: its pixels sit at its projection."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * 0.005
    hull = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
            [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    centre = np.array([0.0, 0.02, 0.13])
    with create_renderer(np.array(hull), size=512) as r:
        for angle in (0.0, 0.4, -0.4):
            img = r.render(yaw(corners + centre, angle))
            rows, cols = np.nonzero(foreground(img))
            want_col, want_row = REFERENCE_CAMERA.world_to_pixel(yaw(centre[None], angle)[0], 512)
            assert cols.mean() + 0.5 == pytest.approx(want_col, abs=1.5)
            assert rows.mean() + 0.5 == pytest.approx(want_row, abs=1.5)
            assert (want_col > 256) == (angle > 0) or angle == 0.0
    assert want_row < 256  # +y is up


def test_identical_inputs_give_identical_frames(head, head_renderer):
    v, f = head
    a = head_renderer.render(v)
    head_renderer.render(yaw(v, 0.3))
    b = head_renderer.render(v)
    with create_renderer(f) as other:
        c = other.render(v)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_size_256_scales_the_picture(sphere, gl_available):
    v, f = sphere
    with create_renderer(f, size=256) as r:
        img = r.render(v)
    assert img.shape == (256, 256, 3)
    cols = np.nonzero(foreground(img))[1]
    expected = FOCAL_NDC * math.tan(math.asin(0.05)) * 128
    assert (cols.max() - cols.min() + 1) / 2 == pytest.approx(expected, abs=1.5)
    assert cols.mean() == pytest.approx(127.5, abs=0.3)


def test_other_colours(gl_available):
    z = 0.1
    v, f = flat_patch(z)
    with create_renderer(f, background="black", color="#ff0000") as r:
        img = r.render(v)
    assert (img[:20, :20] == 0).all()
    want = to_uint8(phong(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, z]), np.array([1.0, 0.0, 0.0])))
    assert np.abs(img[255, 255].astype(int) - want.astype(int)).max() <= 1
    assert want[1] == want[2] > 0  # green/blue come from the white specular only
    with create_renderer(f, background=(10, 20, 30), color=(0, 255, 0), size=64) as r:
        img = r.render(v)
    assert img[0, 0].tolist() == [10, 20, 30]
    assert img[32, 32, 1] > img[32, 32, 0]


def test_fixture_head_fills_its_projected_outline(gl_available):
    torch = pytest.importorskip("torch")
    flame = torch.load(FIXTURE, map_location="cpu", weights_only=False)["flame_model"]
    v = flame["v_template"].numpy().astype(np.float32)
    f = flame["f"].numpy()
    with create_renderer(f) as r:
        img = r.render(v)
    rows, cols = np.nonzero(foreground(img))
    px = REFERENCE_CAMERA.world_to_pixel(v, 512)
    assert cols.min() == pytest.approx(px[:, 0].min(), abs=2)
    assert cols.max() + 1 == pytest.approx(px[:, 0].max(), abs=2)
    assert rows.min() == pytest.approx(px[:, 1].min(), abs=2)
    assert rows.max() + 1 == pytest.approx(px[:, 1].max(), abs=2)


def test_bad_input_is_rejected(head, head_renderer):
    v, f = head
    with pytest.raises(InputError):
        head_renderer.render(v[:10])
    with pytest.raises(InputError):
        head_renderer.render(np.full_like(v, np.nan))
    with pytest.raises(InputError):
        create_renderer(f[:, :2])
    with pytest.raises(InputError):
        create_renderer(f.astype(np.float32))
    with pytest.raises(InputError):
        create_renderer(f, size=8)
    with pytest.raises(InputError):
        create_renderer(f, backend="vulkan")
    with pytest.raises(InputError):
        create_renderer(f, color=(300, 0, 0))


def test_closed_renderer_refuses_to_render(head, gl_available):
    v, f = head
    r = create_renderer(f, size=32)
    r.close()
    r.close()
    with pytest.raises(RenderError):
        r.render(v)


def test_missing_opengl_names_the_system_packages(monkeypatch, head):
    import moderngl

    def boom(*args, **kwargs):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", boom)
    with pytest.raises(RenderError) as info:
        create_renderer(head[1])
    msg = str(info.value)
    assert "libegl1" in msg and "libgl1-mesa-dri" in msg and "libgbm1" in msg and "apt-get" in msg
    assert "libEGL.so.1" in msg


def test_pytorch3d_backend_is_optional(head):
    try:
        import pytorch3d  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyError, match="pytorch3d"):
            create_renderer(head[1], backend="pytorch3d")
    else:  # pragma: no cover - only where pytorch3d is installed
        with create_renderer(head[1], backend="pytorch3d", size=64, device="cpu") as r:
            assert r.render(head[0]).shape == (64, 64, 3)


@pytest.mark.parametrize("text,rgb", [
    ("#ffffff", (255, 255, 255)), ("white", (255, 255, 255)), ("255,255,255", (255, 255, 255)),
    ("#8EB3F7", (142, 179, 247)), ("#abc", (170, 187, 204)), (" 1, 2 ,3 ", (1, 2, 3)),
    ("Black", (0, 0, 0)), ("8eb3f7", (142, 179, 247)),
])
def test_parse_color(text, rgb):
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["", "#ggg", "256,0,0", "1,2", "chartreuse-ish", "#12345"])
def test_parse_color_rejects(text):
    with pytest.raises(InputError):
        parse_color(text)
