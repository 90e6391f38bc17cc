"""LiveSession and the scheduler: PCM bytes in pieces of any size, any rate, the offline frames out, bit for bit."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

from artalk_core.audio import load_audio
from artalk_core.audio.pcm import PcmLayout
from artalk_core.errors import AudioError
from artalk_core.formats.motion import read_motion
from artalk_core.live.scheduler import LiveJob, Scheduler
from artalk_core.live.session import LiveSession
from artalk_core.options import ModelOptions, MotionOptions
from tests.conftest import FIXTURE
from tests.core.test_streaming import wav_bytes

WAV = FIXTURE / "speech_16k.wav"


def speech(n: int = 100_000) -> np.ndarray:
    return load_audio(WAV).samples[:n]


def encode(x: np.ndarray, layout: PcmLayout) -> bytes:
    """Mono float samples as interleaved PCM of ``layout`` (a second channel: the reversed signal)."""
    chans = np.stack([x, x[::-1]][:layout.channels], axis=1)
    if layout.sample_format == "s16":
        return np.round(chans * 32767).astype("<i2").tobytes()
    return chans.astype("<f4").tobytes()


def offline(tmp_path: Path, x: np.ndarray, layout: PcmLayout, engine: str, assets: Path, **kw: object) -> np.ndarray:
    """`artalk generate --clip-length 0` of the same PCM written as a WAV file."""
    from artalk_core.pipeline import generate

    path = tmp_path / "same.wav"
    pcm = np.frombuffer(encode(x, layout), "<i2" if layout.sample_format == "s16" else "<f4")
    path.write_bytes(wav_bytes(pcm, rate=layout.rate, channels=layout.channels,
                               tag=1 if layout.sample_format == "s16" else 3,
                               bits=16 if layout.sample_format == "s16" else 32))
    return generate(str(path), motion=MotionOptions(engine=engine, style="tiny_0", clip_length=0),
                    model=ModelOptions(assets=assets, **kw)).data  # type: ignore[arg-type]


def session(engine: str, layout: PcmLayout, assets: Path, **kw: object) -> LiveSession:
    from artalk_core.engines import create_engine
    from artalk_core.styles import resolve_style

    return LiveSession(create_engine(engine, ModelOptions(assets=assets, device="cpu")),
                       resolve_style("tiny_0", assets=assets), layout, meta={"engine": engine}, **kw)  # type: ignore[arg-type]


def run(s: LiveSession, data: bytes, pieces: np.ndarray) -> tuple[list[str], list[int]]:
    """Feed ``data`` cut at ``pieces``, computing whenever a block is ready; the lines, and the
    frames out after each piece."""
    lines, counts = [s.header], []
    for a, b in zip(pieces[:-1], pieces[1:]):
        s.feed(data[a:b])
        while s.ready:
            work = s.take()
            if work is None:
                break
            lines += s.compute(work)
        counts.append(s.frames)
    s.end()
    lines += s.compute(s.take())  # type: ignore[arg-type]
    return lines, counts


def cuts(n: int, seed: int, most: int) -> np.ndarray:
    sizes = np.random.default_rng(seed).integers(1, most, size=n // 2 + 2)
    return np.unique(np.clip(np.concatenate([[0], np.cumsum(sizes)]), 0, n))


@pytest.mark.parametrize("engine, layout", [
    ("artalk", PcmLayout("s16", 1, 16000)),
    ("artalk", PcmLayout("s16", 2, 44100)),
    ("energy", PcmLayout("s16", 1, 16000)),
    ("energy", PcmLayout("f32", 1, 48000)),
    ("energy", PcmLayout("s16", 2, 8000)),
])
def test_session_equals_offline(tiny_assets: Path, tmp_path: Path, engine: str, layout: PcmLayout) -> None:
    x = speech()
    data = encode(x, layout)
    lines, _ = run(session(engine, layout, tiny_assets), data, cuts(len(data), 1, 9000))
    got = read_motion(("\n".join(lines) + "\n").encode())
    np.testing.assert_array_equal(got.data, offline(tmp_path, x, layout, engine, tiny_assets))
    assert lines[-1].startswith('{"end": true') and got.meta["engine"] == engine


def test_frames_leave_as_soon_as_final(tiny_assets: Path) -> None:
    """The energy engine: frame t once frame t + 5 is in (1 look-ahead + 4 of smoothing, after the
    first 9-frame window); the model: a chunk's frames but the last 4 once the chunk is in."""
    x = speech(64_000 + 3_000)
    data = encode(x, PcmLayout("s16", 1, 16000))
    frame_cuts = np.arange(0, len(data) + 1, 1280)  # one frame per piece
    _, counts = run(session("energy", PcmLayout("s16", 1, 16000), tiny_assets), data, frame_cuts)
    assert counts[:9] == [0] * 9 and counts[9:40] == [k + 1 - 5 for k in range(9, 40)]
    s = session("artalk", PcmLayout("s16", 1, 16000), tiny_assets)
    _, counts = run(s, data, np.array([0, 127_998, 128_000, len(data)]))
    assert counts == [0, 96, 96]
    assert s.header.count('"block_frames": 100') == 1 and '"delay_frames": 4' in s.header


