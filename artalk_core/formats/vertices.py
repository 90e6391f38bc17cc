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
from artalk_core.constants import FPS
from artalk_core.errors import FormatError, InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output, provenance

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


class VerticesWriter:
    """Write a vertices file frame by frame (bounded memory), atomically.

    ``with VerticesWriter(path, faces, meta=meta) as w: w.write(frame)`` where a frame is
    [V,3] (or a block [n,V,3]); the file appears at ``path`` only when the block exits cleanly.
    ``expected_frames`` pre-sizes the dataset (a hint: the final size is what was written).
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
        self._file: Any = None
        self._dset: Any = None
        self._num_vertices: int | None = None

    def __enter__(self) -> VerticesWriter:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_output(self.path, suffix=".h5"))
            try:
                self._file = _h5py().File(tmp, "w")
            except OSError as e:
                raise OutputError(f"cannot write {self.path}: {e}") from e
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        self._file.create_dataset("faces", data=self.faces)
        return self

    def _create(self, v: int) -> None:
        self._num_vertices = v
        if int(self.faces.max()) >= v:
            raise InputError(f"faces index vertex {int(self.faces.max())} but frames have {v} vertices")
        self._dset = self._file.create_dataset(
            "vertices", shape=(self.expected_frames, v, 3), maxshape=(None, v, 3), dtype=np.float32,
            chunks=(1, v, 3), compression=COMPRESSION, compression_opts=COMPRESSION_LEVEL, shuffle=True)

    def write(self, verts: Any) -> None:
        """Append one frame [V,3] or a block of frames [n,V,3] (float, finite)."""
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
        if not np.isfinite(a).all():
            raise InputError(f"vertices of frame {self.frames} contain NaN or infinite values")
        stop = self.frames + a.shape[0]
        if stop > self._dset.shape[0]:
            # Unwritten chunks take no space, so grow geometrically and trim in _finish.
            self._dset.resize(max(stop, 2 * self._dset.shape[0]), axis=0)
        self._dset[self.frames:stop] = a
        self.frames = stop

    def _finish(self) -> None:
        if self._dset is None:
            raise InputError(f"no frames were written to {self.path}")
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
        if self._file is not None:
            self._file.close()
            self._file = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        stack, self._stack = self._stack, None
        assert stack is not None, "VerticesWriter exited without being entered"
        try:
            if exc_type is None:
                self._finish()
        except BaseException as e:
            self._close_file()
            stack.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
            raise
        self._close_file()
        # On success this renames the temporary file onto the target; on error it removes it.
        stack.__exit__(exc_type, exc, tb)


def write_vertices(path: PathLike, frames: Iterable[Any], faces: np.ndarray, meta: Mapping[str, Any], *,
                   expected_frames: int | None = None) -> int:
    """Write frames (each [V,3], e.g. ``FlameModel.iter_vertices(...)``) to ``path``; returns the count."""
    with VerticesWriter(path, faces, meta=meta, expected_frames=expected_frames) as w:
        for frame in frames:
            w.write(frame)
        return w.frames


MAX_VERTEX_ABS = 1e4
"""Largest coordinate accepted in a vertices file. A FLAME head is about 0.3 units across; values
far beyond it are damage, and at ~1e19 the renderer's float32 products overflow (a blank video)."""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
        for name in ("faces", "vertices"):
            _check_stored(f[name], f"{self.path}: '{name}'")
        faces = f["faces"][()]
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
            raise FormatError(f"{self.path}: 'faces' must be integer [F,3], got {faces.dtype} {list(faces.shape)}")
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
        with np.errstate(over="ignore", invalid="ignore"):  # checked here, not warned about
            ok = np.isfinite(raw) & (np.abs(raw) <= MAX_VERTEX_ABS)
        if not ok.all():
            bad = first + int(np.argwhere(~ok)[0][0]) if raw.ndim == 3 else first
            value = raw[np.unravel_index(int(np.argmin(ok)), ok.shape)]
            what = "NaN or infinite values" if not np.isfinite(value) else \
                f"a coordinate of {float(value):g} (more than {MAX_VERTEX_ABS:g} from the origin: not a head mesh)"
            raise FormatError(f"{self.path}: frame {bad} contains {what}")
        return raw.astype(np.float32, copy=False)

    def __getitem__(self, i: int) -> np.ndarray:
        idx = int(i)
        if idx < 0:
            idx += self.frames
        if not 0 <= idx < self.frames:
            raise IndexError(f"frame {i} out of range 0..{self.frames - 1}")
        return self._checked(self._dset[idx], idx)

    def __iter__(self) -> Iterator[np.ndarray]:
        step = 32
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
