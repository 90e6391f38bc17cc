"""Camera and FLAME driving against tiny_gaga: per-frame FLAME points, the forehead smoothing,
the camera transform and matrices; quirks (motion never written, smoothing reset per clip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from artalk_core.errors import AssetError, InputError
from artalk_core.render.avatar import camera as C
from artalk_core.render.avatar.driving import FOREHEAD_INDICES, Driver, check_flame


@pytest.fixture(scope="module")
def flame(gaga_dir: Path) -> Any:
    from artalk_core.flame import load_flame

    return load_flame(gaga_dir / "flame_synthetic_5023.pt")


def test_plane_grid_maps_to_pixel_edges(gaga_entry: Any, gaga_expected: dict) -> None:
    tm = torch.from_numpy(gaga_entry.transform_matrix)
    points, axis = C.plane_points(120, tm)
    torch.testing.assert_close(points, gaga_expected["source.plane_points"], rtol=0, atol=1e-5)
    torch.testing.assert_close(axis, gaga_expected["source.plane_dirs"], rtol=0, atol=1e-6)
    px = C.project_points(points, C.build_camera(tm, size=512))
    assert px[0].tolist() == pytest.approx([-0.5, -0.5], abs=1e-3)
    assert px[-1].tolist() == pytest.approx([511.5, 511.5], abs=1e-3)


def test_zero_rotation_camera_looks_down_minus_z() -> None:
    r = C.transform_emoca_to_p3d(torch.zeros(3))
    torch.testing.assert_close(r, torch.diag(torch.tensor([-1.0, 1.0, -1.0])), rtol=0, atol=1e-7)


def test_driving_matches_the_reference_frames(flame: Any, gaga_entry: Any, gaga_expected: dict) -> None:
    e = gaga_expected
    motion = e["frame.motion_in"].clone()
    before = motion.clone()
    assert torch.equal(e["frame.forehead_indices"].long(), torch.tensor(FOREHEAD_INDICES))
    drv = Driver(flame, shapecode=gaga_entry.shapecode, transform_matrix=gaga_entry.transform_matrix)
    p0, t0 = drv(motion[:1])
    p12, t12 = drv(motion[1:])  # the smoothing state carries across calls within a clip
    points, transforms = torch.cat([p0, p12]), torch.cat([t0, t12])
    torch.testing.assert_close(points, e["frame.t_points"], rtol=0, atol=1e-5)
    torch.testing.assert_close(transforms, e["frame.t_transform"], rtol=0, atol=1e-5)
    view, proj = C.build_camera_matrices(transforms)
    torch.testing.assert_close(view, e["frame.viewmatrix"], rtol=0, atol=1e-5)
    torch.testing.assert_close(proj, e["frame.projmatrix"], rtol=0, atol=1e-4)
    # the reference negates 100 and 102 in place; ours never writes the motion
    assert torch.equal(motion, before)
    assert not torch.equal(motion, e["frame.motion_after"])
    # a new clip starts the smoothing afresh: frame 1 alone is the plain FLAME frame
    drv.reset()
    p1, _ = drv(motion[1:2])
    torch.testing.assert_close(p1[0], e["frame.flame_vertices"][1], rtol=0, atol=1e-5)
    assert not torch.allclose(p1[0], e["frame.t_points"][1], atol=1e-3)


def test_standin_head_and_nan_motion_are_refused(flame: Any, gaga_entry: Any) -> None:
    from artalk_core.flame import load_standin

    with pytest.raises(AssetError, match="real FLAME head"):
        check_flame(load_standin())
    drv = Driver(flame, shapecode=gaga_entry.shapecode, transform_matrix=gaga_entry.transform_matrix)
    bad = torch.zeros(2, 106)
    bad[1, 5] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        drv(bad)
