"""The motion format: float32 [T, 106] at 25 fps, plus style clips.

artalk writes motion as safetensors: tensor ``motion`` float32 [T, 106] (FLAME expression 0:100,
global head rotation 100:103, jaw rotation 103:106, axis-angle radians) and string metadata
(schema: ``artalk_core/schemas/motion.schema.json``). It also reads the reference tool's motion and
style files: ``torch.save`` of a float32 [T, 106] tensor (``*_motions.pt``, ``style_motion/*.pt``),
and the NDJSON motion stream of ``artalk generate --stream`` (:mod:`artalk_core.formats.motion_stream`).
The format is recognised from the content, never from the file name, so ``-`` (stdin) works.

One reader, :class:`MotionReader`, opens every kind and checks it; :func:`read_motion`,
:func:`read_style` and :func:`read_motion_meta` are thin uses of it.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import CHANNEL_LAYOUT, FPS, MOTION_DIM, STYLE_FRAMES
from artalk_core.errors import FormatError, InputError, StyleError
from artalk_core.fileio import PathLike, atomic_output, input_file, is_stdio, load_torch, parse_json
from artalk_core.formats import (
    Source,
    channel_name,
    check_motion_array,
    describe_kind,
    first_nonfinite,
    is_motion_stream,
    metadata_strings,
    sniff_kind,
    source_name,
    to_float32_array,
)
from artalk_core.formats.motion_stream import parse_motion_stream
from artalk_core.formats.tensorfile import TensorFileReader, TensorFileWriter, tensor_file_bytes

FORMAT_NAME = "artalk.motion"
FORMAT_VERSION = "1"
TENSOR_NAME = "motion"

BOOL_KEYS: tuple[str, ...] = ("postprocessed", "smoothed", "fix_pose")
"""Metadata keys holding ``true`` / ``false``."""
_SHA_RE = re.compile(r"^([0-9a-f]{64})?$")
_UINT_RE = re.compile(r"^(0|[1-9][0-9]*)$")


@dataclass
class Motion:
    """A motion sequence read from a file.

    ``data``: float32 [T, 106]; ``meta``: the file's string metadata (empty for reference files);
    ``origin``: ``"artalk"`` (our safetensors), ``"safetensors"`` (another safetensors file with a
    ``motion`` tensor), ``"reference-pt"`` (a torch.save'd tensor) or ``"stream"`` (an NDJSON motion
    stream from ``artalk generate --stream``).
    """

    data: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)
    origin: str = "artalk"

    @property
    def frames(self) -> int:
        """T, the number of frames."""
        return int(self.data.shape[0])

    @property
    def fps(self) -> int:
        return FPS

    @property
    def duration(self) -> float:
        """Length in seconds (T / 25)."""
        return self.frames / FPS

    def _flag(self, key: str) -> bool | None:
        value = self.meta.get(key)
        return None if value in (None, "") else value == "true"

    @property
    def is_postprocessed(self) -> bool:
        """True when the file says it went through :func:`artalk_core.postprocess.finalize_motion`."""
        return bool(self._flag("postprocessed"))

    @property
    def is_smoothed(self) -> bool:
        """True when the file says the Savitzky-Golay smoothing was applied."""
        return bool(self._flag("smoothed"))

    @property
    def fix_pose(self) -> bool:
        return bool(self._flag("fix_pose"))

    @property
    def engine(self) -> str | None:
        return self.meta.get("engine") or None

    @property
    def style(self) -> str | None:
        return self.meta.get("style") or None

    @property
    def clip_length(self) -> int | None:
        value = self.meta.get("clip_length", "")
        return int(value) if _UINT_RE.match(value) else None

    @property
    def audio_samples(self) -> int | None:
        value = self.meta.get("audio_samples", "")
        return int(value) if _UINT_RE.match(value) else None

    @property
    def options(self) -> dict[str, Any]:
        """The generating command's options (the ``options`` JSON metadata), or {}."""
        try:
            value = parse_json(self.meta.get("options", "") or "{}", "motion metadata")
        except FormatError:
            return {}
        return value if isinstance(value, dict) else {}

    def to_torch(self) -> Any:
        """``data`` as a float32 torch tensor [T, 106] (shares memory)."""
        import torch

        return torch.from_numpy(self.data)


