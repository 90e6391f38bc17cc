"""Single-tensor safetensors files written and read block by block."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load, save

from artalk_core.errors import FormatError, InputError
from artalk_core.formats.tensorfile import TensorFileReader, TensorFileWriter, header_bytes, tensor_file_bytes


def _rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 5, 3)).astype(np.float32)


def test_header_is_deterministic_aligned_and_readable_by_safetensors() -> None:
    arr = _rows(7)
    a = tensor_file_bytes("x", arr, {"b": "2", "a": "é", "c": "3"})
    b = tensor_file_bytes("x", arr, {"c": "3", "a": "é", "b": "2"})
    assert a == b  # key order of the metadata does not matter (the safetensors writer's does)
    (n,) = struct.unpack("<Q", a[:8])
    assert n % 8 == 0 and a[8:9] == b"{"
    assert np.array_equal(load(a)["x"], arr)
    assert header_bytes("x", (7, 5, 3), {"a": "é", "b": "2", "c": "3"}) == a[:8 + n]
    assert len(a) == 8 + n + arr.nbytes
    # Without metadata there is no __metadata__ entry, as the library writes it.
    plain = tensor_file_bytes("x", arr, {})
    assert b"__metadata__" not in plain and np.array_equal(load(plain)["x"], arr)


def test_writer_in_blocks_gives_the_bytes_of_the_whole(tmp_path: Path) -> None:
    arr = _rows(1001)
    out = tmp_path / "t.safetensors"
    with TensorFileWriter(out, "x", (5, 3)) as w:
        for i in range(0, 1001, 97):
            w.write(arr[i:i + 97])
        w.write(arr[:0])
        w.finish({"k": "v"})
        mapped = w.map_rows()
    assert out.read_bytes() == tensor_file_bytes("x", arr, {"k": "v"})
    assert np.array_equal(mapped, arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]


def test_writer_error_keeps_existing_file_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "t.safetensors"
    out.write_bytes(b"good")
    with pytest.raises(KeyError):
        with TensorFileWriter(out, "x", (5, 3)) as w:
            w.write(_rows(3))
            raise KeyError("interrupted")
    assert out.read_bytes() == b"good"
    # Leaving the block without finish() writes nothing either.
    with TensorFileWriter(out, "x", (5, 3)) as w:
        w.write(_rows(3))
    assert out.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


def test_writer_rejects_rows_of_another_shape(tmp_path: Path) -> None:
    with TensorFileWriter(tmp_path / "t.safetensors", "x", (5, 3)) as w:
        with pytest.raises(InputError, match=r"expected \[n, 5, 3\]"):
            w.write(np.zeros((2, 3, 5), np.float32))
    assert not (tmp_path / "t.safetensors").exists()


def test_writer_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    arr = _rows(4)
    with TensorFileWriter("-", "x", (5, 3)) as w:
        w.write(arr)
        w.finish({})
    assert capsysbinary.readouterr().out == tensor_file_bytes("x", arr, {})


def test_reader_ranges_blocks_and_reshape(tmp_path: Path) -> None:
    arr = _rows(50)
    p = tmp_path / "t.safetensors"
    p.write_bytes(save({"x": arr, "other": np.ones(3, np.float32)}, metadata={"m": "1"}))
    with TensorFileReader(p, "x") as r:
        assert r.shape == (50, 5, 3) and r.rows == 50 and r.meta == {"m": "1"}
        assert np.array_equal(r.read(10, 20), arr[10:20])
        assert np.array_equal(r.read(45, 99), arr[45:])
        assert np.array_equal(np.concatenate(list(r.iter_blocks(7))), arr)
        r.reshape((250, 3))
        assert np.array_equal(r.read(), arr.reshape(250, 3))
        assert np.array_equal(r.read(7, 13), arr.reshape(250, 3)[7:13])  # rows across stored rows
        with pytest.raises(InputError):
            r.reshape((7, 3))


@pytest.mark.parametrize("blob, needle", [
    (b"", "header cannot be read"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "header cannot be read"),
    (save({"y": np.zeros(2, np.float32)}), "no 'x' tensor"),
    (save({"x": np.zeros(2, np.float64)}), "F64, expected float32"),
    (save({"x": np.zeros((40, 4), np.float32)})[:-8], "truncated"),
])
def test_reader_rejects_bad_files(tmp_path: Path, blob: bytes, needle: str) -> None:
    p = tmp_path / "bad.safetensors"
    p.write_bytes(blob)
    with pytest.raises(FormatError, match=needle):
        TensorFileReader(p, "x")


def test_reader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        TensorFileReader(tmp_path / "nope.safetensors", "x")


def test_reader_reads_rows_under_a_leading_axis_of_one(tmp_path: Path) -> None:
    arr = _rows(40)[None]  # [1, 40, 5, 3]
    p = tmp_path / "t.safetensors"
    p.write_bytes(save({"x": arr}))
    with TensorFileReader(p, "x") as r:
        assert r.shape == (1, 40, 5, 3) and r.rows == 1
        r.reshape((40, 5, 3))
        assert np.array_equal(r.read(10, 12), arr[0, 10:12])
        assert [b.shape[0] for b in r.iter_blocks(16)] == [16, 16, 8]
        assert r.read(40, 50).shape == (0, 5, 3)
