"""Resampling gives the reference's numbers bit for bit (issue 11).

tests/fixtures/resample holds four PCM16 WAVs (48, 44.1, 22.05 and 8 kHz, mono and stereo) and what
the reference tool makes of them: ``torchaudio.load`` (int16 / 32768), ``Resample(sr, 16000)`` per
channel (``NAME.per_channel`` [C, S16]) and the channel mean (``NAME.mono16k`` [S16]), computed with
torchaudio's own code (see the README there).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from artalk_core.audio import audio_from_array, iter_audio, load_audio
from artalk_core.audio.resample import BlockResampler, resample, sinc_kernel, to_mono

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resample"
NAMES = ["s48k_stereo", "s44k_mono", "s22k_stereo", "s8k_mono"]


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURES / "expected.safetensors"))


def _pcm(name: str) -> tuple[np.ndarray, int]:
    """float32 [C, S] as torchaudio.load reads it, and the rate."""
    with wave.open(str(FIXTURES / f"{name}.wav")) as f:
        rate, ch = f.getframerate(), f.getnchannels()
        raw = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, ch).T
    return (raw.astype(np.float32) / 32768).copy(), rate


@pytest.mark.parametrize("name", NAMES)
def test_decode_is_the_references_signal(name: str, expected: dict[str, np.ndarray]) -> None:
    want = expected[f"{name}.mono16k"]
    a = load_audio(FIXTURES / f"{name}.wav")
    assert a.samples.shape == want.shape  # ceil(S * 16000 / sr)
    assert np.max(np.abs(a.samples - want)) == 0.0
    # progressive decoding, in blocks that do not line up with anything
    s = iter_audio(FIXTURES / f"{name}.wav", block=777)
    assert np.array_equal(np.concatenate(list(s)), want)


@pytest.mark.parametrize("name", NAMES)
def test_each_channel_is_the_references(name: str, expected: dict[str, np.ndarray]) -> None:
    x, rate = _pcm(name)
    per_channel = resample(x, rate)
    assert per_channel.shape == expected[f"{name}.per_channel"].shape
    assert np.max(np.abs(per_channel - expected[f"{name}.per_channel"])) == 0.0
    # resample each channel, then average (not the other way round)
    assert np.array_equal(to_mono(per_channel), expected[f"{name}.mono16k"])
    assert np.array_equal(audio_from_array(x, rate).samples, expected[f"{name}.mono16k"])


@pytest.mark.parametrize("name", NAMES)
def test_blockwise_equals_whole(name: str) -> None:
    x, rate = _pcm(name)
    whole = resample(x, rate)
    rng = np.random.default_rng(7)
    for max_piece in (1, 5, 700, 10_000):
        res = BlockResampler(rate, x.shape[0])
        out, i = [], 0
        while i < x.shape[1]:
            n = int(rng.integers(1, max_piece + 1))
            out.append(res.push(x[:, i:i + n]))
            i += n
        out.append(res.finish())
        assert np.array_equal(np.concatenate(out, axis=1), whole), max_piece


def test_output_length_and_edge_cases() -> None:
    x = np.ones((1, 1000), np.float32)
    for rate, n in ((48000, 1000), (44100, 1000), (8000, 3), (22050, 1)):
        assert resample(x[:, :n], rate).shape == (1, int(np.ceil(n * 16000 / rate)))
    assert resample(np.zeros((2, 0), np.float32), 44100).shape == (2, 0)
    # 16 kHz passes unchanged
    y = np.random.default_rng(0).standard_normal((2, 300)).astype(np.float32)
    assert resample(y, 16000) is not None and np.array_equal(resample(y, 16000), y)
    # DC gain of the kernel is about one per phase (roll-off 0.99 leaves it within 2 %)
    k = sinc_kernel(44100)
    assert k.orig == 441 and k.new == 160 and k.width == 17
    assert np.allclose(k.taps.sum(axis=1), 1.0, atol=0.02)


def test_channel_mean_is_torchs_float32_mean() -> None:
    # torch's mean(dim=0) in float32: the channels summed in order, then divided by C
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    want = ((x[0] + x[1]) + x[2]) / np.float32(3)
    assert np.array_equal(to_mono(x), want)


def test_rate_needing_a_huge_kernel_is_refused(tmp_path: Path) -> None:
    """44101 Hz shares no factor with 16000: torchaudio's kernel would be 16000 x 44135 (5.6 GB in
    float64). A clear error, at once, rather than a machine out of memory."""
    from artalk_core.audio import write_wav
    from artalk_core.errors import AudioError, InputError

    p = tmp_path / "odd.wav"
    write_wav(p, np.zeros(44101, np.float32), 44101)
    with pytest.raises(AudioError, match=r"odd\.wav.*44101 Hz"):
        load_audio(p)
    with pytest.raises(AudioError, match="44101 Hz"):
        list(iter_audio(p))
    with pytest.raises(InputError, match="44101 Hz"):
        audio_from_array(np.zeros(44101, np.float32), 44101)
    # 44056 Hz (NTSC-locked 44.1k) still works: gcd 8, a 2000 x 5541 kernel
    assert len(audio_from_array(np.zeros(44056, np.float32), 44056).samples) == 16000
