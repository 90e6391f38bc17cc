"""Single-tensor safetensors files written and read a block of rows at a time.

artalk's motion and features files each hold one float32 tensor whose first axis grows with the
audio's length (90,000 motion frames, 900 feature chunks per hour). These classes let the
pipeline stream them, so memory does not grow with the duration:

- :class:`TensorFileWriter` appends rows as they are made. The header (shape, metadata) is only
  known at the end, and safetensors puts it first, so rows go to an anonymous spool file beside
  the output and are copied after the header when the writer finishes; the output itself is
  written atomically (temp file + rename).
- :class:`TensorFileReader` reads the header, then any range of rows, from a path (through the
  safetensors library's ``safe_open`` / ``get_slice``).

:func:`header_bytes` is the one place that lays out a safetensors header; every artalk writer
uses it, so the same tensor and metadata always give the same bytes (metadata keys sorted, the
JSON padded with spaces to a multiple of 8 bytes, as the safetensors library pads it). The writer
is our own because the library's ``save_file`` needs the whole tensor in memory, while artalk's
row count is only known once the last row is made.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, atomic_output, is_stdio, writing

DTYPE = "F32"
ITEMSIZE = 4
_ALIGN = 8
_COPY_BLOCK = 1 << 22


def header_bytes(name: str, shape: tuple[int, ...], meta: Mapping[str, str]) -> bytes:
    """The first bytes of a safetensors file holding one float32 tensor ``name`` of ``shape``:
    the 8-byte little-endian header length, then the JSON header padded to a multiple of 8."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * ITEMSIZE
    header: dict[str, Any] = {}
    if meta:
        header["__metadata__"] = {str(k): str(meta[k]) for k in sorted(meta)}
    header[name] = {"dtype": DTYPE, "shape": [int(n) for n in shape], "data_offsets": [0, nbytes]}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    return struct.pack("<Q", len(text)) + text


def tensor_file_bytes(name: str, arr: np.ndarray, meta: Mapping[str, str]) -> bytes:
    """A whole single-tensor safetensors file (float32 ``arr``) as bytes."""
    data = np.ascontiguousarray(arr, dtype="<f4")
    return header_bytes(name, tuple(data.shape), meta) + data.tobytes()


class TensorFileWriter:
    """Writes a float32 tensor [N, *row_shape] to ``path`` (``-`` = stdout) as safetensors, rows
    appended with :meth:`write` and the header written by :meth:`finish`.

    Use as a context manager: leaving the block with an exception, or without :meth:`finish`,
    writes nothing (an existing file at ``path`` is kept). Memory: one block of rows at a time;
    disk: the rows twice until :meth:`finish` returns (the spool, then the output).
    """

    def __init__(self, path: PathLike, name: str, row_shape: tuple[int, ...]) -> None:
        self.path = path
        self.name = name
        self.row_shape = tuple(int(n) for n in row_shape)
        self.rows = 0
        self._row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * ITEMSIZE
        self._stack = contextlib.ExitStack()
        self._tmp: Path = self._stack.enter_context(atomic_output(path))
        # Stdout's temp file lives in the temp folder; any other output's beside it (same disk).
        spool_dir = self._tmp.parent if not is_stdio(path) else None
        try:
            # Kept open after finish() for map_rows(); closed on leaving the ``with`` block.
            self._spool: BinaryIO = tempfile.TemporaryFile(dir=spool_dir)
        except BaseException:
            self._stack.__exit__(*_abort_exc())
            raise
        self._done = False

    def write(self, rows: np.ndarray) -> None:
        """Append float32 rows [n, *row_shape] (n may be 0)."""
        arr = np.ascontiguousarray(rows, dtype="<f4")
        if arr.ndim != 1 + len(self.row_shape) or tuple(arr.shape[1:]) != self.row_shape:
            raise InputError(f"{self.name} rows have shape {list(arr.shape)}, expected [n, "
                             f"{', '.join(map(str, self.row_shape))}]")
        if arr.size:
            with writing(self.path):
                self._spool.write(arr.reshape(-1).data.cast("B"))
            self.rows += arr.shape[0]

    def finish(self, meta: Mapping[str, str]) -> None:
        """Write the header (shape [rows, *row_shape], ``meta``) and the rows; put the file in place."""
        if self._done:
            raise InputError(f"{self.path}: this writer has already finished")
        head = header_bytes(self.name, (self.rows, *self.row_shape), meta)
        self._spool.flush()
        self._spool.seek(0)
        with writing(self.path), open(self._tmp, "wb") as out:
            out.write(head)
            shutil.copyfileobj(self._spool, out, _COPY_BLOCK)
        self._done = True
        self._stack.close()  # the rename onto ``path`` (or the copy to stdout)

    def map_rows(self) -> np.ndarray:
        """The rows written so far, as a copy-on-write memory map of the spool (not held in memory).

        Call it before leaving the ``with`` block (after :meth:`finish` is fine); the map stays
        valid after that. Shape [rows, *row_shape].
        """
        self._spool.flush()
        if self.rows == 0:
            return np.zeros((0, *self.row_shape), np.float32)
        return np.memmap(self._spool, dtype="<f4", mode="c", shape=(self.rows, *self.row_shape))

    def abort(self) -> None:
        """Discard everything (the output is not touched)."""
        if not self._done:
            self._done = True
            self._stack.__exit__(*_abort_exc())
        self._spool.close()

    def close(self) -> None:
        """Release the spool; without :meth:`finish` first, this is :meth:`abort`."""
        self.abort()

    def __enter__(self) -> TensorFileWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.abort()


