"""The motion stream: NDJSON motion written and read frame by frame (``artalk generate --stream``).

One JSON object per line: a header line, one line per frame, then an end line (schema:
``artalk_core/schemas/motion-stream.schema.json``). :class:`MotionStreamWriter` writes it,
:func:`iter_motion_stream` reads it frame by frame as it arrives, and :func:`parse_motion_stream`
reads a whole one (what :func:`artalk_core.formats.motion.read_motion` does with a stream).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from artalk_core.constants import CHANNEL_LAYOUT, FPS, MOTION_DIM
from artalk_core.errors import FormatError
from artalk_core.fileio import parse_json
from artalk_core.formats import check_motion_array, is_motion_stream, metadata_strings, to_float32_array

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
    input the writer waited for beyond each frame (4 for post-processed motion, 0 for raw, plus
    the engine's look-ahead). A live producer adds ``block_frames``: the engine works on the audio
    in blocks of that many frames (100 for the model's 4-s chunks, 1 for the energy engine), so
    frame t comes out once the block holding frame t + delay_frames is in.
    Then one line per frame, ``{"t": i, "motion": [106 numbers]}`` with t = 0, 1, 2, ... and each
    number the shortest decimal that reads back to the same float32. Last, ``{"end": true,
    "frames": T, ...}`` (extra string fields such as ``audio_samples``, ``audio_sha256``), or, if
    the producer failed after the header, ``{"error": "message"}``. A stream without an end line
    is incomplete. :meth:`write_frames` flushes after each call, so a reader sees every chunk as
    soon as it is made.
    """

    def __init__(self, f: Any, meta: Mapping[str, Any] | None = None, *, delay_frames: int = 0,
                 block_frames: int | None = None) -> None:
        self._f = f
        self.frames = 0
        self._closed = False
        meta_s = metadata_strings(meta)
        for key in ("format", "format_version", "frames"):
            meta_s.pop(key, None)
        header: dict[str, Any] = {"format": STREAM_FORMAT, "version": STREAM_VERSION, "fps": FPS,
                                  "channels": MOTION_DIM, "channel_layout": CHANNEL_LAYOUT,
                                  "delay_frames": int(delay_frames), "meta": meta_s}
        if block_frames is not None:
            header["block_frames"] = int(block_frames)
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
    obj = parse_json(line, f"{name} is a corrupt motion stream: line {lineno} is not JSON")
    if not isinstance(obj, dict):
        raise FormatError(f"{name} is a corrupt motion stream: line {lineno} is not a JSON object")
    return obj


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _frame(row: list[Any], name: str, t: int) -> np.ndarray:
    """One frame's 106 JSON numbers as float32 [106]: strings, booleans, nulls and nested lists are
    refused (numpy would read "1" as 1.0 and null as NaN), as are finite numbers float32 cannot
    hold (they would turn into inf); NaN and inf are left to the motion checks, which name them."""
    if not all(type(x) in (int, float) for x in row):  # bool is not int here: type(), not isinstance()
        raise FormatError(f"{name} is a corrupt motion stream: frame {t} holds non-numbers")
    wide = np.array(row, dtype=np.float64)  # ints have at most JSON_MAX_INT_DIGITS digits: they fit
    big = np.flatnonzero(np.isfinite(wide) & (np.abs(wide) > _FLOAT32_MAX))
    if big.size:
        raise FormatError(f"{name} is a corrupt motion stream: frame {t}, channel {int(big[0])} holds "
                          f"{wide[big[0]]:g}, beyond what a float32 motion value can hold")
    return wide.astype(np.float32)


def _is_int(value: Any, expected: int | None = None) -> bool:
    """A JSON integer (not a bool, a float or a string that looks like one), ``expected`` if given."""
    return type(value) is int and (expected is None or value == expected)


def _shown(value: Any) -> str:
    """A header value as it is written in the stream (``"25"`` with its quotes, ``25.0``), short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _stream_header(line: bytes | str, name: str) -> dict[str, Any]:
    head = _stream_line(line, name, 1)
    if head.get("format") != STREAM_FORMAT:
        raise FormatError(f"{name} is not a motion stream (its first line has no format {STREAM_FORMAT!r})")
    if not _is_int(head.get("version")):
        raise FormatError(f"{name} is a corrupt motion stream: the header's version is "
                          f"{_shown(head.get('version'))}, not an integer")
    if head["version"] != STREAM_VERSION:
        raise FormatError(f"{name} is motion stream version {_shown(head['version'])}; this artalk reads "
                          f"version {STREAM_VERSION} (upgrade artalk)")
    for key, expected in (("fps", FPS), ("channels", MOTION_DIM)):
        value = head.get(key)
        if not _is_int(value):
            raise FormatError(f"{name} is a corrupt motion stream: the header's {key} is {_shown(value)}, "
                              f"not an integer (artalk motion streams have {key} {expected})")
    if head["fps"] != FPS or head["channels"] != MOTION_DIM:
        raise FormatError(f"{name} is a motion stream at {head['fps']} fps with {head['channels']} "
                          f"channels; artalk motion is {FPS} fps, {MOTION_DIM} channels")
    if "delay_frames" in head and not (_is_int(head["delay_frames"]) and head["delay_frames"] >= 0):
        raise FormatError(f"{name} is a corrupt motion stream: the header's delay_frames is "
                          f"{_shown(head['delay_frames'])}, not a count of frames")
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
            if not _is_int(obj.get("t"), count):
                raise FormatError(f"{name} is a corrupt motion stream: line {lineno} holds frame "
                                  f"{_shown(obj.get('t'))}, expected {count}")
            row = obj["motion"]
            if not isinstance(row, list) or len(row) != MOTION_DIM:
                raise FormatError(f"{name} is a corrupt motion stream: frame {count} does not hold "
                                  f"{MOTION_DIM} numbers")
            frame = _frame(row, name, count)
            count += 1
            yield header, frame
        elif obj.get("end") is True:
            if not _is_int(obj.get("frames"), count):
                raise FormatError(f"{name} is a corrupt motion stream: its end line says {_shown(obj.get('frames'))} "
                                  f"frames but it holds {count}")
            header["end"] = obj
            for after, rest in enumerate(it, start=lineno + 1):  # a stream ends at its end line
                if rest.strip():
                    raise FormatError(f"{name} is a corrupt motion stream: line {after} comes after its end "
                                      f"line (line {lineno}); one stream per file")
            return
        elif "error" in obj:
            raise FormatError(f"{name}: the motion stream stopped with an error: {obj['error']}")
        else:
            raise FormatError(f"{name} is a corrupt motion stream: line {lineno} is neither a frame nor the end")
    raise FormatError(f"{name} is an incomplete motion stream ({count} frames, no end line): "
                      "the producer stopped early")


def parse_motion_stream(lines: Iterable[bytes | str], name: str) -> tuple[np.ndarray, dict[str, str]]:
    """A whole motion stream -> (motion [T,106] float32, metadata strings)."""
    header: dict[str, Any] = {}
    frames: list[np.ndarray] = []
    for head, frame in iter_motion_stream(lines, name):
        header = head  # the same dict each time; it gains the end line at the end
        frames.append(frame)
    if not frames:  # header and end line only
        raise FormatError(f"{name}: the motion stream holds no frames")
    end = header.get("end", {})
    meta = dict(header.get("meta", {}))
    meta.update({k: v for k, v in end.items() if isinstance(v, str)})
    return np.stack(frames), meta


__all__ = ["STREAM_FORMAT", "STREAM_VERSION", "MotionStreamWriter", "is_motion_stream", "iter_motion_stream",
           "parse_motion_stream"]
