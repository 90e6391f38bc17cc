"""The pipeline stages write and read block by block: same numbers as the whole-array algorithm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artalk_core.audio import load_audio, write_wav
from artalk_core.formats.motion import read_motion, write_motion
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.pipeline import encode_audio, generate, load_artalk, smooth
from artalk_core.postprocess import postprocess
from tests.conftest import FIXTURE

SR = 16000


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9.3 s of speech-like audio (the fixture's clip, repeated): 233 frames, three model chunks."""
    base = load_audio(FIXTURE / "speech_16k.wav").samples
    x = np.tile(base, int(np.ceil(9.3 * SR / len(base))))[: int(9.3 * SR)]
    path = tmp_path_factory.mktemp("speech") / "long.wav"
    write_wav(path, x)
    return path


@pytest.fixture(scope="module")
def raw_reference(tiny_assets: Path, speech: Path) -> np.ndarray:
    """The model's raw motion of the whole signal, made in one piece (the reference algorithm's way)."""
    loaded = load_artalk(ModelOptions(assets=tiny_assets, device="cpu"))
    audio = torch.from_numpy(load_audio(speech).samples)
    feats = loaded.model.encode_audio(audio)
    return loaded.model.generate(feats, 233, fast=False).numpy()


def test_generate_to_a_file_equals_the_whole_array_algorithm(tiny_assets, speech, raw_reference, tmp_path):
    out = tmp_path / "m.motion.safetensors"
    motion = generate(speech, output=out, motion=MotionOptions(clip_length=0), model=ModelOptions(assets=tiny_assets, device="cpu"))
    want = postprocess(raw_reference)
    assert isinstance(motion.data, np.memmap)  # not held: mapped from the spool
    assert np.array_equal(motion.data, want)
    on_disk = read_motion(out)
    assert np.array_equal(on_disk.data, want) and on_disk.meta["audio_samples"] == str(int(9.3 * SR))
    raw = generate(speech, output=tmp_path / "raw.safetensors", raw=True, model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert np.array_equal(read_motion(tmp_path / "raw.safetensors").data, raw_reference)
    assert np.array_equal(raw.data, raw_reference)
    # Without an output the same frames come back in memory; .pt keeps the reference format.
    assert np.array_equal(generate(speech, motion=MotionOptions(clip_length=0), model=ModelOptions(assets=tiny_assets, device="cpu")).data, want)
    from artalk_core.errors import ArtalkWarning

    with pytest.warns(ArtalkWarning, match="keeps no metadata"):
        generate(speech, output=tmp_path / "m.pt", motion=MotionOptions(clip_length=0), model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert np.array_equal(torch.load(tmp_path / "m.pt").numpy(), want)


def test_generate_stops_at_the_clip_length_but_reads_the_whole_audio(tiny_assets, speech, raw_reference, tmp_path):
    seen: list[tuple[str, int, int]] = []
    motion = generate(speech, output=tmp_path / "m.safetensors", progress=lambda stage, done, total: seen.append((stage, done, total)), motion=MotionOptions(clip_length=30), model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert np.array_equal(motion.data, postprocess(raw_reference, clip_length=30))
    assert max(done for stage, done, _ in seen if stage == "generate") < 3  # the third chunk was never made
    assert motion.meta["audio_samples"] == str(int(9.3 * SR))  # the length is still the whole audio's


def test_features_file_in_and_out_in_blocks(tiny_assets, speech, raw_reference, tmp_path):
    feats_path = tmp_path / "f.features.safetensors"
    written = encode_audio(speech, output=feats_path, model=ModelOptions(assets=tiny_assets, device="cpu"))
    in_memory = encode_audio(speech, model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert isinstance(written.data, np.memmap) and np.array_equal(written.data, in_memory.data)
    assert written.meta["chunks"] == "3" and written.meta["audio_samples"] == str(int(9.3 * SR))
    motion = generate(feats_path, output=tmp_path / "m.safetensors", motion=MotionOptions(clip_length=0), model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert np.array_equal(motion.data, postprocess(raw_reference))
    assert motion.meta["audio_sha256"] == written.meta["audio_sha256"]


def test_energy_engine_streams_the_same_motion(speech, tmp_path):
    from artalk_core.engines.energy import energy_motion

    motion = generate(speech, output=tmp_path / "e.safetensors", motion=MotionOptions(engine="energy", clip_length=0, seed=4))
    want = postprocess(energy_motion(load_audio(speech).samples, seed=4))
    assert np.array_equal(read_motion(tmp_path / "e.safetensors").data, want)
    assert np.array_equal(motion.data, want)


@pytest.mark.parametrize("piece", [1, 639, 640, 7000, 10**6])
def test_energy_blocks_equal_the_whole(speech, piece):
    """The energy engine is causal: fed in pieces of any size, each piece's frames come out at once
    (all but the newest frame, the one-frame look-ahead) and the whole is the same bit for bit."""
    from artalk_core.engines.energy import energy_motion, iter_energy_motion

    x = load_audio(speech).samples[:40_000 if piece == 1 else None]
    whole = energy_motion(x, seed=2)
    pieces = list(iter_energy_motion((x[i:i + piece] for i in range(0, len(x), piece)), seed=2))
    heard = np.cumsum([min(piece, len(x) - i) for i in range(0, len(x), piece)])
    assert [p.shape[0] for p in pieces[:-1]] == list(np.diff(np.maximum(heard // 640 - 1, 0), prepend=0))
    assert np.array_equal(np.concatenate(pieces), whole)


@pytest.mark.parametrize("clip", [0, 750, 5000])
def test_smooth_in_blocks_equals_postprocess(tmp_path, clip):
    data = np.cumsum(np.random.default_rng(3).standard_normal((9000, 106)).astype(np.float32) * 0.01, axis=0)
    src = tmp_path / "raw.safetensors"
    write_motion(src, data, {"smoothed": "false", "postprocessed": "false", "engine": "energy"})
    out = tmp_path / "s.safetensors"
    motion = smooth(src, output=out, clip_length=clip)
    want = postprocess(data, clip_length=clip or None)
    assert np.array_equal(read_motion(out).data, want) and np.array_equal(motion.data, want)
    assert motion.meta["engine"] == "energy" and motion.meta["smoothed"] == "true"
