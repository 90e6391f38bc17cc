"""FLAME skinning matches the reference fixture number for number; pure LBS pieces behave."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from artalk_core.errors import InputError
from artalk_core.flame.lbs import batch_rodrigues, full_pose
from artalk_core.flame.load import load_flame

FIXTURE = Path(__file__).parents[2] / "fixtures" / "tiny_en"


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def synthetic():
    return load_flame(FIXTURE / "flame_synthetic.pt")


def test_synthetic_head_loads(synthetic) -> None:
    assert synthetic.num_vertices == 312 and synthetic.num_faces == 576
    assert synthetic.shapedirs.shape == (312, 3, 400)
    assert synthetic.posedirs.shape == (36, 312 * 3)
    assert synthetic.parents.tolist() == [-1, 0, 1, 1, 1]
    assert synthetic.faces.dtype == np.int32
    assert not synthetic.is_standin and synthetic.source.endswith("flame_synthetic.pt")
    assert len(synthetic.sha256) == 64


def test_vertices_match_reference_zero_shape(synthetic, expected) -> None:
    verts = synthetic.vertices(expected["motion_final"])
    assert verts.shape == expected["flame_vertices"].shape
    assert torch.allclose(verts, expected["flame_vertices"], atol=1e-5, rtol=0)


def test_vertices_match_reference_shaped_without_global(synthetic, expected) -> None:
    verts = synthetic.vertices(expected["motion_final"].numpy(), expected["flame_shape_code"].numpy(),
                               with_global=False)
    assert torch.allclose(verts, expected["flame_vertices_shaped"], atol=1e-5, rtol=0)


def test_iter_vertices_matches_vertices(synthetic, expected) -> None:
    motion = expected["motion_final"]
    frames = list(synthetic.iter_vertices(motion, expected["flame_shape_code"], with_global=False, batch=7))
    assert len(frames) == motion.shape[0]
    assert all(f.dtype == np.float32 and f.shape == (312, 3) for f in frames)
    assert np.allclose(np.stack(frames), expected["flame_vertices_shaped"].numpy(), atol=1e-5)


def test_global_rotation_changes_only_with_global(synthetic, expected) -> None:
    motion = expected["motion_final"][:5].clone()
    motion[:, 100:103] = 0.3
    a = synthetic.vertices(motion, with_global=False)
    b = synthetic.vertices(motion, with_global=True)
    motion[:, 100:103] = 0
    c = synthetic.vertices(motion)
    assert torch.allclose(a, c, atol=1e-6)
    assert (a - b).abs().max() > 1e-3


def test_rodrigues_matches_closed_form() -> None:
    r = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.pi / 2], [0.3, -0.2, 0.1]])
    mats = batch_rodrigues(r)
    assert torch.allclose(mats[0], torch.eye(3), atol=1e-6)
    assert torch.allclose(mats[1], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    assert torch.allclose(mats[2] @ mats[2].T, torch.eye(3), atol=1e-6)
    assert torch.allclose(torch.det(mats[2]), torch.tensor(1.0), atol=1e-6)


def test_full_pose_layout() -> None:
    m = torch.arange(2 * 106, dtype=torch.float32).view(2, 106)
    pose = full_pose(m)
    assert pose.shape == (2, 15)
    assert torch.equal(pose[:, 0:3], m[:, 100:103])
    assert torch.equal(pose[:, 6:9], m[:, 103:106])
    assert not pose[:, 3:6].any() and not pose[:, 9:].any()
    assert not full_pose(m, with_global=False)[:, 0:3].any()


@pytest.mark.parametrize("bad", [np.zeros((4, 105), np.float32), np.zeros((106,), np.float32),
                                 np.zeros((0, 106), np.float32)])
def test_bad_motion_shape(synthetic, bad) -> None:
    with pytest.raises(InputError):
        synthetic.vertices(bad)


def test_nan_motion_and_bad_shape_vector(synthetic) -> None:
    m = np.zeros((3, 106), np.float32)
    m[1, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        synthetic.vertices(m)
    with pytest.raises(InputError, match="300"):
        synthetic.vertices(np.zeros((3, 106), np.float32), np.zeros(100, np.float32))
    with pytest.raises(InputError, match="NaN"):
        synthetic.vertices(np.zeros((3, 106), np.float32), np.full(300, np.nan, np.float32))


def test_iter_vertices_is_lazy_and_bounded(synthetic, monkeypatch) -> None:
    from artalk_core.flame import lbs

    sizes: list[int] = []
    real = lbs.motion_to_vertices

    def spy(motion, *args, **kwargs):
        sizes.append(int(motion.shape[0]))
        return real(motion, *args, **kwargs)

    monkeypatch.setattr(lbs, "motion_to_vertices", spy)
    long_motion = torch.zeros((100_000, 106))  # an hour is 90,000 frames
    it = synthetic.iter_vertices(long_motion, batch=16)
    assert sizes == []  # nothing computed before the first frame is asked for
    first = next(it)
    assert first.shape == (312, 3)
    assert sizes == [16]
    for _ in range(40):
        next(it)
    assert max(sizes) == 16 and len(sizes) == 3


def test_iter_vertices_validates_eagerly(synthetic) -> None:
    with pytest.raises(InputError):
        synthetic.iter_vertices(np.zeros((3, 10), np.float32))


def test_to_device_copy(synthetic) -> None:
    moved = synthetic.to("cpu")
    assert moved is not synthetic and moved.num_vertices == synthetic.num_vertices
    assert moved.sha256 == synthetic.sha256
    assert torch.equal(moved.vertices(torch.zeros(2, 106)), synthetic.vertices(torch.zeros(2, 106)))
