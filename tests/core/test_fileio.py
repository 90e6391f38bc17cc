"""Atomic outputs, hashing and provenance."""

from __future__ import annotations

import json
import os
import stat

import pytest

from artalk_core.errors import OutputError
from artalk_core.fileio import atomic_output, provenance, sha256_bytes, sha256_file, sha256_file_cached


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "a.bin"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"hello")
        assert not target.exists()
    assert target.read_bytes() == b"hello"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"good"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_refuses_missing_folders_and_folders(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "no" / "a.bin"):
            pass
    with pytest.raises(OutputError, match="folder"):
        with atomic_output(tmp_path):
            pass


def test_device_targets_are_written_into_not_replaced():
    with atomic_output("/dev/null") as tmp:
        tmp.write_bytes(b"x" * 100)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_target(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading

    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with atomic_output(fifo) as tmp:
        tmp.write_bytes(b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_hashes_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc" * 1000)
    assert sha256_file(f) == sha256_bytes(b"abc" * 1000)
    assert sha256_file_cached(f) == sha256_file(f)
    assert (tmp_path / "cache" / "artalk" / "sha256.json").exists()
    f.write_bytes(b"changed")  # size and mtime change -> recomputed
    assert sha256_file_cached(f) == sha256_bytes(b"changed")


def test_provenance_records_tool_options_and_inputs():
    meta = provenance("artalk x", options={"b": 1, "a": None}, inputs={"audio": "ab" * 32})
    assert meta["created_by"] == "artalk x" and meta["audio_sha256"] == "ab" * 32
    assert json.loads(meta["options"]) == {"a": None, "b": 1}
    assert all(isinstance(v, str) for v in meta.values()) and meta["artalk_version"]


def test_input_file_spools_stdin_and_bytes_and_removes_them(monkeypatch, tmp_path):
    import hashlib
    import io
    import sys

    from artalk_core.errors import InputError
    from artalk_core.fileio import input_file

    data = bytes(range(256)) * 20000  # more than one 4 MiB read
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with input_file("-") as (path, sha, name):
        assert path.read_bytes() == data and sha == hashlib.sha256(data).hexdigest() and name == "<stdin>"
    assert not path.exists()
    with input_file(b"abc") as (path, sha, name):
        assert path.read_bytes() == b"abc" and sha == sha256_bytes(b"abc") and name == "<bytes>"
    assert not path.exists()
    real = tmp_path / "x.bin"
    with input_file(real) as (path, sha, name):  # a path is passed through, not read
        assert path == real and sha == "" and name == str(real)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(InputError, match="<stdin> is empty"):
        with input_file("-"):
            pass
