"""RIFF/WAVE: the one place WAV files are parsed and written.

Users of it: the decoder (a WAV whose data chunk is cut short), ``artalk generate --stream``
(headers read progressively from a pipe, samples converted as FFmpeg converts them), the metadata
of the WAVs we write (:func:`read_wav_metadata`) and :func:`write_wav` itself. Decoding a whole
WAV file goes through FFmpeg like every other format (see :mod:`artalk_core.audio.decode`).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.audio.pcm import SAMPLE_BYTES
from artalk_core.audio.resample import to_mono
from artalk_core.constants import SAMPLE_RATE
from artalk_core.errors import AudioError, FormatError, InputError
from artalk_core.fileio import PathLike, atomic_output, parse_json

WAVE_PCM, WAVE_FLOAT, WAVE_EXTENSIBLE = 1, 3, 0xFFFE
_SAMPLE_FORMATS: dict[tuple[int, int], str] = {
    (WAVE_PCM, 8): "u8", (WAVE_PCM, 16): "s16", (WAVE_PCM, 24): "s24", (WAVE_PCM, 32): "s32",
    (WAVE_FLOAT, 32): "f32", (WAVE_FLOAT, 64): "f64"}
_STREAMED_SIZE = 0xFFFFFF00  # data sizes from here up (and 0) mean "until the end": a writer to a pipe


def is_riff_wave(head: bytes) -> bool:
    """Whether ``head`` (the first 12 bytes or more) starts a RIFF/WAVE file."""
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def _data_size(size: int) -> int | None:
    """The data chunk's size, None when it means "until the end of input"."""
    return None if size == 0 or size >= _STREAMED_SIZE else size


def iter_chunks(data: bytes | memoryview, start: int = 12) -> Iterator[tuple[bytes, int, int]]:
    """(chunk id, body offset, declared body size) of each chunk header in ``data`` from ``start``
    (after ``RIFF<size>WAVE``). Bodies are padded to even sizes; a body may run past ``data``."""
    pos = start
    while pos + 8 <= len(data):
        cid, size = bytes(data[pos:pos + 4]), struct.unpack("<I", data[pos + 4:pos + 8])[0]
        yield cid, pos + 8, size
        pos += 8 + size + (size % 2)


# ----------------------------------------------------------------------------------------------
# Headers read progressively


@dataclass
class WavFormat:
    """What a WAV header says about its samples (``fmt `` chunk plus the data chunk's size)."""

    format_tag: int  # WAVE_PCM or WAVE_FLOAT (the sub-format of WAVE_EXTENSIBLE)
    channels: int
    rate: int
    bits: int
    data_bytes: int | None  # None: until the end of input

    @property
    def sample_format(self) -> str | None:
        """u8 | s16 | s24 | s32 | f32 | f64, or None for a sample format we do not convert."""
        return _SAMPLE_FORMATS.get((self.format_tag, self.bits))


