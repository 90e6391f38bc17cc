"""File formats of artalk: one module per format with its read/write pair, and what they share.

- :mod:`.sniff`: what a file is from its content (:func:`sniff_kind`), reading a path, ``-`` or bytes;
- :mod:`.arrays`: float32 conversion, the motion array check, metadata as strings;
- :mod:`.tensorfile`: the safetensors writer and block reader; :mod:`.motion`, :mod:`.motion_stream`
  (NDJSON), :mod:`.features`, :mod:`.vertices` (HDF5), :mod:`.gltf`.

Each format's metadata has a JSON Schema in ``artalk_core/schemas/`` (:func:`artalk_core.schemas.load`).
"""

from __future__ import annotations

from artalk_core.formats.arrays import (
    channel_name,
    check_motion_array,
    first_nonfinite,
    metadata_strings,
    to_float32_array,
)
from artalk_core.formats.sniff import (
    AUDIO_LIKE_KINDS,
    KINDS,
    SAFETENSORS_FORMATS,
    Source,
    describe_kind,
    is_motion_stream,
    safetensors_header,
    sniff_kind,
    source_bytes,
    source_name,
)

__all__ = ["AUDIO_LIKE_KINDS", "KINDS", "SAFETENSORS_FORMATS", "Source", "channel_name", "check_motion_array",
           "describe_kind", "first_nonfinite", "is_motion_stream", "metadata_strings", "safetensors_header",
           "sniff_kind", "source_bytes", "source_name", "to_float32_array"]