def load_torch_tensor(data: bytes, name: str) -> np.ndarray:
    """The tensor in a ``torch.save`` file (loaded with weights_only=True) as float32 numpy.

    Raises FormatError when the file is corrupt, holds Python objects, or holds no single tensor.
    """
    import torch


    obj = load_torch(data, name, stored_only=True)
    if not isinstance(obj, torch.Tensor):
        raise FormatError(f"{name} holds a {type(obj).__name__}, not a [T, {MOTION_DIM}] motion tensor")
    try:
        return to_float32_array(obj, what=f"{name}: tensor")
    except InputError as e:
        raise FormatError(str(e)) from e


def _said(value: str) -> str:
    """A metadata value in a message: an integer text as it is, anything else quoted ("25.0" is not
    the text "25", and 'at 25.0 fps; artalk motion is 25 fps' would seem to contradict itself)."""
    return value if value.isdigit() else repr(value)


def _check_artalk_meta(meta: Mapping[str, str], name: str, n_frames: int) -> None:
    version = meta.get("format_version", "")
    if version != FORMAT_VERSION:
        raise FormatError(f"{name} is artalk motion format version {_said(version) if version else '?'}; this "
                          f"artalk reads version {FORMAT_VERSION} (upgrade artalk)")
    fps = meta.get("fps", str(FPS))
    if fps != str(FPS):
        raise FormatError(f"{name} is motion at {_said(fps)} fps; artalk motion is {FPS} fps")
    frames = meta.get("frames")
    if frames is not None and frames != str(n_frames):
        raise FormatError(f"{name} is corrupt: its metadata says {_said(frames)} frames but it holds {n_frames}")


def _not_motion(kind: str, name: str) -> FormatError:
    """The error for a file of ``kind`` (from :func:`sniff_kind`) given where motion was expected."""
    if kind == "features":
        return FormatError(f"{name} is an artalk features file, not motion; use it as the input of "
                           "`artalk generate` (read_features) to make motion")
    what = "" if kind == "unknown" else f"{describe_kind(kind)}, "
    return FormatError(f"{name} is {what}not a motion file (expected artalk motion .safetensors "
                       f"or a reference [T, {MOTION_DIM}] .pt tensor)")


