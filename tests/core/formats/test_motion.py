"""Motion format: round trips, reference .pt files, stdin/stdout, atomic writes, every error."""

from __future__ import annotations

import io
import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save

from artalk_core.constants import CHANNEL_LAYOUT
from artalk_core.errors import FormatError, InputError, OutputError, StyleError
from artalk_core.fileio import provenance
from artalk_core.formats import sniff_kind
from artalk_core.formats.features import features_bytes
from artalk_core.formats.motion import (
    Motion,
    channel_name,
    motion_bytes,
    read_motion,
    read_style,
    write_motion,
    write_reference_motion,
)

FIXTURE = Path(__file__).parents[2] / "fixtures" / "tiny_en"
SHA = "ab" * 32


def _motion(t: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, 106)).astype(np.float32)


def _pt_bytes(obj: object, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return buf.getvalue()


def _only_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- round trips -------------------------------------------------------------------------------

def test_round_trip_keeps_data_and_metadata(tmp_path: Path) -> None:
    data = _motion(37)
    meta = {"engine": "artalk", "style": "natural_0", "style_sha256": SHA, "audio_sha256": SHA,
            "audio_samples": "23680", "postprocessed": True, "smoothed": True, "fix_pose": False,
            "clip_length": 750, **provenance("artalk generate", options={"seed": 1})}
    out = tmp_path / "m.safetensors"
    write_motion(out, data, meta)
    m = read_motion(out)
    assert isinstance(m, Motion)
    assert m.data.dtype == np.float32 and m.data.shape == (37, 106)
    np.testing.assert_array_equal(m.data, data)
    assert m.origin == "artalk"
    assert m.meta["format"] == "artalk.motion" and m.meta["format_version"] == "1"
    assert m.meta["fps"] == "25" and m.meta["frames"] == "37" and m.meta["channels"] == "106"
    assert m.meta["channel_layout"] == CHANNEL_LAYOUT
    assert m.meta["postprocessed"] == "true" and m.meta["fix_pose"] == "false"
    assert m.frames == 37 and m.duration == pytest.approx(37 / 25) and m.fps == 25
    assert m.is_postprocessed and m.is_smoothed and not m.fix_pose
    assert m.engine == "artalk" and m.style == "natural_0"
    assert m.clip_length == 750 and m.audio_samples == 23680
    assert m.options == {"seed": 1}
    assert torch.equal(m.to_torch(), torch.from_numpy(data))


def test_write_accepts_torch_and_float64_and_overrides_format_keys(tmp_path: Path) -> None:
    data = torch.randn(5, 106, dtype=torch.float64)
    out = tmp_path / "m.safetensors"
    write_motion(out, data, {"frames": "999", "fps": "30", "format": "x"})
    m = read_motion(out)
    np.testing.assert_allclose(m.data, data.float().numpy())
    assert m.meta["frames"] == "5" and m.meta["fps"] == "25" and m.meta["format"] == "artalk.motion"
    assert not m.is_postprocessed and m.engine is None and m.clip_length is None


def test_read_from_bytes_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _motion(8)
    blob = motion_bytes(data, {"engine": "energy"})
    np.testing.assert_array_equal(read_motion(blob).data, data)
    np.testing.assert_array_equal(read_motion(bytearray(blob)).data, data)

    class _Stdin:
        buffer = io.BytesIO(blob)

    monkeypatch.setattr(sys, "stdin", _Stdin())
    m = read_motion("-")
    np.testing.assert_array_equal(m.data, data)
    assert m.engine == "energy"


def test_write_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    data = _motion(4)
    write_motion("-", data, {"engine": "artalk"})
    out = capsysbinary.readouterr().out
    assert sniff_kind(out) == "motion"
    np.testing.assert_array_equal(read_motion(out).data, data)


# --- reference .pt files -----------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True])
def test_reads_reference_pt_with_any_name(tmp_path: Path, legacy: bool) -> None:
    data = torch.randn(12, 106)
    path = tmp_path / "talk_natural_0_motions.whatever"  # the extension must not matter
    path.write_bytes(_pt_bytes(data, legacy=legacy))
    assert sniff_kind(path) == "reference-pt"
    m = read_motion(path)
    assert m.origin == "reference-pt" and m.meta == {}
    np.testing.assert_array_equal(m.data, data.numpy())
    assert not m.is_postprocessed


def test_reference_pt_batch_axis_and_dtype() -> None:
    data = torch.randn(1, 6, 106, dtype=torch.float64)
    m = read_motion(_pt_bytes(data))
    assert m.data.shape == (6, 106) and m.data.dtype == np.float32


def test_fixture_style_file_reads_as_motion_and_style() -> None:
    from safetensors.numpy import load_file

    expected = load_file(str(FIXTURE / "expected.safetensors"))["style_motion"]
    m = read_motion(FIXTURE / "style_motion.pt")
    assert m.origin == "reference-pt"
    np.testing.assert_array_equal(m.data, expected)
    np.testing.assert_array_equal(read_style(FIXTURE / "style_motion.pt"), expected)


def test_write_reference_motion_round_trip(tmp_path: Path) -> None:
    data = _motion(9)
    path = tmp_path / "x_motions.pt"
    write_reference_motion(path, data)
    loaded = torch.load(path, weights_only=True)
    assert loaded.dtype == torch.float32 and tuple(loaded.shape) == (9, 106)
    np.testing.assert_array_equal(read_motion(path).data, data)


def test_safetensors_with_motion_tensor_but_no_artalk_metadata() -> None:
    data = _motion(3)
    m = read_motion(st_save({"motion": data}))
    assert m.origin == "safetensors"
    np.testing.assert_array_equal(m.data, data)


# --- atomic writes -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    np.full((4, 106), np.nan, np.float32),
    np.zeros((4, 105), np.float32),
    np.zeros((0, 106), np.float32),
    np.zeros((106,), np.float32),
])
def test_failed_write_keeps_existing_file_and_leaves_no_temp(tmp_path: Path, bad: np.ndarray) -> None:
    out = tmp_path / "m.safetensors"
    write_motion(out, _motion(5), {"engine": "artalk"})
    before = out.read_bytes()
    with pytest.raises(FormatError):
        write_motion(out, bad, {"engine": "artalk"})
    assert out.read_bytes() == before
    assert _only_file(tmp_path) == ["m.safetensors"]


