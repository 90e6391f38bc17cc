"""H.264 writing, muxing and probing: format, timing, atomicity, bounded memory."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import av
import numpy as np
import pytest

from artalk_core.errors import InputError, OutputError
from artalk_core.fileio import provenance
from artalk_core.video import AAC_FRAME, VideoWriter, mux, probe_video, write_video


def frame(i: int, size: int = 512) -> np.ndarray:
    """A white frame with a red square top-left and a blue bar that moves with ``i``."""
    img = np.full((size, size, 3), 255, np.uint8)
    q = size // 4
    img[:q, :q] = (220, 30, 30)
    x = (i * 7) % (size - q)
    img[size - q:, x:x + q] = (30, 30, 220)
    return img


def sine(n: int, rate: int = 16000, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


def decode_video(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_video_format_and_pixels(tmp_path):
    path = tmp_path / "out.mp4"
    meta = provenance("artalk render", options={"size": 512})
    n = write_video(path, (frame(i) for i in range(30)), meta=meta)
    assert n == 30
    info = probe_video(path)
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (30, 25.0, 512, 512)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["duration"] == pytest.approx(30 / 25)
    assert info["audio_codec"] is None
    # provenance survives as tags
    assert info["metadata"]["created_by"] == "artalk render"
    assert info["metadata"]["artalk_version"] == meta["artalk_version"]
    assert '"created_by": "artalk render"' in info["metadata"]["comment"]
    frames = decode_video(path)
    assert len(frames) == 30
    for i in (0, 17, 29):
        # CRF 18 is near-lossless on flat colours: same picture, same orientation, same channels
        assert np.abs(frames[i].astype(int) - frame(i).astype(int)).mean() < 2.0
    assert frames[0][10, 10, 0] > 200 and frames[0][10, 10, 2] < 60  # red, top-left
    head = path.read_bytes()[:4096]  # faststart: the index (moov) comes before the media data
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


@pytest.mark.parametrize("n_samples", [36000, 80000])  # shorter (padded) and longer (cut) than 2 s
def test_audio_track_matches_the_video_length(tmp_path, n_samples):
    path = tmp_path / "av.mp4"
    audio = sine(n_samples)
    T = 50
    with VideoWriter(path, size=64, audio=audio) as w:
        for i in range(T):
            w.write(frame(i, 64))
    info = probe_video(path)
    assert (info["audio_codec"], info["audio_rate"], info["audio_channels"]) == ("aac", 16000, 1)
    assert info["frames"] == T
    assert abs(info["audio_duration"] - T / 25) <= AAC_FRAME / 16000
    pcm = decode_audio(path)
    cut = int(T / 25 * 16000)  # 32000
    assert cut <= len(pcm) < cut + 2 * AAC_FRAME
    # the tone is there, in time (compare away from the codec's start-up)
    seg = slice(4000, 12000)
    corr = np.corrcoef(pcm[seg], audio[seg])[0, 1]
    assert corr > 0.95
    if n_samples < cut:  # padded with silence after the audio ends
        tail = pcm[n_samples + 1500:cut - 500]
        assert np.sqrt(np.mean(tail ** 2)) < 0.01
        assert np.sqrt(np.mean(pcm[20000:30000] ** 2)) > 0.15


def test_mux_copies_the_video_stream_and_adds_audio(tmp_path):
    src = tmp_path / "silent.mp4"
    write_video(src, (frame(i, 128) for i in range(40)), meta={"created_by": "artalk render"})
    out = tmp_path / "with_audio.mp4"
    mux(src, sine(40000), out, meta={"audio_sha256": "abc"})
    info = probe_video(out)
    assert info["frames"] == 40 and info["codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["audio_duration"] - 40 / 25) <= AAC_FRAME / 16000
    assert info["metadata"]["created_by"] == "artalk render"
    assert info["metadata"]["audio_sha256"] == "abc"

    def packets(p: Path) -> list[bytes]:
        with av.open(str(p)) as c:
            return [bytes(pk) for pk in c.demux(c.streams.video[0]) if pk.size]

    assert packets(src) == packets(out)  # stream copy, not a re-encode
    # in place
    mux(out, sine(1000), out)
    assert probe_video(out)["audio_duration"] == pytest.approx(40 / 25, abs=AAC_FRAME / 16000)


def test_failure_leaves_no_file_and_keeps_an_existing_one(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, size=64) as w:
            for i in range(5):
                w.write(frame(i, 64))
            raise RuntimeError("interrupted")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    write_video(path, [frame(0, 64)] * 3)
    before = path.read_bytes()
    with pytest.raises(InputError):
        with VideoWriter(path, size=64) as w:
            w.write(frame(0, 64))
            w.write(frame(0, 32))  # wrong size
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("background", [True, False])
def test_encoder_failure_surfaces_and_cleans_up(tmp_path, background):
    path = tmp_path / "broken.mp4"
    w = VideoWriter(path, size=64, background=background)

    def broken(vf):
        raise ValueError("encoder exploded")

    w._encode = broken  # type: ignore[method-assign]
    with pytest.raises(OutputError, match="encoder exploded"):
        for i in range(50):  # the background worker reports it at a later write or at close
            w.write(frame(i, 64))
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_validation(tmp_path):
    for size in (511, 8, (64, 63), 0):
        with pytest.raises(InputError):
            VideoWriter(tmp_path / "x.mp4", size=size)
    with pytest.raises(InputError):
        write_video(tmp_path / "x.mp4", [])
    with pytest.raises(InputError):
        VideoWriter(tmp_path / "x.mp4", size=64, preset="ludicrous")
    with pytest.raises(InputError):
        VideoWriter(tmp_path / "x.mp4", size=64, audio=np.zeros((2, 100), np.float32))
    w = VideoWriter(tmp_path / "x.mp4", size=64)
    with pytest.raises(InputError):
        w.write(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError):
        w.close()  # no frames
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(OutputError):
        w.write(frame(0, 64))
    with pytest.raises(OutputError):
        VideoWriter(tmp_path / "missing" / "x.mp4", size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("background", [True, False])
def test_non_square_and_foreground_modes(tmp_path, background):
    path = tmp_path / "wide.mp4"
    with VideoWriter(path, size=(96, 64), background=background) as w:
        buf = np.zeros((64, 96, 3), np.uint8)
        for i in range(12):
            buf[:] = i * 20  # the caller reuses its buffer: frames must still differ
            w.write(buf)
    info = probe_video(path)
    assert (info["frames"], info["width"], info["height"]) == (12, 96, 64)
    means = [f.mean() for f in decode_video(path)]
    assert np.all(np.diff(means) > 10)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_does_not_grow_with_duration(tmp_path):
    size = 256
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "long.mp4", size=size, audio=sine(16000 * 20)) as w:
        for i in range(500):
            if i == 100:
                gc.collect()
                start = _rss_bytes()
            w.write(np.roll(noise, i, axis=1))
        gc.collect()
        growth = _rss_bytes() - start
    # keeping the 400 frames would cost 400 * 196 KB = 78 MB
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 400 frames"
    assert probe_video(tmp_path / "long.mp4")["frames"] == 500


# ---------------------------------------------------------------------------------------------
# Issue 11: a half-written file's frames; containers we cannot write are refused


def test_half_written_mp4_reports_the_frames_that_decode(tmp_path: Path) -> None:
    from artalk_core.info import describe_file

    full = tmp_path / "full.mp4"
    write_video(full, (frame(i, 64) for i in range(50)), audio=sine(32000))
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    with av.open(str(cut)) as c:
        v = c.streams.video[0]
        header = v.frames
        decoded = 0
        for packet in c.demux(v):  # every frame that decodes, skipping a packet that fails
            try:
                decoded += len(v.decode(packet))
            except av.FFmpegError:
                pass
    assert header == 50  # faststart: the index at the front still announces every frame
    frames = probe_video(cut)["frames"]
    assert frames == decoded < 50
    assert describe_file(cut)["frames"] == frames
    assert probe_video(full)["frames"] == describe_file(full)["frames"] == 50


@pytest.mark.parametrize("name", ["x.avi", "x.webm", "x.gif", "x.MP3"])
def test_unwritable_container_is_refused(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    for call in (lambda: VideoWriter(out, size=64), lambda: write_video(out, [frame(0, 64)])):
        with pytest.raises(InputError, match=r"\.mp4.*\.mkv"):
            call()
    src = tmp_path / "v.mp4"
    write_video(src, [frame(0, 64)] * 3)
    with pytest.raises(InputError, match="mp4"):
        mux(src, sine(1000), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


@pytest.mark.parametrize("name,container", [("x.mkv", "matroska"), ("x.MOV", "mov"), ("x.m4v", "mp4"),
                                            ("noext", "mp4")])
def test_extension_picks_the_container(tmp_path: Path, name: str, container: str) -> None:
    out = tmp_path / name
    write_video(out, (frame(i, 64) for i in range(10)), audio=sine(6400), meta={"created_by": "test"})
    with av.open(str(out)) as c:
        assert container in c.format.name.split(",")
    info = probe_video(out)
    assert info["frames"] == 10 and info["codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["metadata"].get("created_by") == "test"
    muxed = tmp_path / f"m{Path(name).suffix}"
    mux(out, sine(16000), muxed)
    assert probe_video(muxed)["frames"] == 10


def test_render_animate_mux_refuse_the_container_before_any_work(tmp_path: Path) -> None:
    """The extension is checked first: the inputs here do not even exist (exit 2 in the CLI)."""
    from artalk_core.animate import animate
    from artalk_core.render.stage import mux as mux_cmd
    from artalk_core.render.stage import render

    missing = tmp_path / "missing"
    with pytest.raises(InputError, match=r"x\.avi.*\.mp4"):
        render(missing, output=tmp_path / "x.avi")
    with pytest.raises(InputError, match=r"x\.avi.*\.mp4"):
        animate(missing, output=tmp_path / "x.avi")
    with pytest.raises(InputError, match=r"x\.avi.*\.mp4"):
        mux_cmd(missing, missing, output=tmp_path / "x.avi")
    assert list(tmp_path.iterdir()) == []