class MotionReader:
    """Motion opened for reading in blocks: ``frames``, ``meta``, ``origin`` at once, the frames
    through :meth:`iter_blocks` or :meth:`read`. ``label`` names the source in messages (default:
    its path, ``<stdin>`` or ``<bytes>``).

    ``source``: a path, ``-`` (stdin, spooled to a temp file) or bytes, holding any motion format:
    artalk motion safetensors, a safetensors file with a ``motion`` tensor (``origin``
    ``"safetensors"``), the reference tool's ``torch.save``'d [T, 106] tensor (``"reference-pt"``)
    or a complete motion stream (``"stream"``: its header's ``meta`` plus the end line's fields).
    A safetensors file is read from disk block by block, so an hour of motion is never held; the
    others are loaded whole. Everything is checked on opening (shape, metadata, every value
    finite, naming the first bad frame and channel), so a bad file fails before any work starts:
    FormatError for what is not readable motion, ``err`` (FormatError) for a wrong shape, no
    frames or NaN/Inf, described as ``what`` ("motion").
    """

    def __init__(self, source: Source, *, block: int = 4096, label: str | None = None, what: str = "motion",
                 err: type[InputError] = FormatError) -> None:
        self._stack = contextlib.ExitStack()
        self._file: TensorFileReader | None = None
        self._data: np.ndarray | None = None
        self.meta: dict[str, str] = {}
        self.origin = "artalk"
        try:
            path, _, src_label = self._stack.enter_context(input_file(source))
            self.name = label or src_label
            self._open(path, max(1, int(block)), what, err)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, path: Path, block: int, what: str, err: type[InputError]) -> None:
        name = self.name
        kind = sniff_kind(path)  # InputError for a missing file or a folder
        if path.stat().st_size == 0:
            raise FormatError(f"{name} is empty (0 bytes); expected a motion file")
        if kind not in ("motion", "safetensors"):
            data = path.read_bytes()
            if kind == "motion-stream":
                arr, self.meta = parse_motion_stream(io.BytesIO(data), name)
                self.origin = "stream"
            elif kind == "reference-pt":
                arr, self.origin = load_torch_tensor(data, name), "reference-pt"
            else:
                raise _not_motion(kind, name)
            self._data = check_motion_array(arr, name, err=err, what=what)
            return

        def missing(names: list[str]) -> FormatError:
            if kind == "motion":
                return FormatError(f"{name} is corrupt: artalk motion file without a '{TENSOR_NAME}' tensor")
            return FormatError(f"{name} is a safetensors file without a '{TENSOR_NAME}' tensor "
                               f"(tensors: {', '.join(names[:6]) or 'none'}); expected an artalk motion file")

        reader = self._stack.enter_context(TensorFileReader(path, TENSOR_NAME, label=name, missing=missing))
        shape = reader.shape
        if len(shape) == 3 and shape[0] == 1:
            reader.reshape(shape[1:])
        if len(reader.shape) != 2 or reader.shape[1] != MOTION_DIM:
            raise err(f"{name}: {what} has shape {list(shape)}, expected [T, {MOTION_DIM}] "
                      f"(frames x {MOTION_DIM} FLAME channels)")
        if reader.rows == 0:
            raise err(f"{name}: {what} is empty (0 frames)")
        self.origin = "artalk" if kind == "motion" else "safetensors"
        if kind == "motion":
            _check_artalk_meta(reader.meta, name, reader.rows)
        self.meta = dict(reader.meta)
        for first, arr in zip(range(0, reader.rows, block), reader.iter_blocks(block)):
            check_motion_array(arr, name, err=err, what=what, first_frame=first)
        self._file = reader

    @property
    def frames(self) -> int:
        """T, the number of frames."""
        if self._file is not None:
            return self._file.rows
        assert self._data is not None
        return int(self._data.shape[0])

    @property
    def streamed(self) -> bool:
        """True when frames are read from disk block by block (not held in memory)."""
        return self._file is not None

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start .. stop`` (default: all), float32 [n,106]."""
        if self._file is not None:
            return self._file.read(start, stop)
        assert self._data is not None
        return self._data[start:stop]

    def iter_blocks(self, block: int = 1024) -> Iterator[np.ndarray]:
        """The frames in consecutive blocks of ``block`` [n,106] float32 (the last may be shorter)."""
        for start in range(0, self.frames, max(1, int(block))):
            yield self.read(start, start + block)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> MotionReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_motion(source: Source) -> MotionReader:
    """Open motion for block-wise reading (see :class:`MotionReader`); close it (or use ``with``)."""
    return MotionReader(source)


def read_motion(source: Source) -> Motion:
    """Read motion from a path, ``-`` (stdin) or bytes: all of :class:`MotionReader`, in memory.

    Returns float32 data [T, 106], the metadata and the origin. Raises FormatError (one line) for
    anything that is not motion, wrong shapes, empty motion, NaN/Inf (naming the first
    frame/channel) and truncated files.
    """
    with MotionReader(source) as r:
        return Motion(r.read(), dict(r.meta), r.origin)


def read_style(source: Source, *, style_start: int = 0) -> np.ndarray:
    """A style clip: frames ``style_start .. style_start+50`` of a style or motion file.

    ``source``: a reference style file (.pt float32 [50, 106]) or any motion file read_motion
    accepts (path, ``-`` or bytes). Returns float32 [50, 106]. Raises StyleError when the file is
    not motion, has the wrong channel count, NaN/Inf, or fewer than 50 frames from ``style_start``.
    """
    name = source_name(source)
    if style_start < 0:
        raise StyleError(f"style start frame must be >= 0, got {style_start}")
    try:
        reader = MotionReader(source, what="style clip", err=StyleError)
    except FormatError as e:
        raise StyleError(f"style {e}") from e
    with reader:
        end = style_start + STYLE_FRAMES
        if reader.frames < end:
            hint = (f"use a start frame <= {reader.frames - STYLE_FRAMES}" if reader.frames >= STYLE_FRAMES
                    else "use a longer clip")
            raise StyleError(f"{name}: style clip has {reader.frames} frames; need {STYLE_FRAMES} from "
                             f"frame {style_start} ({hint})")
        return np.ascontiguousarray(reader.read(style_start, end))


def read_motion_meta(source: Source) -> dict[str, str]:
    """The metadata of a motion file, from the header alone for an artalk motion file on disk."""
    if not isinstance(source, (bytes, bytearray, memoryview)) and not is_stdio(source) \
            and sniff_kind(source) == "motion":
        with TensorFileReader(source, TENSOR_NAME, label=str(source)) as r:
            return dict(r.meta)
    return read_motion(source).meta


def _normalize_meta(meta: Mapping[str, Any] | None, n_frames: int) -> dict[str, str]:
    out = metadata_strings(meta)
    for key in BOOL_KEYS:
        if key in out and out[key] not in ("true", "false"):
            raise FormatError(f"motion metadata {key!r} must be 'true' or 'false', got {out[key]!r}")
    for key, value in out.items():
        if key.endswith("_sha256") and not _SHA_RE.match(value):
            raise FormatError(f"motion metadata {key!r} must be a lowercase sha256 hex digest or empty")
    for key in ("audio_samples", "style_start"):
        if key in out and not _UINT_RE.match(out[key]):
            raise FormatError(f"motion metadata {key!r} must be a whole number, got {out[key]!r}")
    clip = out.get("clip_length", "")
    if clip != "" and (not _UINT_RE.match(clip) or int(clip) == 0):
        raise FormatError(f"motion metadata 'clip_length' must be a positive whole number or empty, got {clip!r}")
    if out.get("engine") == "":
        raise FormatError("motion metadata 'engine' must not be empty")
    out.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, fps=str(FPS), frames=str(n_frames),
               channels=str(MOTION_DIM), channel_layout=CHANNEL_LAYOUT)
    return out


def motion_bytes(data: Any, meta: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of an artalk motion file (what :func:`write_motion` writes)."""
    arr = check_motion_array(to_float32_array(data, what="motion"), "motion to write")
    return tensor_file_bytes(TENSOR_NAME, arr, _normalize_meta(meta, arr.shape[0]))


