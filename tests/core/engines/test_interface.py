"""The engine interface: an engine is one class and one registration; the offline and the
streaming paths both run it through the same sink, so they write the same motion."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artalk_core.audio import load_audio
from artalk_core.engines import MotionEngine, create_engine, motion_engines, register_engine
from artalk_core.engines import base as engines_base
from artalk_core.errors import InputError
from artalk_core.formats.motion import read_motion
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.pipeline import generate
from artalk_core.postprocess import postprocess
from artalk_core.streaming import stream_generate
from tests.conftest import FIXTURE

WAV = FIXTURE / "speech_16k.wav"


class LoudnessEngine:
    """A third engine, written here only: jaw opening = the frame's peak level, in blocks of 7 frames."""

    name = "loudness"
    inputs = frozenset({"audio"})
    checkpoint_sha256 = ""

    def __init__(self, model: Any = None, motion: Any = None) -> None:
        self.gain = 1.0 + (motion.seed if motion is not None else 0)
        self.options: dict[str, Any] = {"gain": self.gain}

    def motion(self, speech: Any, style: Any, progress: Any = None) -> Iterator[np.ndarray]:
        audio = np.concatenate(list(speech.audio_blocks()))
        n = speech.frames()
        audio = np.pad(audio, (0, n * 640 - len(audio)))
        peaks = np.abs(audio.reshape(n, 640)).max(axis=1)
        for start in range(0, n, 7):
            block = np.zeros((min(7, n - start), 106), np.float32)
            block[:, 103] = self.gain * peaks[start:start + 7]
            yield block


@pytest.fixture
def loudness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines_base, "_FACTORIES", dict(engines_base._FACTORIES))
    register_engine("loudness", LoudnessEngine)


def expected_raw(gain: float = 1.0) -> np.ndarray:
    x = load_audio(WAV).samples
    n = -(-len(x) // 640)
    peaks = np.abs(np.pad(x, (0, n * 640 - len(x))).reshape(n, 640)).max(axis=1)
    raw = np.zeros((n, 106), np.float32)
    raw[:, 103] = gain * peaks
    return raw


def test_the_built_in_engines_are_registered() -> None:
    assert motion_engines()[:2] == ("artalk", "energy")
    engine = create_engine("energy", motion=MotionOptions(seed=3))
    assert isinstance(engine, MotionEngine) and engine.options == {"seed": 3} and engine.checkpoint_sha256 == ""
    with pytest.raises(InputError, match="unknown engine 'nope': choose one of artalk, energy"):
        create_engine("nope")


def test_a_new_engine_plugs_into_generate(loudness: None, tmp_path: Path) -> None:
    assert "loudness" in motion_engines()
    out = tmp_path / "m.safetensors"
    motion = generate(WAV, output=out, motion=MotionOptions(engine="loudness", clip_length=0, seed=1))
    want = postprocess(expected_raw(gain=2.0))
    np.testing.assert_array_equal(read_motion(out).data, want)
    meta = read_motion(out).meta
    assert meta["engine"] == "loudness" and meta["checkpoint_sha256"] == "" and meta["smoothed"] == "true"
    assert json.loads(meta["options"])["gain"] == 2.0
    assert meta["audio_sha256"] == motion.meta["audio_sha256"] != ""
    raw = generate(WAV, raw=True, motion=MotionOptions(engine="loudness"))
    np.testing.assert_array_equal(raw.data, expected_raw())
    # An engine object works as well as a registered name, and the clip length stops it early.
    short = generate(WAV, motion=MotionOptions(engine=LoudnessEngine(), clip_length=20))
    np.testing.assert_array_equal(short.data, postprocess(expected_raw(), clip_length=20))


def test_a_new_engine_plugs_into_the_stream(loudness: None) -> None:
    offline = generate(WAV, motion=MotionOptions(engine="loudness", clip_length=0))
    out = io.BytesIO()
    with open(WAV, "rb") as f:
        res = stream_generate(f, out, motion=MotionOptions(engine="loudness", clip_length=0))
    streamed = read_motion(out.getvalue())
    np.testing.assert_array_equal(streamed.data, offline.data)
    assert res.frames == offline.frames and streamed.meta["engine"] == "loudness"
    assert streamed.meta["audio_sha256"] == offline.meta["audio_sha256"]


def test_the_energy_engine_streams_what_it_generates() -> None:
    offline = generate(WAV, motion=MotionOptions(engine="energy", clip_length=120, fix_pose=True, seed=5))
    out = io.BytesIO()
    with open(WAV, "rb") as f:
        res = stream_generate(f, out, motion=MotionOptions(engine="energy", clip_length=120, fix_pose=True, seed=5))
    np.testing.assert_array_equal(read_motion(out.getvalue()).data, offline.data)
    assert res.stopped_early and res.frames == 120


def test_an_engine_refuses_input_it_cannot_read(loudness: None, tiny_assets: Path, tmp_path: Path) -> None:
    from artalk_core.pipeline import encode_audio

    feats = tmp_path / "f.features.safetensors"
    encode_audio(WAV, output=feats, model=ModelOptions(assets=tiny_assets, device="cpu"))
    with pytest.raises(InputError, match="the loudness engine works from audio, not from a features file"):
        generate(feats, motion=MotionOptions(engine="loudness"))
    with pytest.raises(InputError, match="the energy engine works from audio"):
        generate(feats, motion=MotionOptions(engine="energy"))
