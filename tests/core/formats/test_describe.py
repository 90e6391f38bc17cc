"""describe_file / format_description on every kind of file, and sniff_kind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save

from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import provenance
from artalk_core.formats import sniff_kind
from artalk_core.formats.features import write_features
from artalk_core.formats.motion import write_motion
from artalk_core.info import describe_file, format_description

SHA = "c" * 64


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    n = int(seconds * rate)
    samples = (np.sin(np.arange(n) / 10) * 10000).astype(np.int16)[None]
    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _mp4(path: Path, frames: int = 10) -> None:
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000, layout="mono")
        for i in range(frames):
            img = np.full((48, 64, 3), i * 20, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 6400), np.float32), format="fltp", layout="mono")
        af.sample_rate = 16000
        for p in a.encode(af):
            c.mux(p)
        for p in a.encode(None):
            c.mux(p)


def _check_text(d: dict) -> str:
    json.dumps(d)  # JSON-ready
    text = format_description(d)
    assert text.splitlines()[0].startswith(f"{d['kind']}: {d['path']}")
    return text


def test_motion(tmp_path: Path) -> None:
    data = np.zeros((50, 106), np.float32)
    data[:, 103] = np.linspace(0, 0.3, 50)
    data[:, 100] = -0.2
    path = tmp_path / "m.safetensors"
    write_motion(path, data, {"engine": "artalk", "postprocessed": True, **provenance("artalk generate")})
    d = describe_file(path)
    assert d["kind"] == "motion" and d["path"] == str(path) and d["size_bytes"] == path.stat().st_size
    assert d["frames"] == 50 and d["duration_s"] == 2.0 and d["fps"] == 25 and d["shape"] == [50, 106]
    assert d["postprocessed"] is True and d["metadata"]["engine"] == "artalk"
    jaw = d["channel_ranges"]["jaw_open"]
    assert jaw["min"] == 0.0 and jaw["max"] == pytest.approx(0.3)
    assert d["channel_ranges"]["global_rotation"]["min"] == pytest.approx(-0.2)
    text = _check_text(d)
    assert "jaw_open" in text and "engine" in text and "frames" in text


def test_features(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    write_features(path, np.ones((2, 199, 8), np.float32),
                   {"audio_samples": 100000, "checkpoint_sha256": SHA})
    d = describe_file(path)
    assert d["kind"] == "features" and d["chunks"] == 2 and d["feature_dim"] == 8
    assert d["frames"] == 157 and d["audio_samples"] == 100000
    assert d["metadata"]["checkpoint_sha256"] == SHA
    assert "feature_dim" in _check_text(d)


def test_reference_style_and_motion_pt(tmp_path: Path) -> None:
    path = tmp_path / "style.pt"
    torch.save(torch.zeros(50, 106), path)
    d = describe_file(path)
    assert d["kind"] == "reference-pt" and d["content"] == "style" and d["shape"] == [50, 106]
    assert "reference-format" in d["note"] and d["frames"] == 50
    torch.save(torch.zeros(80, 106), path)
    d = describe_file(path)
    assert d["content"] == "motion" and d["duration_s"] == 3.2
    assert "reference-format motion" in _check_text(d)


def test_torch_dict_and_other_tensor(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.zeros(3, 4), "b": torch.zeros(4)}, "epoch": 3}, path)
    d = describe_file(path)
    assert d["content"] == "dict" and d["tensor_count"] == 2 and d["parameters"] == 16
    assert {t["name"] for t in d["tensors"]} == {"model.w", "model.b"}
    _check_text(d)
    torch.save(torch.zeros(3, 7, dtype=torch.int64), path)
    d = describe_file(path)
    assert d["content"] == "tensor" and d["dtype"] == "int64"


def test_other_safetensors_from_bytes() -> None:
    blob = st_save({"a": np.zeros((2, 3), np.float32), "b": np.zeros(4, np.int32)}, metadata={"k": "v"})
    d = describe_file(blob)
    assert d["kind"] == "safetensors" and d["path"] == "<bytes>" and d["size_bytes"] == len(blob)
    assert d["tensor_count"] == 2 and d["parameters"] == 10 and d["metadata"] == {"k": "v"}
    assert [t["name"] for t in d["tensors"]] == ["a", "b"]
    _check_text(d)


def test_audio(tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    _wav(path, seconds=0.5)
    assert sniff_kind(path) == "audio"
    d = describe_file(path)
    assert d["kind"] == "audio" and d["sample_rate"] == 16000 and d["channels"] == 1
    assert d["codec"] == "pcm_s16le" and d["duration_s"] == pytest.approx(0.5, abs=0.01)
    assert "sample_rate" in _check_text(d)
    d2 = describe_file(path.read_bytes())
    assert d2["kind"] == "audio" and d2["sample_rate"] == 16000


def test_video(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _mp4(path, frames=10)
    assert sniff_kind(path) == "video"
    d = describe_file(path)
    assert d["kind"] == "video" and d["width"] == 64 and d["height"] == 48
    assert d["fps"] == 25 and d["frames"] == 10 and d["video_codec"] == "h264"
    assert d["has_audio"] and d["sample_rate"] == 16000 and d["audio_codec"] == "aac"
    assert {s["type"] for s in d["streams"]} == {"video", "audio"}
    assert "stream #0 video" in _check_text(d)


def test_vertices_h5(tmp_path: Path) -> None:
    path = tmp_path / "verts.h5"
    with h5py.File(path, "w") as f:
        f.attrs["fps"] = 25
        f.attrs["source"] = "test"
        ds = f.create_dataset("vertices", data=np.zeros((4, 10, 3), np.float32))
        ds.attrs["units"] = "m"
        f.create_group("mesh").create_dataset("faces", data=np.zeros((5, 3), np.int32))
    assert sniff_kind(path) == "vertices"
    d = describe_file(path)
    assert d["kind"] == "vertices" and d["attrs"] == {"fps": 25, "source": "test"}
    by_name = {x["name"]: x for x in d["datasets"]}
    assert by_name["vertices"]["shape"] == [4, 10, 3] and by_name["vertices"]["attrs"] == {"units": "m"}
    assert by_name["mesh/faces"]["dtype"] == "int32"
    assert "vertices" in _check_text(d)


def test_unknown_empty_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 20)
    with pytest.raises(FormatError, match="not a file type artalk knows"):
        describe_file(text)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        describe_file(empty)
    with pytest.raises(InputError, match="not found"):
        describe_file(tmp_path / "missing")


def test_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    buf = io.BytesIO()
    torch.save(torch.zeros(20, 106), buf)
    path.write_bytes(buf.getvalue()[:200])
    with pytest.raises(FormatError, match="corrupt"):
        describe_file(path)


def test_sniff_kinds(tmp_path: Path) -> None:
    assert sniff_kind(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio"
    assert sniff_kind(b"fLaC\x00\x00") == "audio"
    assert sniff_kind(b"ID3\x04\x00") == "audio"
    assert sniff_kind(b"\x00\x00\x00\x20ftypM4A \x00") == "audio"
    assert sniff_kind(b"\x00\x00\x00\x20ftypisom\x00") == "video"
    assert sniff_kind(b"\x1a\x45\xdf\xa3\x00") == "video"
    assert sniff_kind(b"\x89HDF\r\n\x1a\n\x00") == "vertices"
    assert sniff_kind(b"plain text") == "unknown"
    assert sniff_kind(b"") == "unknown"
    with pytest.raises(InputError):
        sniff_kind("-")
