"""Vertices HDF5 files: round trip, per-frame chunks, compression, atomic writes, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from artalk_core import schemas
from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import provenance
from artalk_core.formats.vertices import VerticesWriter, read_vertices, vertices_meta, write_vertices

REPO = Path(__file__).parents[3]
SHA = "cd" * 32
FACES = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]], dtype=np.int64)


def _frames(t: int = 10, v: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, v, 3)).astype(np.float32) * 0.1


def _meta() -> dict[str, str]:
    meta = provenance("test", options={"a": 1}, inputs={"audio": SHA})
    meta.update(motion_sha256=SHA, head_sha256=SHA, head_is_standin="true")
    return meta


def test_round_trip(tmp_path) -> None:
    frames = _frames()
    p = tmp_path / "out.h5"
    n = write_vertices(p, iter(frames), FACES, _meta())
    assert n == 10
    with read_vertices(p) as vf:
        assert vf.frames == len(vf) == 10 and vf.fps == 25 and vf.num_vertices == 4
        assert vf.faces.dtype == np.int32 and np.array_equal(vf.faces, FACES)
        assert np.array_equal(vf[3], frames[3]) and np.array_equal(vf[-1], frames[-1])
        assert np.array_equal(np.stack(list(vf)), frames)
        assert vf.meta["format"] == "artalk.vertices" and vf.meta["format_version"] == "1"
        assert vf.meta["frames"] == 10 and vf.meta["vertex_count"] == 4 and vf.meta["face_count"] == 4
        assert vf.meta["head_is_standin"] == "true" and vf.meta["audio_sha256"] == SHA
        assert vf.meta["created_by"] == "test" and json.loads(vf.meta["options"]) == {"a": 1}
        with pytest.raises(IndexError):
            vf[10]


def test_plain_hdf5_layout_chunks_and_compression(tmp_path) -> None:
    p = tmp_path / "out.h5"
    with VerticesWriter(p, FACES, meta=_meta(), expected_frames=3) as w:
        w.write(_frames(5))  # a block, more than expected
        w.write(_frames(1, seed=1)[0])  # a single frame
    with h5py.File(p, "r") as f:
        d = f["vertices"]
        assert d.shape == (6, 4, 3) and d.dtype == np.float32
        assert d.chunks == (1, 4, 3)
        assert d.compression in ("gzip", "lzf")
        assert d.maxshape[0] is None
        assert f["faces"].dtype == np.int32
        assert int(f.attrs["frames"]) == 6 and int(f.attrs["fps"]) == 25


def test_schema_describes_written_attributes(tmp_path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = schemas.load("vertices")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    p = tmp_path / "out.h5"
    write_vertices(p, _frames(3), FACES, _meta())
    with read_vertices(p) as vf:
        validator.validate(vf.meta)
        bad = dict(vf.meta, head_is_standin="maybe")
    assert not validator.is_valid(bad)
    # missing hashes are written empty, which the schema allows
    write_vertices(p, _frames(3), FACES, provenance("test"))
    with read_vertices(p) as vf:
        validator.validate(vf.meta)
        assert vf.meta["motion_sha256"] == "" and vf.meta["head_is_standin"] == ""


def test_vertices_meta_from_head() -> None:
    class Head:
        sha256 = SHA
        is_standin = False

    meta = vertices_meta(Head(), motion_sha256=SHA, tool="render", options={"x": 1})
    assert meta["head_is_standin"] == "false" and meta["head_sha256"] == SHA and meta["created_by"] == "render"


def test_atomic_write_leaves_nothing_on_error(tmp_path) -> None:
    p = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with VerticesWriter(p, FACES, meta=_meta()) as w:
            w.write(_frames(2))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # a good file is not clobbered by a failed rewrite
    write_vertices(p, _frames(2), FACES, _meta())
    before = p.read_bytes()
    bad = _frames(3)
    bad[2, 1, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_vertices(p, bad, FACES, _meta())
    assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["out.h5"]
    with pytest.raises(InputError, match="no frames"):
        write_vertices(tmp_path / "empty.h5", [], FACES, _meta())
    assert not (tmp_path / "empty.h5").exists()


def test_writer_input_errors(tmp_path) -> None:
    with pytest.raises(InputError):
        VerticesWriter(tmp_path / "x.h5", np.zeros((3, 2), np.int32), meta={})
    with pytest.raises(InputError, match="vertices"):
        write_vertices(tmp_path / "x.h5", [_frames(1)[0], _frames(1, v=5)[0]], FACES, _meta())
    with pytest.raises(InputError, match="faces index"):
        write_vertices(tmp_path / "x.h5", _frames(2, v=3), FACES, _meta())
    assert list(tmp_path.iterdir()) == []


def test_bounded_memory_writer_streams_frames(tmp_path) -> None:
    produced = 0

    def gen():
        nonlocal produced
        for i in range(200):
            produced += 1
            yield np.full((4, 3), i, np.float32)

    p = tmp_path / "long.h5"
    assert write_vertices(p, gen(), FACES, _meta()) == 200
    with read_vertices(p) as vf:
        it = iter(vf)
        assert next(it)[0, 0] == 0 and vf[150][0, 0] == 150


def test_reading_bad_files(tmp_path) -> None:
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FormatError, match="not HDF5"):
        read_vertices(tmp_path / "text.h5")
    with pytest.raises(InputError, match="not found"):
        read_vertices(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "nofaces.h5", "w") as f:
        f["vertices"] = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(FormatError, match="faces"):
        read_vertices(tmp_path / "nofaces.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f["vertices"] = np.zeros((2, 4, 2), np.float32)
        f["faces"] = FACES.astype(np.int32)
    with pytest.raises(FormatError, match=r"\[T,V,3\]"):
        read_vertices(tmp_path / "shape.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["vertices"] = np.zeros((2, 4, 3), np.float32)
        f["faces"] = FACES.astype(np.int32)
        f.attrs["format"] = "something.else"
    with pytest.raises(FormatError, match="something.else"):
        read_vertices(tmp_path / "other.h5")
    nan = _frames(4)
    nan[2, 0, 0] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["vertices"] = nan
        f["faces"] = FACES.astype(np.int32)
    with read_vertices(tmp_path / "nan.h5") as vf:
        assert np.array_equal(vf[1], nan[1])
        with pytest.raises(FormatError, match="frame 2"):
            vf[2]
        with pytest.raises(FormatError, match="frame 2"):
            list(vf)


def test_flame_frames_to_file(tmp_path) -> None:
    from artalk_core.flame.standin import load_standin

    head = load_standin()
    motion = np.zeros((6, 106), np.float32)
    motion[:, 103] = np.linspace(0, 0.2, 6)
    p = tmp_path / "head.h5"
    meta = vertices_meta(head, motion_sha256=SHA, tool="test")
    n = write_vertices(p, head.iter_vertices(motion, batch=4), head.faces, meta, expected_frames=6)
    assert n == 6
    with read_vertices(p) as vf:
        assert vf.num_vertices == head.num_vertices and vf.meta["head_is_standin"] == "true"
        assert np.allclose(vf[5], head.vertices(motion)[5].numpy(), atol=1e-6)
        assert vf.meta["head_sha256"] == head.sha256


# ---- a failing disk, a stop signal inside HDF5, sizes bounded by the file's content (hostile review 1, 3, 7) ----

_FULL_DISK = """
import resource, sys
from pathlib import Path
import numpy as np
from artalk_core.errors import OutputError
from artalk_core.formats.vertices import write_vertices
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # like `ulimit -f`; Python ignores SIGXFSZ
frames = (np.random.default_rng(0).standard_normal((200, 5023, 3)) * 0.1).astype(np.float32)
faces = np.array([[0, 1, 2]], np.int32)
out = Path(sys.argv[1])
for _ in range(2):  # a second file after the failure: the library is still usable
    try:
        write_vertices(out / "v.h5", frames, faces, {})
    except OutputError as e:
        print("OutputError:", e)
