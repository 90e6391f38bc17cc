"""Post-processing: parity with the reference fixture, short sequences, clip and fix-pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from scipy.signal import savgol_filter

from artalk_core.errors import InputError
from artalk_core.postprocess import effective_window, finalize_motion, postprocess, postprocess_metadata, smooth_motion

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_en" / "expected.safetensors"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return load_file(str(FIXTURE))


def _raw(t: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, 106)).astype(np.float32)


def test_fixture_parity(expected: dict[str, np.ndarray]) -> None:
    raw = expected["motion_raw_style"]
    smoothed = smooth_motion(raw)
    assert smoothed.dtype == np.float32 and smoothed.shape == raw.shape
    np.testing.assert_allclose(smoothed, expected["motion_smoothed"], atol=1e-5, rtol=0)
    final = postprocess(raw)
    np.testing.assert_allclose(final, expected["motion_final"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(finalize_motion(expected["motion_smoothed"]), expected["motion_final"],
                               atol=1e-6, rtol=0)
    # the smoothing changes the data (otherwise parity would be vacuous)
    assert np.abs(raw - expected["motion_smoothed"]).max() > 1e-3


def test_pose_channels_use_raw_and_wider_window() -> None:
    raw = _raw(40)
    out = smooth_motion(raw)
    np.testing.assert_allclose(out[:, :100], savgol_filter(raw, 5, 2, axis=0)[:, :100], atol=1e-6)
    np.testing.assert_allclose(out[:, 103:], savgol_filter(raw, 5, 2, axis=0)[:, 103:], atol=1e-6)
    np.testing.assert_allclose(out[:, 100:103], savgol_filter(raw[:, 100:103], 9, 3, axis=0), atol=1e-6)


def test_input_not_modified_and_torch_accepted() -> None:
    raw = _raw(20)
    copy = raw.copy()
    out = postprocess(torch.from_numpy(raw), clip_length=10, fix_pose=True)
    np.testing.assert_array_equal(raw, copy)
    assert isinstance(out, np.ndarray) and out.shape == (10, 106)


def test_jaw_yz_always_zeroed_and_fix_pose() -> None:
    raw = _raw(30)
    plain = postprocess(raw)
    assert not plain[:, 104:106].any()
    assert plain[:, 100:104].any()
    fixed = postprocess(raw, fix_pose=True)
    assert not fixed[:, 100:103].any() and not fixed[:, 104:106].any()
    np.testing.assert_array_equal(fixed[:, :100], plain[:, :100])
    np.testing.assert_array_equal(fixed[:, 103], plain[:, 103])


def test_clip_cuts_after_smoothing() -> None:
    raw = _raw(60)
    full = postprocess(raw)
    clipped = postprocess(raw, clip_length=25)
    assert clipped.shape == (25, 106)
    np.testing.assert_array_equal(clipped, full[:25])
    # smoothing a pre-cut sequence differs at the cut edge: the cut must come after smoothing
    assert not np.allclose(postprocess(raw[:25]), clipped)
    assert postprocess(raw, clip_length=1000).shape == (60, 106)
    assert postprocess(raw, clip_length=60).shape == (60, 106)
    for bad in (0, -5):
        with pytest.raises(InputError, match="clip length"):
            postprocess(raw, clip_length=bad)


@pytest.mark.parametrize("t, exp_w, pose_w", [
    (1, None, None), (2, None, None), (3, 3, None), (4, 3, None), (5, 5, 5), (6, 5, 5),
    (7, 5, 7), (8, 5, 7), (9, 5, 9), (100, 5, 9),
])
def test_effective_windows(t: int, exp_w: int | None, pose_w: int | None) -> None:
    assert effective_window(t, 5, 2) == exp_w
    assert effective_window(t, 9, 3) == pose_w


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 8, 9])
def test_short_sequences(t: int) -> None:
    raw = _raw(t, seed=t)
    out = smooth_motion(raw)
    assert out.shape == (t, 106) and out.dtype == np.float32 and np.isfinite(out).all()
    exp_w = effective_window(t, 5, 2)
    pose_w = effective_window(t, 9, 3)
    if exp_w is None or exp_w == 3:
        # unsmoothed, or a quadratic through 3 points: both reproduce the input
        np.testing.assert_allclose(out[:, :100], raw[:, :100], atol=1e-5)
    else:
        np.testing.assert_allclose(out[:, :100], savgol_filter(raw, exp_w, 2, axis=0)[:, :100], atol=1e-6)
    if pose_w is None:
        np.testing.assert_array_equal(out[:, 100:103], raw[:, 100:103])
    else:
        np.testing.assert_allclose(out[:, 100:103], savgol_filter(raw[:, 100:103], pose_w, 3, axis=0),
                                   atol=1e-6)
    final = postprocess(raw, fix_pose=True)
    assert final.shape == (t, 106) and not final[:, 100:103].any() and not final[:, 104:].any()


def test_long_sequences_match_reference_windows() -> None:
    raw = _raw(9)
    np.testing.assert_allclose(smooth_motion(raw)[:, 100:103], savgol_filter(raw[:, 100:103], 9, 3, axis=0),
                               atol=1e-6)
    assert not np.allclose(smooth_motion(raw)[:, 100:103], raw[:, 100:103])


def test_wrong_shape() -> None:
    with pytest.raises(InputError, match=r"\[T, 106\]"):
        smooth_motion(np.zeros((10, 100)))
    with pytest.raises(InputError):
        finalize_motion(np.zeros(106))


def test_postprocess_metadata() -> None:
    assert postprocess_metadata() == {"postprocessed": "true", "smoothed": "true", "clip_length": "",
                                      "fix_pose": "false"}
    assert postprocess_metadata(smoothed=False, clip_length=750, fix_pose=True) == {
        "postprocessed": "true", "smoothed": "false", "clip_length": "750", "fix_pose": "true"}


@pytest.mark.parametrize("clip_length, fix_pose", [(None, False), (5000, True), (9000, False), (4097, False)])
def test_long_motion_is_smoothed_in_blocks_identically(clip_length, fix_pose):
    from artalk_core import postprocess as pp

    rng = np.random.default_rng(3)
    raw = np.cumsum(rng.normal(size=(3 * pp.BLOCK_FRAMES + 123, 106)), axis=0).astype(np.float32)
    whole = pp.finalize_motion(pp.smooth_motion(raw), clip_length=clip_length, fix_pose=fix_pose)
    blocked = pp.postprocess(raw, clip_length=clip_length, fix_pose=fix_pose)
    assert blocked.shape == whole.shape and blocked.dtype == np.float32
    assert np.array_equal(blocked, whole)
