"""The motion format: float32 [T, 106] at 25 fps, plus style clips.

artalk writes motion as safetensors: tensor ``motion`` float32 [T, 106] (FLAME expression 0:100,
global head rotation 100:103, jaw rotation 103:106, axis-angle radians) and string metadata
(schema: ``schemas/motion.schema.json``). It also reads the reference tool's motion and style
files: ``torch.save`` of a float32 [T, 106] tensor (``*_motions.pt``, ``style_motion/*.pt``).
The format is recognised from the content, never from the file name, so ``-`` (stdin) works.

``artalk generate --stream`` writes the *motion stream*: NDJSON (one JSON object per line), a
header line, one line per frame, then an end line (schema: ``schemas/motion-stream.schema.json``).
:func:`read_motion` reads it too; :class:`MotionStreamWriter` writes it and
:func:`iter_motion_stream` reads it frame by frame as it arrives.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artalk_core.constants import CHANNEL_LAYOUT, FPS, GLOBAL_ROT_SLICE, JAW_SLICE, MOTION_DIM, STYLE_FRAMES
from artalk_core.errors import FormatError, InputError, StyleError
from artalk_core.fileio import PathLike, atomic_output, is_stdio
from artalk_core.formats import (
    Source,
    describe_kind,
    first_nonfinite,
    is_motion_stream,
    load_safetensors_bytes,
    metadata_strings,
    sniff_kind,
    source_bytes,
    source_name,
    to_float32_array,
)

FORMAT_NAME = "artalk.motion"
FORMAT_VERSION = "1"
TENSOR_NAME = "motion"

BOOL_KEYS: tuple[str, ...] = ("postprocessed", "smoothed", "fix_pose")
"""Metadata keys holding ``true`` / ``false``."""
_SHA_RE = re.compile(r"^([0-9a-f]{64})?$")
_UINT_RE = re.compile(r"^(0|[1-9][0-9]*)$")


def channel_name(channel: int) -> str:
    """Readable name of motion channel ``channel``: ``expression[7]``, ``global_rotation[1]``, ``jaw_rotation[0]``."""
    if channel < GLOBAL_ROT_SLICE.start:
        return f"expression[{channel}]"
    if channel < JAW_SLICE.start:
        return f"global_rotation[{channel - GLOBAL_ROT_SLICE.start}]"
    return f"jaw_rotation[{channel - JAW_SLICE.start}]"


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
            value = json.loads(self.meta.get("options", "") or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def to_torch(self) -> Any:
        """``data`` as a float32 torch tensor [T, 106] (shares memory)."""
        import torch

        return torch.from_numpy(self.data)


def check_motion_array(arr: np.ndarray, name: str, *, err: type[InputError] = FormatError,
                       what: str = "motion") -> np.ndarray:
    """Validate a [T, 106] array: 2-D (a leading batch axis of 1 is dropped), 106 channels,
    T >= 1, all finite. Returns the (possibly squeezed) float32 array; raises ``err``."""
    while arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != MOTION_DIM:
        raise err(f"{name}: {what} has shape {list(arr.shape)}, expected [T, {MOTION_DIM}] "
                  f"(frames x {MOTION_DIM} FLAME channels)")
    if arr.shape[0] == 0:
        raise err(f"{name}: {what} is empty (0 frames)")
    bad = first_nonfinite(arr)
    if bad is not None:
        value = arr[bad]
        raise err(f"{name}: {what} has a non-finite value ({value}) at frame {bad[0]}, "
                  f"channel {bad[1]} ({channel_name(bad[1])})")
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_torch_tensor(data: bytes, name: str) -> np.ndarray:
    """The tensor in a ``torch.save`` file (loaded with weights_only=True) as float32 numpy.

    Raises FormatError when the file is corrupt, holds Python objects, or holds no single tensor.
    """
    import torch

    from artalk_core.fileio import load_torch

    obj = load_torch(data, name)
    if not isinstance(obj, torch.Tensor):
        raise FormatError(f"{name} holds a {type(obj).__name__}, not a [T, {MOTION_DIM}] motion tensor")
    try:
        return to_float32_array(obj, what=f"{name}: tensor")
    except InputError as e:
        raise FormatError(str(e)) from e


def _check_artalk_meta(meta: Mapping[str, str], name: str, n_frames: int) -> None:
    version = meta.get("format_version", "")
    if version != FORMAT_VERSION:
        raise FormatError(f"{name} is artalk motion format version {version or '?'}; this artalk "
                          f"reads version {FORMAT_VERSION} (upgrade artalk)")
    fps = meta.get("fps", str(FPS))
    if fps != str(FPS):
        raise FormatError(f"{name} is motion at {fps} fps; artalk motion is {FPS} fps")
    frames = meta.get("frames")
    if frames is not None and frames != str(n_frames):
        raise FormatError(f"{name} is corrupt: its metadata says {frames} frames but it holds {n_frames}")


def load_motion_array(data: bytes, name: str) -> tuple[np.ndarray, dict[str, str], str]:
    """Unvalidated motion array, metadata and origin from a file's bytes (any motion format).

    Raises FormatError for files that are not motion (naming what they are instead).
    """
    if not data:
        raise FormatError(f"{name} is empty (0 bytes); expected a motion file")
    if is_motion_stream(data):
        arr, meta = _parse_motion_stream(io.BytesIO(data), name)
        return arr, meta, "stream"
    kind = sniff_kind(data)
    if kind == "motion":
        tensors, meta = load_safetensors_bytes(data, name)
        if TENSOR_NAME not in tensors:
            raise FormatError(f"{name} is corrupt: artalk motion file without a '{TENSOR_NAME}' tensor")
        arr = tensors[TENSOR_NAME]
        if arr.ndim >= 1:
            _check_artalk_meta(meta, name, int(arr.shape[0]))
        return arr, meta, "artalk"
    if kind == "safetensors":
        tensors, meta = load_safetensors_bytes(data, name)
        if TENSOR_NAME in tensors:
            return tensors[TENSOR_NAME], meta, "safetensors"
        names = ", ".join(sorted(tensors)[:6]) or "none"
        raise FormatError(f"{name} is a safetensors file without a '{TENSOR_NAME}' tensor "
                          f"(tensors: {names}); expected an artalk motion file")
    if kind == "reference-pt":
        return load_torch_tensor(data, name), {}, "reference-pt"
    if kind == "features":
        raise FormatError(f"{name} is an artalk features file, not motion; use it as the input of "
                          "`artalk generate` (read_features) to make motion")
    what = "" if kind == "unknown" else f"{describe_kind(kind)}, "
    raise FormatError(f"{name} is {what}not a motion file (expected artalk motion .safetensors "
                      f"or a reference [T, {MOTION_DIM}] .pt tensor)")


def read_motion(source: Source) -> Motion:
    """Read motion from a path, ``-`` (stdin) or bytes.

    Accepts artalk motion safetensors, a safetensors file with a ``motion`` tensor, the
    reference tool's ``torch.save``'d float32 [T, 106] tensor (any file name), and a complete
    motion stream (NDJSON, see :class:`MotionStreamWriter`; its ``meta`` plus the end line's fields). Returns float32
    data [T, 106]. Raises FormatError (one line) for anything else, wrong shapes, empty motion,
    NaN/Inf (naming the first frame/channel) and truncated files.
    """
    name = source_name(source)
    arr, meta, origin = load_motion_array(source_bytes(source), name)
    return Motion(check_motion_array(arr, name), dict(meta), origin)


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
        arr, _, _ = load_motion_array(source_bytes(source), name)
    except FormatError as e:
        raise StyleError(f"style {e}") from e
    arr = check_motion_array(arr, name, err=StyleError, what="style clip")
    end = style_start + STYLE_FRAMES
    if arr.shape[0] < end:
        hint = (f"use a start frame <= {arr.shape[0] - STYLE_FRAMES}" if arr.shape[0] >= STYLE_FRAMES
                else "use a longer clip")
        raise StyleError(f"{name}: style clip has {arr.shape[0]} frames; need {STYLE_FRAMES} from "
                         f"frame {style_start} ({hint})")
    return np.ascontiguousarray(arr[style_start:end])


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
    from artalk_core.formats.tensorfile import tensor_file_bytes

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
        from artalk_core.formats.tensorfile import TensorFileWriter

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


class MotionReader:
    """A motion file opened for reading in blocks: ``frames``, ``meta``, ``origin`` at once, the
    frames through :meth:`iter_blocks` (or all of them through :meth:`read`). ``label`` names the
    source in messages (default: its path, ``<stdin>`` or ``<bytes>``).

    An artalk (or other safetensors) motion file given by path is read from disk block by block,
    so an hour of motion is never held; it is checked once on opening (shape, metadata, every
    value finite), so a bad file fails before any work starts. Any other source (the reference
    ``.pt``, a motion stream, stdin, bytes) is read whole by :func:`read_motion`.
    """

    def __init__(self, source: Source, *, block: int = 4096, label: str | None = None) -> None:
        self.name = label or source_name(source)
        self._file: Any = None
        self._data: np.ndarray | None = None
        kind = None if isinstance(source, (bytes, bytearray, memoryview)) or is_stdio(source) else sniff_kind(source)
        if kind in ("motion", "safetensors"):
            self._open_file(source, kind, block)
        else:
            arr, meta, self.origin = load_motion_array(source_bytes(source), self.name)
            self._data, self.meta = check_motion_array(arr, self.name), dict(meta)

    def _open_file(self, path: PathLike, kind: str, block: int) -> None:
        from artalk_core.formats.tensorfile import TensorFileReader

        def missing(names: list[str]) -> FormatError:
            if kind == "motion":
                return FormatError(f"{self.name} is corrupt: artalk motion file without a '{TENSOR_NAME}' tensor")
            return FormatError(f"{self.name} is a safetensors file without a '{TENSOR_NAME}' tensor "
                               f"(tensors: {', '.join(names[:6]) or 'none'}); expected an artalk motion file")

        reader = TensorFileReader(path, TENSOR_NAME, label=self.name, missing=missing)
        try:
            shape = reader.shape
            if len(shape) == 3 and shape[0] == 1:
                reader.reshape(shape[1:])
            if len(reader.shape) != 2 or reader.shape[1] != MOTION_DIM:
                raise FormatError(f"{self.name}: motion has shape {list(shape)}, expected [T, {MOTION_DIM}] "
                                  f"(frames x {MOTION_DIM} FLAME channels)")
            if reader.rows == 0:
                raise FormatError(f"{self.name}: motion is empty (0 frames)")
            self.origin = "artalk" if kind == "motion" else "safetensors"
            if kind == "motion":
                _check_artalk_meta(reader.meta, self.name, reader.rows)
            self.meta = dict(reader.meta)
            for first, arr in zip(range(0, reader.rows, block), reader.iter_blocks(block)):
                bad = first_nonfinite(arr)
                if bad is not None:
                    raise FormatError(f"{self.name}: motion has a non-finite value ({arr[bad]}) at frame "
                                      f"{first + bad[0]}, channel {bad[1]} ({channel_name(bad[1])})")
        except BaseException:
            reader.close()
            raise
        self._file = reader

    @property
    def frames(self) -> int:
        """T, the number of frames."""
        return self._file.rows if self._file is not None else int(self._data.shape[0])  # type: ignore[union-attr]

    @property
    def streamed(self) -> bool:
        """True when frames are read from disk block by block (not held in memory)."""
        return self._file is not None

    def iter_blocks(self, block: int = 1024) -> Iterator[np.ndarray]:
        """The frames in consecutive blocks of ``block`` [n,106] float32 (the last may be shorter)."""
        if self._file is not None:
            yield from self._file.iter_blocks(block)
            return
        assert self._data is not None
        for start in range(0, self._data.shape[0], max(1, int(block))):
            yield self._data[start:start + block]

    def read(self) -> np.ndarray:
        """All frames, float32 [T,106]."""
        return self._file.read() if self._file is not None else self._data  # type: ignore[return-value]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> MotionReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_motion(source: Source) -> MotionReader:
    """Open motion for block-wise reading (see :class:`MotionReader`); close it (or use ``with``)."""
    return MotionReader(source)


def read_motion_meta(source: Source) -> dict[str, str]:
    """The metadata of a motion file, from the header alone for a safetensors file on disk."""
    if not isinstance(source, (bytes, bytearray, memoryview)) and not is_stdio(source):
        from artalk_core.formats import safetensors_header

        if sniff_kind(source) == "motion":
            header = safetensors_header(source) or {}
            meta = header.get("__metadata__") or {}
            if isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()):
                return dict(meta)
    return read_motion(source).meta


def write_reference_motion(path: PathLike, data: Any) -> None:
    """Write motion in the reference tool's format: ``torch.save`` of a float32 [T, 106] tensor."""
    import torch

    arr = check_motion_array(to_float32_array(data, what="motion"), "motion to write")
    with atomic_output(path) as tmp:
        torch.save(torch.from_numpy(arr.copy()), tmp)


# ---- the motion stream (NDJSON) ----------------------------------------------------------------
STREAM_FORMAT = "artalk.motion-stream"
STREAM_VERSION = 1


def _frame_text(row: np.ndarray) -> str:
    # str() of a numpy float32 is the shortest text that reads back to the same float32.
    return ",".join(map(str, row))


class MotionStreamWriter:
    """Writes the motion stream to a binary file object, one line at a time.

    Line 1, the header: ``{"format": "artalk.motion-stream", "version": 1, "fps": 25,
    "channels": 106, "channel_layout": ..., "delay_frames": D, "meta": {...}}`` where ``meta`` is
    the string metadata a motion file would carry (engine, style, postprocessed, smoothed,
    clip_length, fix_pose, checkpoint_sha256, provenance) and ``delay_frames`` how many frames of
    input the writer waited for beyond each frame (4 for post-processed motion, 0 for raw).
    Then one line per frame, ``{"t": i, "motion": [106 numbers]}`` with t = 0, 1, 2, ... and each
    number the shortest decimal that reads back to the same float32. Last, ``{"end": true,
    "frames": T, ...}`` (extra string fields such as ``audio_samples``, ``audio_sha256``), or, if
    the producer failed after the header, ``{"error": "message"}``. A stream without an end line
    is incomplete. :meth:`write_frames` flushes after each call, so a reader sees every chunk as
    soon as it is made.
    """

    def __init__(self, f: Any, meta: Mapping[str, Any] | None = None, *, delay_frames: int = 0) -> None:
        self._f = f
        self.frames = 0
        self._closed = False
        meta_s = metadata_strings(meta)
        for key in ("format", "format_version", "frames"):
            meta_s.pop(key, None)
        header = {"format": STREAM_FORMAT, "version": STREAM_VERSION, "fps": FPS, "channels": MOTION_DIM,
                  "channel_layout": CHANNEL_LAYOUT, "delay_frames": int(delay_frames), "meta": meta_s}
        self._write(json.dumps(header) + "\n")

    def _write(self, text: str) -> None:
        self._f.write(text.encode("utf-8"))
        self._f.flush()

    def write_frames(self, frames: Any) -> None:
        """Append frames float32 [n,106] (n may be 0) and flush."""
        arr = to_float32_array(frames, what="motion")
        if arr.size == 0:
            return
        arr = check_motion_array(arr, "motion to stream")
        lines = []
        for row in arr:
            lines.append(f'{{"t": {self.frames}, "motion": [{_frame_text(row)}]}}\n')
            self.frames += 1
        self._write("".join(lines))

    def end(self, **fields: Any) -> None:
        """Write the end line: ``frames`` (the count written) plus ``fields`` (as strings)."""
        if self._closed:
            return
        self._closed = True
        extra = metadata_strings(fields)
        extra.pop("end", None)
        extra.pop("frames", None)
        self._write(json.dumps({"end": True, "frames": self.frames, **extra}) + "\n")

    def error(self, message: str) -> None:
        """End the stream with an error line (a reader raises it)."""
        if self._closed:
            return
        self._closed = True
        self._write(json.dumps({"error": str(message)}) + "\n")


def _stream_line(line: bytes | str, name: str, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FormatError(f"{name} is a corrupt motion stream: line {lineno} is not JSON (cut short?)") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{name} is a corrupt motion stream: line {lineno} is not a JSON object")
    return obj


def _stream_header(line: bytes | str, name: str) -> dict[str, Any]:
    head = _stream_line(line, name, 1)
    if head.get("format") != STREAM_FORMAT:
        raise FormatError(f"{name} is not a motion stream (its first line has no format {STREAM_FORMAT!r})")
    if head.get("version") != STREAM_VERSION:
        raise FormatError(f"{name} is motion stream version {head.get('version')!r}; this artalk reads "
                          f"version {STREAM_VERSION} (upgrade artalk)")
    if head.get("fps") != FPS or head.get("channels") != MOTION_DIM:
        raise FormatError(f"{name} is a motion stream at {head.get('fps')} fps with {head.get('channels')} "
                          f"channels; artalk motion is {FPS} fps, {MOTION_DIM} channels")
    meta = head.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{name} is a corrupt motion stream: the header's meta must map names to strings")
    return head


def iter_motion_stream(lines: Iterable[bytes | str], name: str = "<stream>") -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Read a motion stream progressively: yields (header, frame float32 [106]) per frame, as the
    lines arrive (``lines``: a file object opened in binary or text mode, or any line iterable).

    Raises FormatError for a corrupt line, frames out of order, an error line, or input that ends
    without the end line (the producer stopped early); the end line's frame count is checked.
    """
    it = iter(lines)
    try:
        first = next(it)
    except StopIteration:
        raise FormatError(f"{name} is empty; expected a motion stream") from None
    header = _stream_header(first, name)
    count = 0
    for lineno, line in enumerate(it, start=2):
        if not line.strip():
            continue
        obj = _stream_line(line, name, lineno)
        if "motion" in obj:
            if obj.get("t") != count:
                raise FormatError(f"{name} is a corrupt motion stream: line {lineno} holds frame "
                                  f"{obj.get('t')!r}, expected {count}")
            row = obj["motion"]
            if not isinstance(row, list) or len(row) != MOTION_DIM:
                raise FormatError(f"{name} is a corrupt motion stream: frame {count} does not hold "
                                  f"{MOTION_DIM} numbers")
            try:
                frame = np.asarray(row, dtype=np.float32)
            except (TypeError, ValueError):
                raise FormatError(f"{name} is a corrupt motion stream: frame {count} holds non-numbers") from None
            count += 1
            yield header, frame
        elif obj.get("end") is True:
            if obj.get("frames") != count:
                raise FormatError(f"{name} is a corrupt motion stream: its end line says {obj.get('frames')} "
                                  f"frames but it holds {count}")
            header["end"] = obj
            return
        elif "error" in obj:
            raise FormatError(f"{name}: the motion stream stopped with an error: {obj['error']}")
        else:
            raise FormatError(f"{name} is a corrupt motion stream: line {lineno} is neither a frame nor the end")
    raise FormatError(f"{name} is an incomplete motion stream ({count} frames, no end line): "
                      "the producer stopped early")


def _parse_motion_stream(lines: Iterable[bytes | str], name: str) -> tuple[np.ndarray, dict[str, str]]:
    """A whole motion stream -> (motion [T,106] float32, metadata strings)."""
    header: dict[str, Any] = {}
    frames: list[np.ndarray] = []
    for header, frame in iter_motion_stream(lines, name):
        frames.append(frame)
    if not frames:  # header and end line only
        raise FormatError(f"{name}: the motion stream holds no frames")
    end = header.get("end", {})
    meta = dict(header.get("meta", {}))
    meta.update({k: v for k, v in end.items() if isinstance(v, str)})
    return np.stack(frames), meta


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Motion", "MotionReader", "MotionStreamWriter", "MotionWriter",
           "open_motion", "read_motion_meta", "STREAM_FORMAT", "STREAM_VERSION",
           "channel_name", "check_motion_array", "is_motion_stream", "iter_motion_stream", "load_motion_array",
           "load_torch_tensor", "motion_bytes", "read_motion", "read_style", "write_motion",
           "write_reference_motion"]