"""


def test_a_full_disk_is_an_output_error_not_a_crash(tmp_path) -> None:
    """HDF5 after a failed write (disk full, `ulimit -f`): 'Driver write request failed', then a
    segfault when the file or the library closed (exit 139). Now: an OutputError naming the file,
    no temp file, and the process ends normally."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert lines == [f"OutputError: cannot write {tmp_path / 'v.h5'}: File too large"] * 2, proc.stdout
    assert "Driver" not in proc.stdout + proc.stderr and list(tmp_path.iterdir()) == []


def test_a_stop_signal_inside_hdf5_takes_effect_after_the_call(tmp_path, monkeypatch) -> None:
    """A signal handler raising inside HDF5's write callback would leave the library broken: the
    signal is held over each h5py call and raised after it, and the temp file goes."""
    import os
    import signal

    from artalk_core.errors import Interrupted
    from artalk_core.formats import vertices
    from artalk_core.interrupt import stop_signals

    sent: list[int] = []
    real_write = vertices._Sink.write

    def write(self, data):  # the signal arrives while HDF5 writes
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return real_write(self, data)

    monkeypatch.setattr(vertices._Sink, "write", write)
    with stop_signals(), pytest.raises(Interrupted):
        write_vertices(tmp_path / "v.h5", _frames(50, v=5023), FACES, _meta())
    assert sent and list(tmp_path.iterdir()) == []