def write_motion(path: PathLike, data: Any, meta: Mapping[str, Any] | None = None) -> None:
    """Write motion float32 [T, 106] (numpy or torch) atomically to ``path`` (``-`` = stdout).

    ``meta``: string metadata (bools/ints are converted); format, format_version, fps, frames,
    channels and channel_layout are filled in here. Raises FormatError/InputError before
    anything is written when the data has the wrong shape, is empty or not finite; an existing
    file at ``path`` is then left as it was.
    """
    blob = motion_bytes(data, meta)
    with atomic_output(path) as tmp:
        tmp.write_bytes(blob)


class MotionWriter:
    """Writes an artalk motion file progressively: :meth:`write` frames as they are made,
    :meth:`finish` with the metadata once the whole length is known. The file is the same, byte
    for byte, as :func:`write_motion` of all the frames; memory holds one block, not the motion.

    Use as a context manager (an exception, or no :meth:`finish`, writes nothing and keeps an
    existing file). Each block is checked like :func:`write_motion` checks the whole (shape,
    NaN/Inf naming the frame) before it is taken.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self._w = TensorFileWriter(path, TENSOR_NAME, (MOTION_DIM,))
        self.meta: dict[str, str] = {}

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._w.rows

    def write(self, frames: Any) -> None:
        """Append frames float32 [n, 106] (numpy or torch; n may be 0)."""
        arr = to_float32_array(frames, what="motion")
        if arr.size == 0:
            return
        if arr.ndim != 2 or arr.shape[1] != MOTION_DIM:
            raise FormatError(f"motion to write has shape {list(arr.shape)}, expected [T, {MOTION_DIM}]")
        bad = first_nonfinite(arr)
        if bad is not None:
            raise FormatError(f"motion to write has a non-finite value ({arr[bad]}) at frame "
                              f"{self.frames + bad[0]}, channel {bad[1]} ({channel_name(bad[1])})")
        self._w.write(arr)

    def finish(self, meta: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Write the header and put the file in place; returns the metadata written."""
        if self.frames == 0:
            self._w.abort()
            raise FormatError("motion to write is empty (0 frames)")
        self.meta = _normalize_meta(meta, self.frames)
        self._w.finish(self.meta)
        return self.meta

    def map_frames(self) -> np.ndarray:
        """The frames written, float32 [T,106], memory-mapped (copy-on-write) rather than held."""
        return self._w.map_rows()

    def abort(self) -> None:
        self._w.abort()

    def __enter__(self) -> MotionWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._w.__exit__(exc_type, exc, tb)


def write_reference_motion(path: PathLike, data: Any) -> None:
    """Write motion in the reference tool's format: ``torch.save`` of a float32 [T, 106] tensor."""
    import torch

    arr = check_motion_array(to_float32_array(data, what="motion"), "motion to write")
    with atomic_output(path) as tmp:
        torch.save(torch.from_numpy(arr.copy()), tmp)


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Motion", "MotionReader", "MotionWriter", "open_motion",
           "read_motion_meta", "channel_name", "check_motion_array", "is_motion_stream", "load_torch_tensor",
           "motion_bytes", "read_motion", "read_style", "write_motion", "write_reference_motion"]
