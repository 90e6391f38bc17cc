"""What a file is, from its content: :func:`sniff_kind` looks at the first bytes (magic numbers), so
``-`` (stdin, which has no name) is recognised as well as a path; :func:`source_bytes` /
:func:`source_name` read and name a path, ``-`` or raw bytes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, is_stdio, parse_json, read_input_bytes
from artalk_core.formats.gltf import is_glb, is_gltf_json

Source = PathLike | bytes | bytearray | memoryview
"""Where a file comes from: a path, ``-`` for stdin, or its bytes."""

KINDS: tuple[str, ...] = ("motion", "features", "motion-stream", "safetensors", "vertices", "reference-pt",
                          "gltf", "audio", "video", "unknown")
"""Values :func:`sniff_kind` returns.

``motion`` / ``features``: artalk safetensors files; ``motion-stream``: the NDJSON stream of
``generate --stream``; ``safetensors``: any other safetensors file
(weights, test vectors); ``vertices``: an HDF5 file; ``reference-pt``: a ``torch.save`` file (the
reference tool's motion / style / checkpoint format); ``audio``: a container that normally holds
only audio (WAV, FLAC, MP3, Ogg, AIFF, M4A, ADTS AAC...); ``gltf``: a glTF 2.0 file (``.glb`` or
``.gltf`` JSON, what ``artalk export`` writes); ``video``: a container that usually holds
video (MP4/MOV, Matroska/WebM, AVI, FLV, MPEG-TS) -- its audio track can still be decoded;
``unknown``: none of these (PyAV may still be able to decode it).
"""

AUDIO_LIKE_KINDS: frozenset[str] = frozenset({"audio", "video", "unknown"})
"""Kinds worth handing to the audio decoder (``generate`` treats them as speech input)."""

SAFETENSORS_FORMATS: dict[str, str] = {"artalk.motion": "motion", "artalk.features": "features"}
"""``format`` metadata value -> kind."""

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # pickle protocol 2 + the 10-byte long torch writes first
_SNIFF_BYTES = 1 << 16
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def source_name(source: Source) -> str:
    """How messages name a source: its path, ``<stdin>`` or ``<bytes>``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if is_stdio(source):
        return "<stdin>"
    return str(source)


def source_bytes(source: Source) -> bytes:
    """All bytes of a path, of stdin (``-``), or the bytes themselves."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return read_input_bytes(source)


def _head(source: Source, n: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:n])
    if is_stdio(source):
        raise InputError("cannot look at stdin without consuming it: read it with source_bytes('-') first")
    p = Path(source)
    if not p.exists():
        raise InputError(f"input file not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a file: {p}")
    with open(p, "rb") as f:
        return f.read(n)


def safetensors_header(source: Source) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (tensor entries plus ``__metadata__``), or None.

    None when the bytes do not start like safetensors or the header is cut short / not JSON.
    Only the header is read from a path, so this is cheap on multi-GB files.
    """
    head = _head(source, 9)
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if n < 2 or n > _MAX_SAFETENSORS_HEADER:
        return None
    raw = _head(source, 8 + n)[8:]
    if len(raw) < n:
        return None
    try:
        header = parse_json(raw, "a safetensors header")
    except FormatError:
        return None
    return header if isinstance(header, dict) else None


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= _MAX_SAFETENSORS_HEADER


def _is_torch_zip(head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return False
    (name_len,) = struct.unpack("<H", head[26:28])
    first = head[30:30 + name_len]
    # torch.save writes "<archive>/data.pkl" first; older writers may put other records before it.
    return first.endswith(b"data.pkl") or b"/data.pkl" in head[:4096]


def _media_kind(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head[:4] in (b"fLaC", b"OggS", b"caff", b"wvpk") or head[:5] == b"#!AMR" or head[:3] == b"ID3":
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "audio"  # MPEG audio frame sync (MP3) or ADTS AAC
    if head[4:8] == b"ftyp":
        return "audio" if head[8:12] in (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ") else "video"
    if head[:4] == b"\x1a\x45\xdf\xa3" or head[:3] == b"FLV":
        return "video"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "video"  # MPEG transport stream
    return None


def _has_hdf5_magic(source: Source, head: bytes) -> bool:
    if head.startswith(_HDF5_MAGIC):
        return True
    # A user block shifts the superblock to 512, 1024, 2048 ... bytes.
    for offset in (512, 1024, 2048, 4096, 8192, 16384, 32768):
        if head[offset:offset + 8] == _HDF5_MAGIC:
            return True
    return False


def is_motion_stream(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts a motion stream's header line: a JSON
    object naming the format ``artalk.motion-stream``."""
    first = bytes(head[:4096]).split(b"\n", 1)[0]
    return first.lstrip().startswith(b"{") and b'"artalk.motion-stream"' in first


def sniff_kind(source: Source) -> str:
    """What a file is, from its content (one of :data:`KINDS`).

    ``source`` is a path or the file's bytes (for stdin, read it first with ``source_bytes('-')``
    and pass the bytes). Only the first 64 KiB (plus a safetensors header) are looked at.
    """
    head = _head(source, _SNIFF_BYTES)
    if _looks_like_safetensors(head):
        header = safetensors_header(source)
        if header is not None:
            meta = header.get("__metadata__") or {}
            fmt = meta.get("format") if isinstance(meta, dict) else None
            return SAFETENSORS_FORMATS.get(fmt, "safetensors") if isinstance(fmt, str) else "safetensors"
        return "safetensors"  # header cut short: readers will report it as truncated
    if _has_hdf5_magic(source, head):
        return "vertices"
    if _is_torch_zip(head) or head.startswith(_TORCH_LEGACY_MAGIC):
        return "reference-pt"
    if is_motion_stream(head):
        return "motion-stream"
    if is_glb(head) or is_gltf_json(head):
        return "gltf"
    media = _media_kind(head)
    return media if media is not None else "unknown"


_KIND_PHRASES = {
    "motion": "an artalk motion file",
    "features": "an artalk audio-features file (made by `artalk encode-audio`)",
    "safetensors": "a safetensors file that is not an artalk file",
    "vertices": "an HDF5 (vertices) file",
    "reference-pt": "a torch .pt file",
    "gltf": "a glTF 2.0 file (made by `artalk export`)",
    "audio": "an audio file",
    "video": "a video file",
    "unknown": "not a file type artalk knows",
}


def describe_kind(kind: str) -> str:
    """A phrase for messages: ``"an artalk motion file"``, ``"an audio file"`` ..."""
    return _KIND_PHRASES.get(kind, kind)


__all__ = ["AUDIO_LIKE_KINDS", "KINDS", "SAFETENSORS_FORMATS", "Source", "describe_kind", "is_motion_stream",
           "safetensors_header", "sniff_kind", "source_bytes", "source_name"]
