"""File formats of artalk: motion, audio features, and recognising any input by its content.

Each format is one module with a read/write pair (``motion``, ``features``) and a JSON Schema of
its metadata in ``artalk_core/schemas/<name>.schema.json`` (:func:`artalk_core.schemas.load`). This package module holds what they share:

- :func:`sniff_kind` tells what a file is from its first bytes (magic numbers), so ``-`` (stdin,
  which has no name) is recognised as well as a path;
- :func:`source_bytes` / :func:`source_name` read a path, ``-`` or raw bytes;
- :func:`to_float32_array` turns a numpy array or torch tensor into a float32 numpy array.

The read/write functions are re-exported lazily (``from artalk_core.formats import read_motion``)
so importing this package stays cheap.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import GLOBAL_ROT_SLICE, JAW_SLICE, MOTION_DIM
from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, is_stdio, parse_json, read_input_bytes

if TYPE_CHECKING:  # pragma: no cover
    from artalk_core.formats.describe import describe_file, format_description
    from artalk_core.formats.features import Features, check_features_match, read_features, write_features
    from artalk_core.formats.motion import Motion, read_motion, read_style, write_motion, write_reference_motion

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
    from artalk_core.formats.gltf import is_glb, is_gltf_json

    if is_glb(head) or is_gltf_json(head):
        return "gltf"
    media = _media_kind(head)
    return media if media is not None else "unknown"


def to_float32_array(data: Any, *, what: str = "tensor") -> np.ndarray:
    """A C-contiguous float32 numpy copy of a numpy array, torch tensor or nested list.

    Raises InputError for non-numeric data (strings, objects, complex numbers).
    """
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # torch.Tensor, without importing torch
        data = data.detach().cpu()
        if not (data.dtype.is_floating_point or str(data.dtype).startswith(("torch.int", "torch.uint"))):
            raise InputError(f"{what} has dtype {data.dtype}; expected a real-valued tensor")
        import torch

        data = data.to(torch.float32).numpy()
    arr = np.asarray(data)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{what} has dtype {arr.dtype}; expected real numbers")
    return np.ascontiguousarray(arr, dtype=np.float32)


def first_nonfinite(arr: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/Inf in ``arr`` (row-major), or None when all values are finite."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def channel_name(channel: int) -> str:
    """Readable name of motion channel ``channel``: ``expression[7]``, ``global_rotation[1]``, ``jaw_rotation[0]``."""
    if channel < GLOBAL_ROT_SLICE.start:
        return f"expression[{channel}]"
    if channel < JAW_SLICE.start:
        return f"global_rotation[{channel - GLOBAL_ROT_SLICE.start}]"
    return f"jaw_rotation[{channel - JAW_SLICE.start}]"


def check_motion_array(arr: np.ndarray, name: str, *, err: type[InputError] = FormatError,
                       what: str = "motion", first_frame: int = 0) -> np.ndarray:
    """Validate a [T, 106] array: 2-D (a leading batch axis of 1 is dropped), 106 channels,
    T >= 1, all finite. Returns the (possibly squeezed) float32 array; raises ``err``.
    ``first_frame``: the frame number of ``arr[0]`` in messages (for a block of a longer motion)."""
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
        raise err(f"{name}: {what} has a non-finite value ({value}) at frame {first_frame + bad[0]}, "
                  f"channel {bad[1]} ({channel_name(bad[1])})")
    return np.ascontiguousarray(arr, dtype=np.float32)


def metadata_strings(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """Metadata as safetensors stores it (str -> str): bools become ``true``/``false``, numbers
    their decimal text, None ``""``, dicts/lists compact JSON."""
    out: dict[str, str] = {}
    for key, value in (meta or {}).items():
        if not isinstance(key, str):
            raise InputError(f"metadata key {key!r} is not a string")
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif value is None:
            out[key] = ""
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out[key] = str(value)
        elif isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        else:
            raise InputError(f"metadata value of {key!r} has type {type(value).__name__}; expected text")
    return out


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


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of format ``name`` as a dict (see :func:`artalk_core.schemas.load`)."""
    from artalk_core import schemas

    return schemas.load(name)


_LAZY = {
    "Motion": "motion", "read_motion": "motion", "write_motion": "motion", "read_style": "motion",
    "write_reference_motion": "motion",
    "Features": "features", "read_features": "features", "write_features": "features",
    "check_features_match": "features",
    "describe_file": "describe", "format_description": "describe",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = ["KINDS", "AUDIO_LIKE_KINDS", "Source", "sniff_kind", "source_bytes", "source_name",
           "safetensors_header", "metadata_strings", "channel_name", "check_motion_array", "is_motion_stream",
           "to_float32_array", "first_nonfinite",
           "load_schema", "describe_kind",
           # the lazily imported names of _LAZY, spelled out so linters see them
           "Motion", "read_motion", "write_motion", "read_style", "write_reference_motion",
           "Features", "read_features", "write_features", "check_features_match",
           "describe_file", "format_description"]