def test_errors_and_clip_length(tiny_assets: Path) -> None:
    layout = PcmLayout("f32", 1, 16000)
    s = session("energy", layout, tiny_assets)
    s.feed(np.array([0.0, np.nan], "<f4").tobytes())
    with pytest.raises(AudioError, match="NaN"):
        s.take()
    assert '"error": "the stream contains NaN' in s.fail(AudioError("the stream contains NaN"))[-1]
    for data, words in ((b"", "empty"), (bytes(400 * 4), "too short")):
        s = session("energy", layout, tiny_assets)
        s.feed(data)
        s.end()
        with pytest.raises(AudioError, match=words):
            s.compute(s.take())  # type: ignore[arg-type]
    s = session("energy", PcmLayout("s16", 1, 16000), tiny_assets, clip_length=30)
    lines, _ = run(s, encode(speech(), PcmLayout("s16", 1, 16000)), np.array([0, 64_000, 200_000]))
    assert s.done and s.stopped_early and '"stopped_early": "true"' in lines[-1] and len(lines) == 32


def test_scheduler_batched_encoding_equals_the_exact_mode(tiny_assets: Path, tmp_path: Path) -> None:
    """Three model streams waiting at once: batch 4 encodes their chunks in shared calls (counted),
    and every stream's frames are the offline ones, as in the exact mode (batch 1)."""
    from artalk_core.engines import create_engine
    from artalk_core.styles import resolve_style

    layout = PcmLayout("s16", 1, 16000)
    signals = [speech(130_000), speech(150_000)[::-1].copy(), speech(70_000) * 0.5]
    wants = [offline(tmp_path, x, layout, "artalk", tiny_assets) for x in signals]
    engine = create_engine("artalk", ModelOptions(assets=tiny_assets, device="cpu"))
    style = resolve_style("tiny_0", assets=tiny_assets)
    rows: list[int] = []
    real = engine.encode  # type: ignore[attr-defined]

    def counting(chunks: np.ndarray) -> object:
        rows.append(chunks.shape[0])
        return real(chunks)

    engine.encode = counting  # type: ignore[attr-defined]
    for batch in (1, 4):
        rows.clear()
        gate = threading.Lock()
        scheduler = Scheduler(batch=batch, lock=gate)
        outs: list[list[str]] = [[] for _ in signals]
        done = [threading.Event() for _ in signals]
        jobs = []
        with gate:  # the worker waits: every stream's audio is in before the first round
            for i, x in enumerate(signals):
                s = LiveSession(engine, style, layout, meta={})
                outs[i].append(s.header)

                def deliver(lines: list[str], over: bool, i: int = i, outs: list = outs, done: list = done) -> None:
                    outs[i].extend(lines)
                    if over:
                        done[i].set()

                job = LiveJob(s, deliver)
                jobs.append(job)
                s.feed(encode(x, layout))
                s.end()
                scheduler.submit(job)
        for event in done:
            assert event.wait(120)
        scheduler.close()
        for lines, want in zip(outs, wants):
            np.testing.assert_array_equal(read_motion(("\n".join(lines) + "\n").encode()).data, want)
        assert all(job.freed.is_set() for job in jobs)
        assert (max(rows) > 1) == (batch > 1) and sum(rows) == 3 + 3 + 2, rows
        assert len(scheduler.timings) >= 3


def test_an_abandoned_stream_is_freed(tiny_assets: Path) -> None:
    scheduler = Scheduler()
    s = session("artalk", PcmLayout("s16", 1, 16000), tiny_assets)
    out: list[str] = []
    job = LiveJob(s, lambda lines, over: out.extend(lines))
    s.feed(encode(speech(70_000), PcmLayout("s16", 1, 16000)))
    scheduler.submit(job)
    scheduler.abandon(job)  # the client went away (maybe while its chunk is computed)
    assert job.freed.wait(60) and s.done
    ref = weakref.ref(s)
    del s, job
    gc.collect()
    scheduler.close()
    assert ref() is None  # nothing kept the session alive


def test_a_waiting_stream_holds_no_modulations() -> None:
    """A live model stream waits for audio inside the generator; the audio modulations of its last
    chunk (40 MB at full size) must not be held meanwhile, or every waiting stream costs that."""
    import torch

    from artalk_core.model.checkpoint import load_model
    from artalk_core.model.config import ModelConfig

    model = load_model(FIXTURE / "weights.safetensors", ModelConfig.from_file(FIXTURE / "model_config.json"))
    feats = model.encode_chunks(torch.from_numpy(speech(64_000)))
    gen = model._generate_stream(iter([feats, feats]), None, None, fast=True, precision="fp32", cond_batch=4, total=0)
    next(gen)
    assert gen.gi_frame is not None and gen.gi_frame.f_locals["mods"] == []
    assert gen.gi_frame.f_locals["head_mod"].numel() == 0
    gen.close()