def test_vertices_the_reader_would_refuse_are_never_written(tmp_path) -> None:
    frames = _frames(3)
    frames[1, 2, 0] = 2e4  # beyond MAX_VERTEX_ABS: the reader refuses it as "not a head mesh"
    with pytest.raises(InputError, match=r"frame 1 contain a coordinate of 20000 \(more than 10000"):
        write_vertices(tmp_path / "v.h5", frames, FACES, _meta())
    assert list(tmp_path.iterdir()) == []


def _bomb(path: Path, frames: int, vertices: int, *, faces: int = 1, chunk_frames: int = 1) -> None:
    """A small HDF5 file of gzip chunks of zeros announcing [frames, vertices, 3] (written chunk by
    chunk, never held: 9 KB of file for 300 MB of frame)."""
    import zlib

    blob = zlib.compress(bytes(chunk_frames * vertices * 12), 9)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("vertices", shape=(frames, vertices, 3), dtype="f4",
                             chunks=(chunk_frames, vertices, 3), compression="gzip")
        for t in range(0, frames, chunk_frames):
            d.id.write_direct_chunk((t, 0, 0), blob)
        if faces > 1:
            fb = zlib.compress(bytes(faces * 12), 9)
            fd = f.create_dataset("faces", shape=(faces, 3), dtype="i4", chunks=(faces, 3), compression="gzip")
            fd.id.write_direct_chunk((0, 0), fb)
        else:
            f["faces"] = np.array([[0, 1, 2]], np.int32)


def test_sizes_are_checked_before_any_frame_is_read(tmp_path) -> None:
    """Every number comes from the header; nothing is decompressed to find them too big."""
    _bomb(tmp_path / "wide.h5", 2, 2_000_000)
    with pytest.raises(FormatError, match="announces 2000000 vertices per frame; artalk reads at most 1048576"):
        read_vertices(tmp_path / "wide.h5")
    _bomb(tmp_path / "faces.h5", 2, 5023, faces=2_000_000)
    with pytest.raises(FormatError, match="announces 2000000 faces"):
        read_vertices(tmp_path / "faces.h5")
    _bomb(tmp_path / "chunks.h5", 1200, 5023, chunk_frames=1200)  # one 72 MB chunk, decompressed whole
    with pytest.raises(FormatError, match="chunks of 72331200 bytes; artalk reads at most 67108864"):
        read_vertices(tmp_path / "chunks.h5")


def test_frames_are_read_in_blocks_bounded_by_bytes(tmp_path, monkeypatch) -> None:
    from artalk_core.formats import vertices

    write_vertices(tmp_path / "v.h5", _frames(10, v=1000), FACES, _meta())
    monkeypatch.setattr(vertices, "VERTICES_READ_BYTES", 30_000)  # 2.5 frames of 1000 vertices
    sizes: list[int] = []
    real = vertices.VerticesFile._checked

    def checked(self, block, first):
        sizes.append(len(block))
        return real(self, block, first)

    monkeypatch.setattr(vertices.VerticesFile, "_checked", checked)
    with read_vertices(tmp_path / "v.h5") as vf:
        assert len(list(vf)) == 10
    assert sizes == [2, 2, 2, 2, 2]
