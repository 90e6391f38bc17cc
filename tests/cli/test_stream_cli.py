"""`artalk generate --stream`: stdin in, the NDJSON motion stream out, equal to the offline result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"


def motion_of(data: bytes | Path) -> np.ndarray:
    from artalk_core.formats.motion import read_motion

    return read_motion(data).data


@pytest.fixture(scope="module")
def offline(artalk, tiny_assets, tmp_path_factory) -> dict[str, np.ndarray]:
    """`artalk generate speech.wav` without --stream: post-processed (all frames) and raw."""
    out = tmp_path_factory.mktemp("offline")
    res = artalk("generate", WAV, "-s", "tiny_0", "--clip-length", "0", "-o", out / "pp.safetensors",
                 "--assets", tiny_assets, "-q")
    assert res.returncode == 0, res.stderr
    res = artalk("generate", WAV, "-s", "tiny_0", "--raw", "-o", out / "raw.safetensors", "--assets", tiny_assets, "-q")
    assert res.returncode == 0, res.stderr
    return {"pp": motion_of(out / "pp.safetensors"), "raw": motion_of(out / "raw.safetensors")}


def test_stream_from_stdin_equals_offline(artalk, tiny_assets, offline) -> None:
    res = artalk("generate", "-", "--stream", "-s", "tiny_0", "--clip-length", "0", "-o", "-",
                 "--assets", tiny_assets, input=WAV.read_bytes())
    assert res.returncode == 0, res.stderr
    assert "streamed 252 frames" in res.stderr
    lines = res.stdout.decode().splitlines()
    header, end = json.loads(lines[0]), json.loads(lines[-1])
    assert header["format"] == "artalk.motion-stream" and header["delay_frames"] == 4
    assert end == {**end, "end": True, "frames": 252, "audio_samples": "160707"}
    np.testing.assert_array_equal(motion_of(res.stdout), offline["pp"])

    res = artalk("generate", "-", "--stream", "--raw", "-s", "tiny_0", "--assets", tiny_assets, "-q",
                 input=WAV.read_bytes())  # stdout is the default output of --stream
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[0])["delay_frames"] == 0
    np.testing.assert_array_equal(motion_of(res.stdout), offline["raw"])


def test_stream_raw_pcm_to_file(artalk, tiny_assets, offline, tmp_path) -> None:
    from artalk_core.audio import load_audio

    pcm = np.round(load_audio(WAV).samples * 32768).astype("<i2").tobytes()
    out = tmp_path / "m.ndjson"
    res = artalk("generate", "-", "--stream", "--stream-format", "raw", "-s", "tiny_0", "--clip-length", "0",
                 "-o", out, "--assets", tiny_assets, "-q", input=pcm)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(motion_of(out), offline["pp"])


def test_stream_pipes_into_smooth_and_render(artalk, tiny_assets, offline, tmp_path) -> None:
    raw = artalk("generate", "-", "--stream", "--raw", "-s", "tiny_0", "--assets", tiny_assets, "-q",
                 input=WAV.read_bytes())
    assert raw.returncode == 0, raw.stderr
    smoothed = artalk("smooth", "-", "--clip-length", "0", "-o", "-", "-q", input=raw.stdout)
    assert smoothed.returncode == 0, smoothed.stderr
    np.testing.assert_array_equal(motion_of(smoothed.stdout), offline["pp"])
    video = tmp_path / "x.mp4"
    res = artalk("render", "-", "-o", video, "--size", "64", "--assets", tiny_assets, "-q", input=raw.stdout)
    assert res.returncode == 0, res.stderr
    from artalk_core.video import probe_video

    assert probe_video(video)["frames"] == 252


def test_first_chunk_comes_out_before_the_input_ends(tiny_assets) -> None:
    """Feed the first 4-s chunk, keep stdin open: its frames (all but the last 4) must arrive."""
    data = WAV.read_bytes()
    first_chunk_end = 44 + 64000 * 2
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("ARTALK_ASSETS", None)
    proc = subprocess.Popen([sys.executable, "-m", "artalk_cli.main", "generate", "-", "--stream", "-s", "tiny_0",
                             "--clip-length", "0", "--assets", str(tiny_assets), "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines: list[bytes] = []
    got_96 = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if len(lines) == 1 + 96:
                got_96.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(data[:first_chunk_end])
        proc.stdin.flush()
        arrived = got_96.wait(timeout=120)
        frames_before_eof = len(lines) - 1
        assert arrived, f"only {frames_before_eof} frame(s) before the input ended; stderr: {proc.stderr.read1()!r}"
        time.sleep(0.3)
        assert len(lines) - 1 == 96  # frames 96..99 wait for frame 100 (the 4-frame delay)
        proc.stdin.write(data[first_chunk_end:])
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    assert json.loads(lines[-1])["frames"] == 252


def _wav(rate: int = 16000, channels: int = 1, n: int = 20000) -> bytes:
    import struct

    pcm = np.zeros(n * channels, "<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


@pytest.mark.parametrize("args, data, words", [
    ([], _wav(rate=44101), ["44101 Hz", "cannot be resampled"]),
    ([], b"", ["empty"]),
    ([], _wav()[:30], ["cut short", "header"]),
    ([], b"fLaC" + bytes(200), ["not a wav stream", "--stream-format raw"]),
    (["--stream-format", "raw"], bytes(600), ["too short"]),
    (["--stream-format", "aiff"], _wav(), ["stream-format"]),
    (["--raw", "--fix-pose"], _wav(), ["--raw"]),
])
def test_stream_errors_are_one_line(artalk, tiny_assets, args, data, words) -> None:
    res = artalk("generate", "-", "--stream", *args, "--assets", tiny_assets, input=data)
    assert_clean_error(res, *words)


def test_energy_engine_streams_stereo_44k_like_offline(artalk, tmp_path) -> None:
    """--stream takes the energy engine and any WAV rate: the same frames as the offline command."""
    from artalk_core.audio import load_audio

    x = load_audio(WAV).samples[:50_000]
    pcm = np.round(np.stack([x, 0.5 * x], axis=1) * 32767).astype("<i2").tobytes()
    wav = _wav(rate=44100, channels=2, n=0)[:-8] + b"data" + len(pcm).to_bytes(4, "little") + pcm
    wav = wav[:4] + (len(wav) - 8).to_bytes(4, "little") + wav[8:]
    (tmp_path / "in.wav").write_bytes(wav)
    res = artalk("generate", tmp_path / "in.wav", "--engine", "energy", "--clip-length", "0", "-o",
                 tmp_path / "o.safetensors", "-q")
    assert res.returncode == 0, res.stderr
    res = artalk("generate", "-", "--stream", "--engine", "energy", "--clip-length", "0", input=wav)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[0])["delay_frames"] == 5  # 4 of smoothing + 1 of look-ahead
    np.testing.assert_array_equal(motion_of(res.stdout), motion_of(tmp_path / "o.safetensors"))


def test_stream_format_needs_stream(artalk, tiny_assets) -> None:
    res = artalk("generate", "-", "--stream-format", "raw", "--assets", tiny_assets, input=bytes(64000))
    assert_clean_error(res, "--stream")


def test_info_names_a_motion_stream(artalk, tiny_assets, tmp_path):
    import json

    out = tmp_path / "s.ndjson"
    res = artalk("generate", "-", "--stream", "-o", out, "--assets", tiny_assets, "-q", input=WAV.read_bytes())
    assert res.returncode == 0, res.stderr
    d = json.loads(artalk("info", out, "--json").stdout)
    assert d["kind"] == "motion-stream" and d["format"] == "artalk.motion-stream" and d["frames"] == 252
