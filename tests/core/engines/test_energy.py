"""The weight-free ``energy`` engine: loudness -> jaw, light expression, gentle head sway."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from artalk_core.engines.energy import ENGINE_NAME, energy_motion
from artalk_core.errors import InputError
from artalk_core.timing import num_frames

SR = 16000
ASSET = Path(__file__).resolve().parents[3] / "assets" / "speech_sample.wav"


def syllables(seconds: float = 4.0, amp: float = 0.3, rate_hz: float = 4.0, seed: int = 0) -> np.ndarray:
    """Speech-like test signal float32 [S]: voiced bursts (harmonics of 140 Hz plus a little noise)
    at ``rate_hz`` syllables per second, each burst 60 % of the period, silence between."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12)) + 0.1 * rng.standard_normal(len(t))
    gate = ((t * rate_hz) % 1.0) < 0.6
    env = np.convolve(gate.astype(float), np.hanning(161) / np.hanning(161).sum(), mode="same")
    x = voice * env
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def test_shape_dtype_and_defaults() -> None:
    x = syllables(3.3)
    m = energy_motion(x)
    assert ENGINE_NAME == "energy"
    assert m.shape == (num_frames(len(x)), 106) and m.dtype == np.float32
    assert np.all(np.isfinite(m))
    assert np.all(m[:, 104:106] == 0)
    assert np.all(m[:, 10:100] == 0)
    assert np.max(np.abs(m[:, :10])) < 1.5


def test_n_frames_honoured() -> None:
    x = syllables(2.0)
    base = energy_motion(x)
    longer = energy_motion(x, n_frames=80)
    shorter = energy_motion(x, n_frames=20)
    assert longer.shape == (80, 106) and shorter.shape == (20, 106)
    assert np.allclose(longer[:50, 103], base[:, 103])
    assert np.allclose(shorter[:19, 103], base[:19, 103], atol=0.02)
    assert np.all(longer[56:, 103] == 0)  # padded with silence: mouth closes
    assert energy_motion(x, n_frames=0).shape == (0, 106)
    assert energy_motion(np.zeros(0, np.float32)).shape == (0, 106)
    with pytest.raises(InputError):
        energy_motion(x, n_frames=-1)


def test_deterministic_and_seeded() -> None:
    x = syllables(3.0)
    a, b = energy_motion(x), energy_motion(x.copy())
    assert np.array_equal(a, b)
    c = energy_motion(x, seed=7)
    assert np.array_equal(a[:, 103], c[:, 103])  # the jaw is signal-only
    assert not np.allclose(a[:, 100:103], c[:, 100:103])  # the sway depends on the seed


def test_silence_keeps_mouth_closed() -> None:
    m = energy_motion(np.zeros(3 * SR, np.float32))
    assert np.all(m[:, 103] == 0)
    assert np.all(m[:, :3] == 0)
    noise = (np.random.default_rng(0).standard_normal(3 * SR) * 10 ** (-70 / 20)).astype(np.float32)
    assert np.max(energy_motion(noise)[:, 103]) < 1e-6
    # Head still sways gently in silence (a living head), but only a little.
    assert 0 < np.max(np.abs(m[:, 100:103])) < math.radians(3)


def test_speech_opens_jaw_in_plausible_range() -> None:
    x = syllables(4.0, amp=0.3)
    m = energy_motion(x)
    jaw = m[:, 103]
    assert jaw.min() >= 0 and 0.1 < jaw.max() <= 0.35
    # Jaw follows the syllables: it correlates with the per-frame loudness and closes in gaps.
    rms = np.sqrt((x.reshape(-1, 640).astype(np.float64) ** 2).mean(1))
    assert np.corrcoef(jaw, rms)[0, 1] > 0.7
    assert jaw.max() - np.percentile(jaw, 10) > 0.1
    # Expression channel 0 follows the opening.
    assert np.corrcoef(m[:, 0], jaw)[0, 1] > 0.99


def test_louder_opens_wider() -> None:
    quiet = energy_motion(syllables(4.0, amp=0.03))[:, 103]
    mid = energy_motion(syllables(4.0, amp=0.15))[:, 103]
    loud = energy_motion(syllables(4.0, amp=0.9))[:, 103]
    assert quiet.mean() < mid.mean() < loud.mean()
    assert quiet.max() > 0.02  # quiet recordings still move the mouth (auto gain)
    # Within one clip, the loud half opens wider than the quiet half.
    x = syllables(4.0, amp=0.5)
    x[: 2 * SR] *= 0.1
    jaw = energy_motion(x)[:, 103]
    assert jaw[:50].mean() < jaw[50:].mean()


def test_head_motion_gentle_and_smooth() -> None:
    x = np.concatenate([np.zeros(3 * SR, np.float32), syllables(5.0)])
    m = energy_motion(x)
    rot = m[:, 100:103]
    assert np.max(np.abs(rot)) < math.radians(5)
    assert np.max(np.abs(np.diff(rot, axis=0))) < math.radians(0.5)  # no jumps between frames
    # A bit more motion while speaking than in the silent lead-in.
    silent, speaking = rot[:75], rot[75:]
    assert np.std(speaking, axis=0).sum() > np.std(silent, axis=0).sum()


def test_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        energy_motion(np.zeros((2, 1000), np.float32))
    bad = syllables(1.0)
    bad[10] = np.nan
    with pytest.raises(InputError):
        energy_motion(bad)


def test_speech_sample_asset() -> None:
    from artalk_core.audio import load_audio

    a = load_audio(ASSET)
    assert a.source_rate == 16000 and a.source_channels == 1 and a.source_format == "wav/pcm_s16le"
    assert 6.0 <= a.duration <= 9.5
    assert ASSET.stat().st_size < 400_000
    m = energy_motion(a.samples)
    assert m.shape == (num_frames(len(a.samples)), 106)
    assert m[:, 103].max() > 0.15 and np.mean(m[:, 103] < 0.02) > 0.05  # talks, and pauses
