"""`artalk render` and `artalk mux`: the real commands on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"


def decode_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory, expected) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("motion") / "speech.motion.safetensors"
    m = expected["motion_final"][:50].copy()
    m[:, 103] = np.linspace(0, 0.3, 50)  # open the jaw over time so frames differ visibly
    write_motion(path, m, {"engine": "artalk", "postprocessed": "true", "smoothed": "true"})
    return path


def test_render_with_audio_and_vertices(artalk, motion_file, tmp_path):
    from artalk_core.video import probe_video

    out, verts = tmp_path / "v.mp4", tmp_path / "v.h5"
    res = artalk("render", motion_file, "-o", out, "--audio", WAV, "--verts", verts, "--assets", tmp_path,
                 "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "stand-in" in res.stderr  # no FLAME file: the stand-in is named
    info = probe_video(out)
    assert info["frames"] == 50 and info["width"] == 512 and info["height"] == 512
    assert abs(info["fps"] - 25) < 1e-6 and info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["audio_codec"] == "aac" and info["audio_rate"] == 16000 and info["audio_channels"] == 1
    assert abs(info["audio_duration"] - 50 / 25) <= 1024 / 16000 + 1e-6
    assert info["metadata"].get("head_is_standin") == "true"
    frames = decode_frames(out)
    assert not np.array_equal(frames[0], frames[-1])  # the jaw opened
    assert np.all(frames[0][:4, :4] >= 250)  # white background in the corner
    from artalk_core.formats.vertices import read_vertices

    with read_vertices(verts) as vf:
        assert vf.frames == 50 and vf.meta["head_is_standin"] in ("true", True)


def test_reference_pt_renders_like_our_motion_file(artalk, motion_file, tmp_path):
    from artalk_core.formats.motion import read_motion

    ref = tmp_path / "speech_default_mesh_motions.pt"
    torch.save(torch.from_numpy(read_motion(motion_file).data), ref)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert artalk("render", motion_file, "-o", a, "--size", "128", "-q").returncode == 0
    assert artalk("render", ref, "-o", b, "--size", "128", "-q").returncode == 0
    fa, fb = decode_frames(a), decode_frames(b)
    assert len(fa) == len(fb) == 50
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_vertices_only_then_render_from_vertices(artalk, motion_file, tmp_path):
    h5 = tmp_path / "only.h5"
    res = artalk("render", motion_file, "-o", h5)
    assert res.returncode == 0, res.stderr
    import h5py

    with h5py.File(h5, "r") as f:
        assert f["vertices"].shape[0] == 50 and f["vertices"].dtype == np.float32
        assert f["faces"].dtype == np.int32 and f.attrs["fps"] == 25
    a, b = tmp_path / "from_motion.mp4", tmp_path / "from_verts.mp4"
    assert artalk("render", motion_file, "-o", a, "--size", "128", "-q").returncode == 0
    assert artalk("render", h5, "-o", b, "--size", "128", "-q").returncode == 0
    assert all(np.array_equal(x, y) for x, y in zip(decode_frames(a), decode_frames(b)))


def test_render_with_fixture_flame_and_shape(artalk, expected, tmp_path):
    """The FLAME path: a head file in the reference layout and a shape vector."""
    from artalk_core.formats.motion import write_motion

    motion = tmp_path / "m.safetensors"
    write_motion(motion, expected["motion_final"][:10], {"engine": "artalk"})
    shape = tmp_path / "shape.pt"
    torch.save(torch.from_numpy(expected["flame_shape_code"])[None], shape)
    out = tmp_path / "v.h5"
    res = artalk("render", motion, "-o", out, "--flame", FIXTURE / "flame_synthetic.pt", "--shape", shape)
    assert res.returncode == 0, res.stderr
    assert "stand-in" not in res.stderr
    from artalk_core.flame import load_flame, load_shape

    head = load_flame(FIXTURE / "flame_synthetic.pt")
    want = head.vertices(expected["motion_final"][:10], load_shape(shape), with_global=True).numpy()
    import h5py

    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["vertices"][:], want, atol=1e-6)


def test_mux_adds_aac_cut_to_the_video(artalk, motion_file, tmp_path):
    from artalk_core.video import probe_video

    silent = tmp_path / "silent.mp4"
    assert artalk("render", motion_file, "-o", silent, "--size", "64", "-q").returncode == 0
    assert probe_video(silent).get("audio_codec") in (None, "")
    # any audio format: make an mp3 of the speech first
    import av

    from artalk_core.audio import load_audio

    mp3 = tmp_path / "speech.mp3"
    samples = load_audio(WAV).samples
    with av.open(str(mp3), "w") as c:
        st = c.add_stream("mp3", rate=16000)
        st.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples[None] * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for p in st.encode(frame):
            c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    out = tmp_path / "with_audio.mp4"
    res = artalk("mux", silent, mp3, "-o", out)
    assert res.returncode == 0, res.stderr
    info = probe_video(out)
    assert info["frames"] == 50 and info["audio_codec"] == "aac"
    assert abs(info["audio_duration"] - 2.0) <= 1024 / 16000 + 1e-6


# ---- bad input ----

def test_missing_flame_file(artalk, motion_file, tmp_path):
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--flame", tmp_path / "FLAME_with_eye.pt")
    assert_clean_error(res, str(tmp_path / "FLAME_with_eye.pt"), "licence")
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--assets", tmp_path, "--no-standin")
    assert_clean_error(res, "FLAME_with_eye.pt", str(tmp_path), "licence")
    assert not (tmp_path / "v.mp4").exists()


def test_wrong_flame_file(artalk, motion_file, tmp_path):
    bad = tmp_path / "FLAME_with_eye.pt"
    torch.save({"something": torch.zeros(3)}, bad)
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--flame", bad)
    assert_clean_error(res, "FLAME_with_eye.pt")


def test_shape_of_wrong_size(artalk, motion_file, tmp_path):
    torch.save(torch.zeros(100), tmp_path / "shape.pt")
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--shape", tmp_path / "shape.pt")
    assert_clean_error(res, "300")
    assert not (tmp_path / "v.mp4").exists()


def test_motion_and_vertices_from_stdin_render_like_files(artalk, motion_file, tmp_path):
    h5 = tmp_path / "v.h5"
    assert artalk("render", motion_file, "-o", h5, "-q").returncode == 0
    a, b, c = tmp_path / "file.mp4", tmp_path / "stdin.mp4", tmp_path / "verts_stdin.mp4"
    assert artalk("render", motion_file, "-o", a, "--size", "64", "-q").returncode == 0
    res = artalk("render", "-", "-o", b, "--size", "64", "-q", input=motion_file.read_bytes())
    assert res.returncode == 0, res.stderr
    res = artalk("render", "-", "-o", c, "--size", "64", "-q", input=h5.read_bytes())
    assert res.returncode == 0, res.stderr
    fa, fb, fc = decode_frames(a), decode_frames(b), decode_frames(c)
    assert len(fa) == len(fb) == len(fc) == 50
    assert all(np.array_equal(x, y) and np.array_equal(x, z) for x, y, z in zip(fa, fb, fc))
    from artalk_core.fileio import sha256_file
    from artalk_core.video import probe_video

    assert probe_video(b)["metadata"]["motion_sha256"] == sha256_file(motion_file)  # hashed while spooled
    res = artalk("render", "-", "-o", tmp_path / "x.mp4", input=b"not motion at all")
    assert_clean_error(res, "<stdin>")


def test_long_motion_is_read_in_blocks_in_order(artalk, tmp_path):
    """2,600 frames span three of the reader's blocks: the vertices come out in order, unchanged."""
    from artalk_core.flame import resolve_flame
    from artalk_core.formats.motion import write_motion
    from artalk_core.formats.vertices import read_vertices

    t = np.arange(2600) / 25.0
    m = np.zeros((2600, 106), np.float32)
    m[:, 103] = 0.15 + 0.15 * np.sin(t)
    m[:, 101] = 0.2 * np.sin(0.3 * t)
    write_motion(tmp_path / "long.safetensors", m)
    res = artalk("render", tmp_path / "long.safetensors", "-o", tmp_path / "long.h5", "-q")
    assert res.returncode == 0, res.stderr
    head = resolve_flame(None, tmp_path)
    idx = [0, 1023, 1024, 2047, 2048, 2599]
    want = head.vertices(m[idx]).cpu().numpy()
    with read_vertices(tmp_path / "long.h5") as vf:
        assert vf.frames == 2600
        got = np.stack([vf[i] for i in idx])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_motion_with_nan_and_empty_motion(artalk, expected, tmp_path):
    m = expected["motion_final"][:10].copy()
    m[3, 50] = np.nan
    torch.save(torch.from_numpy(m), tmp_path / "nan.pt")
    res = artalk("render", tmp_path / "nan.pt", "-o", tmp_path / "v.mp4")
    assert_clean_error(res, "nan")
    torch.save(torch.zeros(0, 106), tmp_path / "empty.pt")
    res = artalk("render", tmp_path / "empty.pt", "-o", tmp_path / "v.mp4")
    assert_clean_error(res, "empty")
    assert not (tmp_path / "v.mp4").exists()


def test_unwritable_output_keeps_nothing(artalk, motion_file, tmp_path):
    res = artalk("render", motion_file, "-o", tmp_path / "missing" / "v.mp4")
    assert_clean_error(res, "does not exist")
    res = artalk("render", motion_file, "-o", "-")
    assert_clean_error(res, "stdout")


def test_odd_size_is_refused(artalk, motion_file, tmp_path):
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--size", "101")
    assert_clean_error(res, "even")


def test_frame_extracts_a_png(artalk, motion_file, tmp_path):
    video = tmp_path / "v.mp4"
    assert artalk("render", motion_file, "-o", video, "--size", "64", "-q").returncode == 0
    res = artalk("frame", video, "-o", tmp_path / "f.png", "--index", "10")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean_error(artalk("frame", video, "-o", tmp_path / "g.png", "--index", "500"), "50 frames")