def test_failed_write_creates_no_file(tmp_path: Path) -> None:
    out = tmp_path / "new.safetensors"
    with pytest.raises(FormatError):
        write_motion(out, np.full((3, 106), np.inf), {})
    assert _only_file(tmp_path) == []


def test_write_into_missing_folder_is_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        write_motion(tmp_path / "nope" / "m.safetensors", _motion(2), {})


@pytest.mark.parametrize("meta, needle", [
    ({"postprocessed": "yes"}, "postprocessed"),
    ({"audio_sha256": "XYZ"}, "audio_sha256"),
    ({"clip_length": "0"}, "clip_length"),
    ({"audio_samples": "-3"}, "audio_samples"),
    ({"engine": ""}, "engine"),
])
def test_write_rejects_bad_metadata(tmp_path: Path, meta: dict, needle: str) -> None:
    out = tmp_path / "m.safetensors"
    with pytest.raises(FormatError, match=needle):
        write_motion(out, _motion(2), meta)
    assert not out.exists()


def test_write_rejects_non_numeric(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        write_motion(tmp_path / "m.safetensors", np.array([["a"] * 106]), {})


# --- read errors -------------------------------------------------------------------------------

def test_wrong_shape_message_names_found_and_expected() -> None:
    with pytest.raises(FormatError) as e:
        read_motion(_pt_bytes(torch.zeros(10, 105)))
    assert "[10, 105]" in str(e.value) and "[T, 106]" in str(e.value)
    with pytest.raises(FormatError, match=r"\[2, 3, 106\]"):
        read_motion(_pt_bytes(torch.zeros(2, 3, 106)))


def test_too_short_to_recognise() -> None:
    blob = motion_bytes(_motion(10), {})
    with pytest.raises(FormatError, match="not a motion file"):
        read_motion(blob[:5])


def test_empty_motion() -> None:
    with pytest.raises(FormatError, match="empty"):
        read_motion(_pt_bytes(torch.zeros(0, 106)))
    with pytest.raises(FormatError, match="empty"):
        read_motion(b"")


def test_nonfinite_names_first_frame_and_channel() -> None:
    data = torch.zeros(10, 106)
    data[7, 2] = float("inf")
    data[3, 104] = float("nan")
    with pytest.raises(FormatError) as e:
        read_motion(_pt_bytes(data))
    msg = str(e.value)
    assert "frame 3" in msg and "channel 104" in msg and "jaw_rotation[1]" in msg and "nan" in msg
    bad = _motion(4)
    bad[2, 101] = -np.inf
    blob = st_save({"motion": bad}, metadata={"format": "artalk.motion", "format_version": "1"})
    with pytest.raises(FormatError, match=r"frame 2, channel 101 \(global_rotation\[1\]\)"):
        read_motion(blob)


@pytest.mark.parametrize("cut", [12, 40, -1, -200])
def test_truncated_safetensors(cut: int) -> None:
    blob = motion_bytes(_motion(10), {"engine": "artalk"})
    with pytest.raises(FormatError, match="truncated or corrupt"):
        read_motion(blob[:cut])


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_pt(legacy: bool) -> None:
    blob = _pt_bytes(torch.randn(20, 106), legacy=legacy)
    with pytest.raises(FormatError, match="truncated or corrupt"):
        read_motion(blob[: len(blob) // 2])


def test_features_file_given_to_read_motion() -> None:
    feats = features_bytes(np.zeros((1, 199, 8), np.float32),
                           {"audio_samples": 16000, "checkpoint_sha256": SHA})
    with pytest.raises(FormatError, match="artalk features file"):
        read_motion(feats)


@pytest.mark.parametrize("blob, needle", [
    (_wav_bytes(), "audio file"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "HDF5"),
    (b"hello, this is text\n" * 5, "not a motion file"),
    (st_save({"weights": np.zeros(3, np.float32)}), "without a 'motion' tensor"),
])
def test_not_motion_files(blob: bytes, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        read_motion(blob)


def test_pt_holding_dict_or_object() -> None:
    with pytest.raises(FormatError, match="dict"):
        read_motion(_pt_bytes({"motion": torch.zeros(3, 106)}))
    with pytest.raises(FormatError, match="unpickle"):
        read_motion(_pt_bytes(_Custom()))


class _Custom:
    pass


def test_other_format_version_and_inconsistent_frames() -> None:
    data = _motion(3)
    newer = st_save({"motion": data}, metadata={"format": "artalk.motion", "format_version": "2"})
    with pytest.raises(FormatError, match="version 2"):
        read_motion(newer)
    lying = st_save({"motion": data}, metadata={"format": "artalk.motion", "format_version": "1",
                                                "frames": "4"})
    with pytest.raises(FormatError, match="4 frames"):
        read_motion(lying)
    fps = st_save({"motion": data}, metadata={"format": "artalk.motion", "format_version": "1",
                                              "fps": "30"})
    with pytest.raises(FormatError, match="30 fps"):
        read_motion(fps)
    # text that is not the integer text is quoted: "at 25.0 fps; artalk motion is 25 fps" contradicted itself
    fps = st_save({"motion": data}, metadata={"format": "artalk.motion", "format_version": "1", "fps": "25.0"})
    with pytest.raises(FormatError, match="motion at '25.0' fps; artalk motion is 25 fps"):
        read_motion(fps)


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_motion(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="folder"):
        read_motion(tmp_path)


# --- styles ------------------------------------------------------------------------------------

def test_style_from_motion_file_with_start(tmp_path: Path) -> None:
    data = _motion(80)
    path = tmp_path / "long.safetensors"
    write_motion(path, data, {})
    style = read_style(path, style_start=10)
    assert style.shape == (50, 106) and style.dtype == np.float32
    np.testing.assert_array_equal(style, data[10:60])
    np.testing.assert_array_equal(read_style(path, style_start=30), data[30:80])


def test_style_errors() -> None:
    with pytest.raises(StyleError, match="30 frames"):
        read_style(_pt_bytes(torch.zeros(30, 106)))
    with pytest.raises(StyleError, match="start frame <= 30"):
        read_style(_pt_bytes(torch.zeros(80, 106)), style_start=31)
    with pytest.raises(StyleError, match=r"\[50, 100\]"):
        read_style(_pt_bytes(torch.zeros(50, 100)))
    nan = torch.zeros(50, 106)
    nan[49, 0] = float("nan")
    with pytest.raises(StyleError, match="frame 49"):
        read_style(_pt_bytes(nan))
    with pytest.raises(StyleError, match=">= 0"):
        read_style(_pt_bytes(torch.zeros(50, 106)), style_start=-1)
    feats = features_bytes(np.zeros((1, 199, 8), np.float32),
                           {"audio_samples": 100, "checkpoint_sha256": ""})
    with pytest.raises(StyleError, match="features"):
        read_style(feats)
    with pytest.raises(StyleError, match="truncated"):
        read_style(_pt_bytes(torch.zeros(50, 106))[:100])


def test_channel_names() -> None:
    assert channel_name(0) == "expression[0]"
    assert channel_name(99) == "expression[99]"
    assert channel_name(100) == "global_rotation[0]"
    assert channel_name(103) == "jaw_rotation[0]"
    assert channel_name(105) == "jaw_rotation[2]"


def test_no_stray_files_after_many_writes(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    for i in range(3):
        write_motion(out, _motion(3, seed=i), {})
    assert os.listdir(tmp_path) == ["m.safetensors"]
    np.testing.assert_array_equal(read_motion(out).data, _motion(3, seed=2))


# --- block-wise writing and reading (hour-long motion) ------------------------------------------

def test_motion_writer_in_blocks_equals_write_motion(tmp_path: Path) -> None:
    from artalk_core.formats.motion import MotionWriter

    data, meta = _motion(5000), {"engine": "energy", "style": "default", **provenance("test")}
    with MotionWriter(tmp_path / "m.safetensors") as w:
        for i in range(0, 5000, 333):
            w.write(torch.from_numpy(data[i:i + 333]))
        written = w.finish(meta)
        mapped = w.map_frames()
    write_motion(tmp_path / "whole.safetensors", data, meta)
    assert (tmp_path / "m.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    assert written["frames"] == "5000" and np.array_equal(mapped, data)


def test_motion_writer_checks_each_block_and_writes_nothing_on_error(tmp_path: Path) -> None:
    from artalk_core.formats.motion import MotionWriter

    out = tmp_path / "m.safetensors"
    write_motion(out, _motion(3))
    before = out.read_bytes()
    bad = _motion(50)
    bad[17, 101] = np.inf
    with pytest.raises(FormatError, match=r"frame 117, channel 101 \(global_rotation\[1\]\)"):
        with MotionWriter(out) as w:
            w.write(_motion(100))
            w.write(bad)
    with pytest.raises(FormatError, match=r"expected \[T, 106\]"):
        with MotionWriter(out) as w:
            w.write(np.zeros((4, 100), np.float32))
    with pytest.raises(FormatError, match="empty"):
        with MotionWriter(out) as w:
            w.finish({})
    assert out.read_bytes() == before and _only_file(tmp_path) == ["m.safetensors"]


def test_motion_reader_streams_files_and_reads_other_sources_whole(tmp_path: Path) -> None:
    from artalk_core.formats.motion import MotionReader, open_motion, read_motion_meta

    data = _motion(2500)
    path = tmp_path / "m.safetensors"
    write_motion(path, data, {"engine": "energy"})
    with open_motion(path) as r:
        assert r.streamed and r.frames == 2500 and r.origin == "artalk" and r.meta["engine"] == "energy"
        assert np.array_equal(np.concatenate(list(r.iter_blocks(999))), data)
        assert np.array_equal(r.read(), data)
    assert read_motion_meta(path) == read_motion(path).meta
    # A plain safetensors file with a batch axis of 1 streams too.
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(st_save({"motion": data[None]}))
    with MotionReader(plain) as r:
        assert r.streamed and r.origin == "safetensors" and np.array_equal(r.read(), data)
    # The reference .pt and bytes are read whole, with the same interface.
    pt = tmp_path / "m.pt"
    write_reference_motion(pt, data)
    for source in (pt, pt.read_bytes()):
        with MotionReader(source) as r:
            assert not r.streamed and r.origin == "reference-pt"
            assert np.array_equal(np.concatenate(list(r.iter_blocks(1000))), data)
    assert read_motion_meta(pt) == {}


@pytest.mark.parametrize("case, needle", [
    ("nan", r"non-finite value \(nan\) at frame 2222, channel 5 \(expression\[5\]\)"),
    ("shape", r"shape \[40, 100\], expected \[T, 106\]"),
    ("empty", r"empty \(0 frames\)"),
    ("no-tensor", r"without a 'motion' tensor \(tensors: other\)"),
    ("version", "format version 9"),
    ("truncated", "truncated"),
])
def test_motion_reader_checks_the_whole_file_on_opening(tmp_path: Path, case: str, needle: str) -> None:
    from artalk_core.formats.motion import MotionReader
    from artalk_core.formats.tensorfile import tensor_file_bytes

    data = _motion(3000)
    if case == "nan":
        data[2222, 5] = np.nan
        blob = tensor_file_bytes("motion", data, {"format": "artalk.motion", "format_version": "1"})
    elif case == "shape":
        blob = st_save({"motion": np.zeros((40, 100), np.float32)})
    elif case == "empty":
        blob = st_save({"motion": np.zeros((0, 106), np.float32)})
    elif case == "no-tensor":
        blob = st_save({"other": data})
    elif case == "version":
        blob = tensor_file_bytes("motion", data, {"format": "artalk.motion", "format_version": "9"})
    else:
        blob = motion_bytes(data)[:-1000]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(FormatError, match=needle) as err:
        MotionReader(path, label="bad")
    assert str(err.value).startswith("bad")


def test_bytes_are_read_through_a_spool_that_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from artalk_core.formats.motion import MotionReader

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    data = _motion(30)
    with MotionReader(motion_bytes(data, {"engine": "energy"})) as r:
        assert r.streamed and r.name == "<bytes>" and r.meta["engine"] == "energy"
        assert np.array_equal(r.read(5, 9), data[5:9])
        assert len(list(spool.iterdir())) == 1
    assert not list(spool.iterdir())
    with pytest.raises(FormatError, match="truncated"):
        read_motion(motion_bytes(data)[:-5])
    assert not list(spool.iterdir())
