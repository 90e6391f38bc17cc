"""Vertices files: per-frame FLAME meshes in HDF5, written and read frame by frame.

Layout (readable by any HDF5 tool; attributes described by ``artalk_core/schemas/vertices.schema.json``):

- dataset ``vertices`` float32 [T,V,3], chunked one frame per chunk, gzip-compressed;
- dataset ``faces`` int32 [F,3] (triangle vertex indices);
- root attributes: ``format="artalk.vertices"``, ``format_version="1"``, ``fps``, ``frames``,
  ``vertex_count``, ``face_count`` (integers), ``motion_sha256``, ``head_sha256``,
  ``head_is_standin`` (``"true"``/``"false"``), ``artalk_version`` and the provenance strings
  (``created_by``, ``created_at``, ``options``, ``<role>_sha256``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core import __version__
from artalk_core.constants import FPS, MAX_VERTEX_ABS, VERTICES_MAX_COUNT, VERTICES_READ_BYTES
from artalk_core.errors import WRITE_ERRNOS, FormatError, InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output, output_error, provenance
from artalk_core.interrupt import signals_held

FORMAT_NAME: str = "artalk.vertices"
FORMAT_VERSION: str = "1"
SCHEMA_NAME: str = "vertices.schema.json"
COMPRESSION: str = "gzip"
COMPRESSION_LEVEL: int = 4
_INT_ATTRS = ("fps", "frames", "vertex_count", "face_count")
_UNKNOWN = ""  # what the schema allows for a hash or flag nobody supplied


def _h5py() -> Any:
    import h5py

    return h5py


def _meta_str(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def vertices_meta(head: Any, *, motion_sha256: str, tool: str, options: Mapping[str, Any] | None = None,
                  inputs: Mapping[str, str] | None = None) -> dict[str, str]:
    """The string metadata of a vertices file made from ``head`` (a FlameModel) and a motion."""

    meta = provenance(tool, options=options, inputs=inputs)
    meta.update({"motion_sha256": motion_sha256, "head_sha256": str(head.sha256),
                 "head_is_standin": _meta_str(bool(head.is_standin))})
    return meta


class _Sink:
    """The output's temp file as h5py's file object (HDF5 writes through these methods).

    HDF5 must never see a failed write: after one (disk full, ``ulimit -f``) the library is left
    in a state where closing the file, or its own cleanup at exit, crashes the process (a
    segfault). So the first failure is kept in :attr:`failure`, every later write is dropped
    (HDF5 goes on as if it succeeded, and closes cleanly) and the writer raises the failure once
    h5py returns.
    """

    def __init__(self, f: Any) -> None:
        self._f = f
        self.failure: OSError | None = None

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._f, method)(*args)
        except OSError as e:
            self.failure = self.failure or e
            return None

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self.failure is None:
            self._call("write", data)
        return size

    def readinto(self, buf: Any) -> int:
        n = self._call("readinto", buf)
        return int(n or 0)

    def read(self, size: int = -1) -> bytes:
        return self._call("read", size) or b""

    def seek(self, pos: int, whence: int = 0) -> int:
        return int(self._call("seek", pos, whence) or 0)

    def tell(self) -> int:
        return int(self._call("tell") or 0)

    def truncate(self, size: int | None = None) -> int:
        if self.failure is None:
            self._call("truncate", size)
        return size or 0

    def flush(self) -> None:
        if self.failure is None:
            self._call("flush")


class VerticesWriter:
    """Write a vertices file frame by frame (bounded memory), atomically.

    ``with VerticesWriter(path, faces, meta=meta) as w: w.write(frame)`` where a frame is
    [V,3] (or a block [n,V,3]); the file appears at ``path`` only when the block exits cleanly.
    ``expected_frames`` pre-sizes the dataset (a hint: the final size is what was written).

    HDF5 writes through a :class:`_Sink` and each h5py call runs with the stop signals held
    (:func:`~artalk_core.interrupt.signals_held`), so neither a failing write nor a Ctrl-C ever
    interrupts the C library in the middle: a full disk is an OutputError naming ``path``, a signal
    stops the step after the call, and the file is closed and removed either way.
    """

    def __init__(self, path: PathLike, faces: np.ndarray, *, meta: Mapping[str, Any],
                 expected_frames: int | None = None) -> None:
        f = np.asarray(faces)
        if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0 or f.dtype.kind not in "iu":
            raise InputError(f"faces must be an integer [F,3] array, got {f.dtype} {list(f.shape)}")
        self.path = path
        self.faces = f.astype(np.int32)
        self.meta = {str(k): _meta_str(v) for k, v in meta.items()}
        self.expected_frames = max(0, int(expected_frames or 0))
        self.frames = 0
        self._stack: contextlib.ExitStack | None = None
        self._sink: _Sink | None = None
        self._file: Any = None
        self._dset: Any = None
        self._num_vertices: int | None = None

    @contextlib.contextmanager
    def _h5(self) -> Iterator[None]:
        """Around each h5py call: stop signals held, then the sink's failure raised."""
        with signals_held():
            yield
        if self._sink is not None and self._sink.failure is not None:
            e = self._sink.failure
            raise output_error(self.path, e) if e.errno in WRITE_ERRNOS else \
                OutputError(f"cannot write {self.path}: {e.strerror or e}")

    def __enter__(self) -> VerticesWriter:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_output(self.path, suffix=".h5"))
            try:
                raw = stack.enter_context(open(tmp, "w+b"))
            except OSError as e:
                raise output_error(self.path, e) from e
            self._sink = _Sink(raw)
            with self._h5():
                self._file = _h5py().File(self._sink, "w")
            with self._h5():
                self._file.create_dataset("faces", data=self.faces)
        except BaseException:
            self._close_file()
            stack.close()
            raise
        self._stack = stack
        return self

    def _create(self, v: int) -> None:
        if int(self.faces.max()) >= v:
            raise InputError(f"faces index vertex {int(self.faces.max())} but frames have {v} vertices")
        with self._h5():
            self._dset = self._file.create_dataset(
                "vertices", shape=(self.expected_frames, v, 3), maxshape=(None, v, 3), dtype=np.float32,
                chunks=(1, v, 3), compression=COMPRESSION, compression_opts=COMPRESSION_LEVEL, shuffle=True)
        self._num_vertices = v

    def write(self, verts: Any) -> None:
        """Append one frame [V,3] or a block of frames [n,V,3] (float, finite, within
        :data:`~artalk_core.constants.MAX_VERTEX_ABS` of the origin: what the reader accepts)."""
        if self._file is None:
            raise RuntimeError("VerticesWriter.write called outside its with-block")
        a = np.asarray(verts.detach().cpu().numpy() if hasattr(verts, "detach") else verts, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[2] != 3 or a.shape[1] == 0:
            raise InputError(f"vertices must be [V,3] or [n,V,3], got {list(a.shape)}")
        if self._dset is None:
            self._create(a.shape[1])
        if a.shape[1] != self._num_vertices:
            raise InputError(f"frame has {a.shape[1]} vertices, earlier frames had {self._num_vertices}")
        problem = _vertex_problem(a)
        if problem is not None:
            bad, what = problem
            raise InputError(f"vertices of frame {self.frames + bad} contain {what}")
        stop = self.frames + a.shape[0]
        with self._h5():
            if stop > self._dset.shape[0]:
                # Unwritten chunks take no space, so grow geometrically and trim in _finish.
                self._dset.resize(max(stop, 2 * self._dset.shape[0]), axis=0)
            self._dset[self.frames:stop] = a
        self.frames = stop

    def _finish(self) -> None:
        if self._dset is None:
            raise InputError(f"no frames were written to {self.path}")
        with self._h5():
            self._dset.resize(self.frames, axis=0)
            attrs = self._file.attrs
            for k, v in self.meta.items():
                if k not in _INT_ATTRS:
                    attrs[k] = v
            for k in ("motion_sha256", "head_sha256", "head_is_standin"):
                if k not in self.meta:
                    attrs[k] = _UNKNOWN
            attrs["format"] = FORMAT_NAME
            attrs["format_version"] = FORMAT_VERSION
            attrs["artalk_version"] = self.meta.get("artalk_version", __version__)
            attrs["fps"] = np.int64(FPS)
            attrs["frames"] = np.int64(self.frames)
            attrs["vertex_count"] = np.int64(self._num_vertices or 0)
            attrs["face_count"] = np.int64(self.faces.shape[0])

    def _close_file(self) -> None:
        """Close the HDF5 file (its last writes go through the sink: checked by :meth:`_h5`)."""
        file, self._file, self._dset = self._file, None, None
        if file is not None:
            with self._h5():
                file.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        stack, self._stack = self._stack, None
        assert stack is not None, "VerticesWriter exited without being entered"
        if exc_type is not None:
            with contextlib.suppress(BaseException):  # the error being raised says it all
                self._close_file()
            stack.__exit__(exc_type, exc, tb)  # removes the temporary file
            return
        try:
            self._finish()
            self._close_file()
        except BaseException as e:
            with contextlib.suppress(BaseException):
                self._close_file()  # the h5py file is closed before its temp file goes
            stack.__exit__(type(e), e, e.__traceback__)
            raise
        stack.__exit__(None, None, None)  # renames the temporary file onto the target


def write_vertices(path: PathLike, frames: Iterable[Any], faces: np.ndarray, meta: Mapping[str, Any], *,
                   expected_frames: int | None = None) -> int:
    """Write frames (each [V,3], e.g. ``FlameModel.iter_vertices(...)``) to ``path``; returns the count."""
    with VerticesWriter(path, faces, meta=meta, expected_frames=expected_frames) as w:
        for frame in frames:
            w.write(frame)
        return w.frames


def _vertex_problem(frames: np.ndarray) -> tuple[int, str] | None:
    """(frame index, what is wrong) for the first frame of ``frames`` [n,V,3] holding a NaN, an
    infinity or a coordinate beyond :data:`MAX_VERTEX_ABS`; None when all are fine. The one check
    of the writer and the reader, so artalk never writes a vertices file it then refuses."""
    with np.errstate(over="ignore", invalid="ignore"):  # checked here, not warned about
        ok = np.isfinite(frames) & (np.abs(frames) <= MAX_VERTEX_ABS)
    if ok.all():
        return None
    where = np.unravel_index(int(np.argmin(ok)), ok.shape)
    value = frames[where]
    what = "NaN or infinite values" if not np.isfinite(value) else \
        f"a coordinate of {float(value):g} (more than {MAX_VERTEX_ABS:g} from the origin: not a head mesh)"
    return int(where[0]), what


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_chunks(dset: Any, what: str) -> None:
    """FormatError for HDF5 chunks over :data:`VERTICES_READ_BYTES`: each is decompressed whole to
    read any value in it (artalk writes one frame per chunk, 60 KB for FLAME)."""
    if dset.chunks is not None:
        size = math.prod(dset.chunks) * dset.dtype.itemsize
        if size > VERTICES_READ_BYTES:
            raise FormatError(f"{what} is stored in chunks of {size} bytes; artalk reads at most "
                              f"{VERTICES_READ_BYTES} at once (rewrite it with smaller chunks)")


def _check_stored(dset: Any, what: str) -> None:
    """FormatError unless every value of ``dset`` is stored in the file: HDF5 reads unwritten data
    as zeros, so a 2 KB file can announce a billion frames (hours of rendering, or terabytes read)."""
    if dset.chunks is not None:
        total = math.prod(-(-n // c) for n, c in zip(dset.shape, dset.chunks))
        stored = dset.id.get_num_chunks()
        short = stored < total
    else:
        short = dset.id.get_storage_size() < dset.size * dset.dtype.itemsize
    if short:
        raise FormatError(f"{what} announces {list(dset.shape)} values but the file does not hold them "
                          f"(truncated, or never written)")


class VerticesFile:
    """An open vertices file. ``frames``, ``fps``, ``faces`` [F,3] int32, ``meta`` (root attributes),
    ``num_vertices``; ``f[i]`` -> [V,3] float32; iterating yields frames lazily. Close it (or use
    it as a context manager)."""

    def __init__(self, path: PathLike) -> None:
        h5py = _h5py()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"vertices file not found: {self.path}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FormatError(f"{self.path} is not a vertices file (not HDF5: {e})") from e
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        h5py = _h5py()
        f = self._file
        for name in ("vertices", "faces"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise FormatError(f"{self.path} is not a vertices file: no '{name}' dataset")
        self._dset = f["vertices"]
        if self._dset.ndim != 3 or self._dset.shape[2] != 3 or self._dset.dtype.kind != "f":
            raise FormatError(f"{self.path}: 'vertices' must be float [T,V,3], got {self._dset.dtype} "
                              f"{list(self._dset.shape)}")
        faces_set = f["faces"]
        if faces_set.ndim != 2 or faces_set.shape[1] != 3 or faces_set.dtype.kind not in "iu":
            raise FormatError(f"{self.path}: 'faces' must be integer [F,3], got {faces_set.dtype} "
                              f"{list(faces_set.shape)}")
        # Sizes from the header, before any data is read (a gzip chunk of 9 KB can hold 300 MB).
        for name, count in (("vertices per frame", self._dset.shape[1]), ("faces", faces_set.shape[0])):
            if count > VERTICES_MAX_COUNT:
                raise FormatError(f"{self.path} announces {count} {name}; artalk reads at most "
                                  f"{VERTICES_MAX_COUNT} (FLAME has 5023)")
        for name in ("faces", "vertices"):
            _check_chunks(f[name], f"{self.path}: '{name}'")
            _check_stored(f[name], f"{self.path}: '{name}'")
        faces = faces_set[()]
        if faces.size and (faces.min() < 0 or faces.max() >= self._dset.shape[1]):
            raise FormatError(f"{self.path}: faces index vertices outside 0..{self._dset.shape[1] - 1}")
        self.faces: np.ndarray = faces.astype(np.int32)
        meta: dict[str, Any] = {}
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, np.generic):
                v = v.item()
            meta[k] = v
        fmt = meta.get("format")
        if fmt is not None and fmt != FORMAT_NAME:
            raise FormatError(f"{self.path} is a {fmt!r} file, not {FORMAT_NAME}")
        version = meta.get("format_version")
        if version is not None and str(version) != FORMAT_VERSION:
            raise FormatError(f"{self.path} is {FORMAT_NAME} version {version}; this artalk reads version "
                              f"{FORMAT_VERSION}")
        if "frames" in meta and str(meta["frames"]) != str(self._dset.shape[0]):
            raise FormatError(f"{self.path}: attribute frames={meta['frames']} but the dataset has "
                              f"{self._dset.shape[0]} frames (truncated file?)")
        self.meta: dict[str, Any] = meta
        self.frames: int = int(self._dset.shape[0])
        self.num_vertices: int = int(self._dset.shape[1])
        try:
            self.fps: int = int(meta.get("fps", FPS))
        except (TypeError, ValueError):
            raise FormatError(f"{self.path}: attribute fps={_short_repr(meta['fps'])} is not a number") from None

    def __len__(self) -> int:
        return self.frames

    def _checked(self, block: np.ndarray, first: int) -> np.ndarray:
        raw = np.asarray(block)
        problem = _vertex_problem(raw if raw.ndim == 3 else raw[None])
        if problem is not None:
            bad, what = problem
            raise FormatError(f"{self.path}: frame {first + bad} contains {what}")
        return raw.astype(np.float32, copy=False)

    def __getitem__(self, i: int) -> np.ndarray:
        idx = int(i)
        if idx < 0:
            idx += self.frames
        if not 0 <= idx < self.frames:
            raise IndexError(f"frame {i} out of range 0..{self.frames - 1}")
        return self._checked(self._dset[idx], idx)

    def __iter__(self) -> Iterator[np.ndarray]:
        # blocks of at most VERTICES_READ_BYTES (32 FLAME frames are 2 MB; one frame at least)
        step = max(1, min(32, VERTICES_READ_BYTES // max(1, self.num_vertices * 3 * self._dset.dtype.itemsize)))
        for start in range(0, self.frames, step):
            block = self._checked(self._dset[start:start + step], start)
            yield from block

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> VerticesFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_vertices(path: PathLike) -> VerticesFile:
    """Open a vertices file for lazy frame access (FormatError if it is not one)."""
    return VerticesFile(path)