def read_wav_header(read_exact: Callable[[int, str], bytes], name: str, *, expected: str) -> WavFormat:
    """Parse a WAV header from a forward-only reader, stopping at the start of the sample data.

    ``read_exact(n, what)`` returns exactly ``n`` bytes or raises (``what`` names the part, for
    its message). ``expected`` ends the message for input that is not RIFF/WAVE. Raises
    :class:`AudioError` for a corrupt header; the caller checks the format it can use.
    """
    head = read_exact(12, "RIFF header")
    if not is_riff_wave(head):
        what = "RF64 (a WAV over 4 GB)" if head[:4] == b"RF64" else f"data starting {head[:4]!r}"
        raise AudioError(f"{name} is not a WAV stream ({what}); {expected}")
    fmt: tuple[int, int, int, int] | None = None
    while True:
        cid, size = struct.unpack("<4sI", read_exact(8, "chunk header"))
        if cid == b"data":
            break
        if cid == b"fmt ":
            if size < 16:
                raise AudioError(f"{name}: corrupt WAV header (fmt chunk of {size} bytes)")
            body = read_exact(size + size % 2, "fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == WAVE_EXTENSIBLE and size >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        else:
            if size > 1 << 24:
                raise AudioError(f"{name}: corrupt WAV header (a {cid!r} chunk of {size} bytes "
                                 "before the audio data)")
            read_exact(size + size % 2, f"{cid.decode('latin-1')!r} chunk")
    if fmt is None:
        raise AudioError(f"{name}: corrupt WAV header (the data chunk comes before the fmt chunk)")
    tag, channels, rate, bits = fmt
    return WavFormat(tag, channels, rate, bits, _data_size(size))


def pcm_to_float(raw: bytes, sample_format: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes -> float32 mono [n], with FFmpeg's conversion (int16 / 32768 ...) and
    the decoder's channel mean (:func:`artalk_core.audio.resample.to_mono`)."""
    from artalk_core.audio.pcm import pcm_to_channels

    x = pcm_to_channels(raw, sample_format, channels)
    return to_mono(x) if channels > 1 else x[0].copy()


# ----------------------------------------------------------------------------------------------
# Whole files


def wav_missing_bytes(src: str | Path | io.BytesIO) -> int:
    """Bytes a RIFF/WAVE file's data chunk declares beyond the end of the file (0 if complete).

    FFmpeg clamps a WAV's duration to the file size, so a cut WAV decodes without complaint; the
    header still says how long it should be. Streamed WAVs (size 0 or 0xFFFFFFFF) are not checked.
    """
    if isinstance(src, io.BytesIO):
        data = src.getbuffer()
        head, total = bytes(data[:1 << 16]), len(data)
    else:
        with open(src, "rb") as f:
            head = f.read(1 << 16)
            total = f.seek(0, io.SEEK_END)
    if not is_riff_wave(head):
        return 0
    for cid, body, size in iter_chunks(head):
        if cid == b"data":
            declared = _data_size(size)
            return 0 if declared is None else max(0, body + declared - total)
    return 0


def _info_chunk(metadata: Mapping[str, Any]) -> bytes:
    """A RIFF LIST/INFO chunk: ISFT = creator, ICRD = date, ICMT = all metadata as JSON."""
    meta = {str(k): str(v) for k, v in metadata.items()}
    fields: list[tuple[bytes, str]] = []
    if "created_by" in meta or "artalk_version" in meta:
        fields.append((b"ISFT", f"{meta.get('created_by', 'artalk')} (artalk {meta.get('artalk_version', '')})".strip()))
    if "created_at" in meta:
        fields.append((b"ICRD", meta["created_at"]))
    fields.append((b"ICMT", json.dumps(meta, sort_keys=True)))
    body = b"INFO"
    for tag, text in fields:
        data = text.encode("utf-8") + b"\0"
        body += tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    return b"LIST" + struct.pack("<I", len(body)) + body


def pcm16_header(n_samples: int, sample_rate: int = SAMPLE_RATE, *, extra: bytes = b"") -> bytes:
    """The bytes before the samples of a mono PCM16 WAV of ``n_samples`` samples: RIFF header, fmt
    chunk, ``extra`` (whole chunks, e.g. LIST/INFO), data chunk header. (The data chunk's pad byte,
    for an odd size, is the writer's to add; it never occurs for PCM16.)"""
    rate = int(sample_rate)
    data_bytes = 2 * int(n_samples)
    fmt = struct.pack("<HHIIHH", WAVE_PCM, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    riff = 4 + len(chunks) + 8 + data_bytes
    if riff > 0xFFFFFFFF:
        raise InputError("audio too long for a WAV file (over 4 GB)")
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_bytes)


def write_wav(path: PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
              metadata: Mapping[str, Any] | None = None) -> None:
    """Write float samples [S] (nominally in [-1, 1]) as a mono PCM16 WAV, atomically (``-`` = stdout).

    Values are clipped to [-1, 1] and scaled by 32768 (so audio read as int16 / 32768 round-trips
    bit-exactly). ``metadata`` (e.g. :func:`artalk_core.fileio.provenance`) goes in a standard
    LIST/INFO chunk: creator in ISFT, date in ICRD, everything as JSON in ICMT (FFmpeg shows it as
    the ``comment`` tag; :func:`read_wav_metadata` returns it). Raises :class:`InputError` for a
    non-1-D or non-finite array.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise InputError(f"write_wav wants mono samples [S], got shape {tuple(x.shape)}")
    if isinstance(sample_rate, bool) or int(sample_rate) <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError("cannot write WAV: the samples contain NaN or infinite values")
    pcm = np.clip(np.round(np.clip(x, -1.0, 1.0) * 32768.0), -32768, 32767).astype("<i2").tobytes()
    head = pcm16_header(x.shape[0], int(sample_rate), extra=_info_chunk(metadata) if metadata else b"")
    with atomic_output(path, suffix=".wav") as tmp:
        with open(tmp, "wb") as f:
            f.write(head + pcm)


def read_wav_metadata(path: PathLike) -> dict[str, str]:
    """The metadata :func:`write_wav` stored in a WAV's ICMT field ({} when there is none)."""
    data = Path(path).read_bytes()
    if not is_riff_wave(data):
        raise AudioError(f"{path} is not a WAV file")
    for cid, at, size in iter_chunks(data):
        body = data[at:at + size]
        if cid == b"LIST" and body[:4] == b"INFO":
            for tag, q, n in iter_chunks(body, 4):
                if tag == b"ICMT":
                    try:  # a stranger's WAV: deep nesting and huge numbers are refused, not obeyed
                        meta = parse_json(body[q:q + n].rstrip(b"\0"), f"{path}: its ICMT comment")
                    except FormatError:
                        return {}
                    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
    return {}


__all__ = ["SAMPLE_BYTES", "WAVE_EXTENSIBLE", "WAVE_FLOAT", "WAVE_PCM", "WavFormat", "is_riff_wave", "iter_chunks",
           "pcm16_header", "pcm_to_float", "read_wav_header", "read_wav_metadata", "wav_missing_bytes", "write_wav"]