def _abort_exc() -> tuple[type[BaseException], BaseException, None]:
    err = RuntimeError("tensor file not finished")
    return RuntimeError, err, None


class TensorFileReader:
    """Reads a single float32 tensor ``name`` of a safetensors file at ``path``, a range of rows at a time.

    Built on ``safetensors.safe_open`` (the file is memory-mapped; :meth:`read` copies the rows it
    is asked for through ``get_slice``). The header is checked on opening: FormatError for a file
    that is not safetensors, is cut short, has no such tensor or another dtype (``missing`` builds
    the error for a file without the tensor from the names it holds, so a format can say what it
    expected). ``meta``: the string metadata; ``shape``: the tensor's shape; :meth:`read` /
    :meth:`iter_blocks` read rows.
    """

    def __init__(self, path: PathLike, name: str, *, label: str | None = None,
                 missing: Callable[[list[str]], FormatError] | None = None) -> None:
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        self.name = name
        self.label = label or str(path)
        if not self.path.exists():
            raise InputError(f"input file not found: {self.path}")
        if self.path.is_dir():
            raise InputError(f"input is a folder, not a file: {self.path}")
        self._stack = contextlib.ExitStack()
        try:
            try:
                f = self._stack.enter_context(safe_open(str(self.path), framework="numpy"))
            except SafetensorError as e:
                raise _corrupt(self.label, e) from None
            except OSError as e:
                raise InputError(f"cannot read {self.path}: {e.strerror or e}") from e
            self.meta: dict[str, str] = dict(f.metadata() or {})
            if name not in f.keys():
                names = sorted(f.keys())
                raise missing(names) if missing is not None else FormatError(f"{self.label} has no '{name}' tensor")
            self._slice = f.get_slice(name)
            if self._slice.get_dtype() != DTYPE:
                raise FormatError(f"{self.label}: tensor '{name}' is {self._slice.get_dtype()}, expected float32 ({DTYPE})")
        except BaseException:
            self._stack.close()
            raise
        self._stored: tuple[int, ...] = tuple(int(n) for n in self._slice.get_shape())
        # Leading axes of 1 are indexed away, so rows of a [1, T, C] tensor are read T-wise, not whole.
        self._lead = 0
        while self._lead < len(self._stored) - 1 and self._stored[self._lead] == 1:
            self._lead += 1
        self.shape: tuple[int, ...] = self._stored

    @property
    def rows(self) -> int:
        """N, the tensor's first dimension (0 for a scalar)."""
        return int(self.shape[0]) if self.shape else 0

    def reshape(self, shape: tuple[int, ...]) -> None:
        """Read the same values as ``shape`` (same element count), e.g. [1,T,C] as [T,C]."""
        shape = tuple(int(n) for n in shape)
        if _count(shape) != _count(self._stored):
            raise InputError(f"cannot view a tensor of shape {list(self.shape)} as {list(shape)}")
        self.shape = shape

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start .. stop`` (clamped to the tensor) as a new float32 array."""
        stop = self.rows if stop is None else min(int(stop), self.rows)
        start = max(0, min(int(start), stop))
        row_shape = self.shape[1:]
        if stop == start:
            return np.zeros((0, *row_shape), np.float32)
        # The rows asked for, as a range of elements of the tensor, read as whole stored rows.
        per_row, stored_rows = _count(row_shape), self._stored[self._lead:]
        per_stored = _count(stored_rows[1:]) if stored_rows else 1
        first, last = start * per_row, stop * per_row
        lo, hi = first // per_stored, -(-last // per_stored)
        block = self._slice[(*([0] * self._lead), slice(lo, hi))] if stored_rows else self._slice[:]
        flat = np.asarray(block, dtype=np.float32).reshape(-1)[first - lo * per_stored:last - lo * per_stored]
        return np.array(flat.reshape(stop - start, *row_shape), dtype=np.float32)

    def iter_blocks(self, block: int, start: int = 0) -> Iterator[np.ndarray]:
        """Rows in consecutive blocks of ``block`` (the last may be shorter), each a new array."""
        for first in range(start, self.rows, max(1, int(block))):
            yield self.read(first, first + block)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> TensorFileReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _count(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _corrupt(label: str, err: Exception) -> FormatError:
    """One line for a file safetensors refuses (``err``: its SafetensorError)."""
    detail = str(err).split(":", 1)[-1].strip() or "not safetensors"
    if "not fully covered" in detail:
        return FormatError(f"{label} is truncated or corrupt: its size does not match its safetensors header")
    return FormatError(f"{label} is truncated or corrupt: its safetensors header cannot be read ({detail})")


__all__ = ["TensorFileReader", "TensorFileWriter", "header_bytes", "tensor_file_bytes"]
