"""The bundled stand-in head: a plausible FLAME-like head whose jaw opens the mouth."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from artalk_core.flame import standin
from artalk_core.flame.load import load_flame


@pytest.fixture(scope="module")
def head():
    return standin.load_standin()


def _jaw(model, angle: float) -> np.ndarray:
    m = torch.zeros(1, 106)
    m[0, 103] = angle
    return model.vertices(m)[0].numpy()


def test_marked_as_standin(head) -> None:
    assert head.is_standin and head.source == "stand-in"
    assert head.sha256 == hashlib.sha256(standin.STANDIN_FILE.read_bytes()).hexdigest()
    assert 2000 <= head.num_vertices <= 6000
    assert head.shapedirs.shape == (head.num_vertices, 3, 400) and not head.shapedirs.any()
    assert head.posedirs.shape == (36, head.num_vertices * 3) and not head.posedirs.any()
    assert head.parents.tolist() == [-1, 0, 1, 1, 1]


def test_bundled_file_is_compact_and_up_to_date(head) -> None:
    assert standin.STANDIN_FILE.stat().st_size < 500_000
    with np.load(standin.STANDIN_FILE) as z:
        assert bool(z["standin"]) and "shapedirs" not in z.files
    fresh = standin.make_standin()
    assert fresh["standin"] is True
    fm = fresh["flame_model"]
    assert np.allclose(fm["v_template"].numpy(), head.v_template.numpy(), atol=1e-6)
    assert np.array_equal(fm["f"].numpy(), head.faces)
    assert np.allclose(fm["weights"].numpy(), head.lbs_weights.numpy(), atol=1e-6)


def test_flame_like_bounds_and_facing(head) -> None:
    v = head.v_template.numpy()
    lo, hi = v.min(0), v.max(0)
    assert -0.11 < lo[0] < -0.06 and 0.06 < hi[0] < 0.11  # width with ears
    assert -0.2 < lo[1] < -0.1 and 0.08 < hi[1] < 0.13  # neck bottom .. crown
    assert -0.13 < lo[2] < -0.08 and 0.08 < hi[2] < 0.13  # back of head .. nose tip
    assert np.allclose(v[:, 0].mean(), 0.0, atol=1e-3)  # symmetric about the midline
    nose = v[np.argmax(v[:, 2])]
    assert abs(nose[0]) < 0.005 and -0.04 < nose[1] < 0.01  # the frontmost point is the nose tip
    joints = (head.J_regressor @ head.v_template).numpy()
    assert np.allclose(joints[1], [0.0, -0.03, -0.01], atol=0.006)  # neck joint like FLAME's
    assert joints[3, 0] > 0.02 and joints[4, 0] < -0.02 and joints[3, 2] > 0.03  # eyes in front
    assert np.allclose(head.lbs_weights.sum(1).numpy(), 1.0, atol=1e-5)
    assert (head.lbs_weights >= 0).all()


def test_faces_valid_and_outward(head) -> None:
    f = head.faces
    v = head.v_template.numpy().astype(np.float64)
    assert f.dtype == np.int32 and f.min() >= 0 and f.max() < head.num_vertices
    assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)
    assert len(np.unique(f)) == head.num_vertices  # no stray vertices
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (np.linalg.norm(n, axis=1) > 1e-12).all()
    volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert volume > 0.002  # outward triangles enclose a head-sized positive volume (m^3)


def test_jaw_opens_a_gap_at_the_mouth(head) -> None:
    rest = _jaw(head, 0.0)
    lower, upper = head.mouth_lower_lip, head.mouth_upper_lip
    assert np.allclose(rest[lower], rest[upper])  # closed at rest
    opened = _jaw(head, 0.2)
    drop = rest[lower, 1] - opened[lower, 1]
    assert drop.min() > 0.005  # lower lip moves down more than 5 mm
    assert np.allclose(opened[upper], rest[upper], atol=1e-6)  # upper lip stays
    gap = opened[upper, 1] - opened[lower, 1]
    assert gap.max() > 0.01
    top = rest[:, 1] > 0.05
    assert np.allclose(opened[top], rest[top], atol=1e-6)  # the skull does not move with the jaw


def test_expression_channels_do_not_move_standin(head) -> None:
    m = torch.zeros(2, 106)
    m[1, :100] = 3.0
    v = head.vertices(m)
    assert torch.allclose(v[0], v[1])


def test_write_standin_full_layout(tmp_path, head) -> None:
    p = tmp_path / "FLAME_with_eye.pt"
    standin.write_standin(p)
    data = torch.load(p, weights_only=True)
    assert data["standin"] is True
    assert data["flame_model"]["shapedirs"].shape == (head.num_vertices, 3, 400)
    loaded = load_flame(p)
    assert loaded.is_standin and loaded.source == str(p)
    m = torch.zeros(3, 106)
    m[:, 100:103] = torch.tensor([0.1, -0.2, 0.05])
    m[:, 103] = 0.15
    assert torch.allclose(loaded.vertices(m), head.vertices(m), atol=1e-6)
