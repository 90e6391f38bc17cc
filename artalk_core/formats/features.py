"""The audio-features format: wav2vec2 outputs per 64,000-sample chunk, cached between runs.

safetensors with tensor ``features`` float32 [n_chunks, 199, C] (the audio encoder's output for
each 4 s chunk of the zero-padded audio) and string metadata (``schemas/features.schema.json``):
which checkpoint made them, the source audio's hash and length in 16 kHz samples (so the motion
length T = ceil(samples / 16000 * 25) is known without the audio), chunk count, feature size
and the model config as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artalk_core.constants import CHUNK_AUDIO_TOKENS
from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, atomic_output
from artalk_core.formats import (
    Source, describe_kind, first_nonfinite, load_safetensors_bytes, metadata_strings,
    save_safetensors_bytes, sniff_kind, source_bytes, source_name, to_float32_array)
from artalk_core.timing import num_chunks, num_frames

FORMAT_NAME = "artalk.features"
FORMAT_VERSION = "1"
TENSOR_NAME = "features"

_SHA_RE = re.compile(r"^([0-9a-f]{64})?$")
_UINT_RE = re.compile(r"^(0|[1-9][0-9]*)$")


@dataclass
class Features:
    """Audio features read from (or to be written to) a features file.

    ``data``: float32 [n_chunks, 199, C] (numpy, or a torch tensor when built in memory);
    ``meta``: string metadata.
    """

    data: Any
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def chunks(self) -> int:
        return int(self.data.shape[0])

    @property
    def feature_dim(self) -> int:
        """C, the audio encoder's output size."""
        return int(self.data.shape[2])

    @property
    def audio_samples(self) -> int:
        """Length of the source audio in 16 kHz samples."""
        return int(self.meta["audio_samples"])

    @property
    def frames(self) -> int:
        """Motion frames of the source audio: ceil(samples / 16000 * 25)."""
        return num_frames(self.audio_samples)

    @property
    def checkpoint_sha256(self) -> str:
        return self.meta.get("checkpoint_sha256", "")

    @property
    def audio_sha256(self) -> str:
        return self.meta.get("audio_sha256", "")

    @property
    def model_config(self) -> dict[str, Any]:
        """The model config the features were made with ({} when not recorded)."""
        try:
            value = json.loads(self.meta.get("model_config", "") or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def to_torch(self) -> Any:
        """``data`` as a float32 torch tensor [n_chunks, 199, C]."""
        import torch

        if isinstance(self.data, torch.Tensor):
            return self.data
        return torch.from_numpy(np.ascontiguousarray(self.data, dtype=np.float32))


def _check_array(arr: np.ndarray, name: str, err: type[InputError]) -> None:
    if arr.ndim != 3 or arr.shape[1] != CHUNK_AUDIO_TOKENS or arr.shape[2] == 0:
        raise err(f"{name}: features have shape {list(arr.shape)}, expected "
                  f"[chunks, {CHUNK_AUDIO_TOKENS}, C]")
    if arr.shape[0] == 0:
        raise err(f"{name}: features are empty (0 chunks)")
    bad = first_nonfinite(arr)
    if bad is not None:
        raise err(f"{name}: features have a non-finite value ({arr[bad]}) at chunk {bad[0]}, "
                  f"token {bad[1]}, channel {bad[2]}")


def _check_samples(samples: str | None, n_chunks: int, name: str, err: type[InputError]) -> int:
    if samples is None or not _UINT_RE.match(samples) or int(samples) == 0:
        raise err(f"{name}: features metadata 'audio_samples' must be a positive whole number, "
                  f"got {samples!r}")
    expected = num_chunks(num_frames(int(samples)))
    if expected != n_chunks:
        raise err(f"{name}: features hold {n_chunks} chunks but {samples} audio samples need "
                  f"{expected}")
    return int(samples)


def features_bytes(data: Any, meta: Mapping[str, Any]) -> bytes:
    """The bytes of an artalk features file (what :func:`write_features` writes)."""
    name = "features to write"
    arr = to_float32_array(data, what="features")
    _check_array(arr, name, InputError)
    out = metadata_strings(meta)
    samples = _check_samples(out.get("audio_samples"), arr.shape[0], name, InputError)
    if "checkpoint_sha256" not in out:
        raise InputError("features metadata needs 'checkpoint_sha256' (the checkpoint that made them)")
    for key, value in out.items():
        if key.endswith("_sha256") and not _SHA_RE.match(value):
            raise InputError(f"features metadata {key!r} must be a lowercase sha256 hex digest or empty")
    if "model_config" in out:
        try:
            json.loads(out["model_config"])
        except json.JSONDecodeError as e:
            raise InputError("features metadata 'model_config' must be JSON") from e
    out.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, audio_samples=str(samples),
               frames=str(num_frames(samples)), chunks=str(arr.shape[0]),
               feature_dim=str(arr.shape[2]))
    return save_safetensors_bytes({TENSOR_NAME: arr}, out)


def write_features(path: PathLike, data: Any, meta: Mapping[str, Any]) -> None:
    """Write features float32 [n_chunks, 199, C] (numpy or torch) atomically (``-`` = stdout).

    ``meta`` must hold ``audio_samples`` (16 kHz samples of the source audio; its chunk count
    must equal n_chunks) and ``checkpoint_sha256``; a dict ``model_config`` is stored as JSON.
    format, format_version, frames, chunks and feature_dim are filled in here. Invalid data
    raises InputError before anything is written.
    """
    blob = features_bytes(data, meta)
    with atomic_output(path) as tmp:
        tmp.write_bytes(blob)


def read_features(source: Source) -> Features:
    """Read a features file from a path, ``-`` (stdin) or bytes; data is float32 numpy.

    Raises FormatError for other files (naming what they are), truncated files, a newer format
    version, bad shapes, NaN/Inf, or metadata inconsistent with the tensor.
    """
    name = source_name(source)
    data = source_bytes(source)
    if not data:
        raise FormatError(f"{name} is empty (0 bytes); expected an artalk features file")
    kind = sniff_kind(data)
    if kind == "motion":
        raise FormatError(f"{name} is an artalk motion file, not audio features; use read_motion "
                          "(features come from `artalk encode-audio`)")
    if kind != "features":
        what = "a truncated or non-artalk safetensors file" if kind == "safetensors" else describe_kind(kind)
        raise FormatError(f"{name} is {what}, not an artalk features file "
                          "(make one with `artalk encode-audio`)")
    tensors, meta = load_safetensors_bytes(data, name)
    version = meta.get("format_version", "")
    if version != FORMAT_VERSION:
        raise FormatError(f"{name} is artalk features format version {version or '?'}; this artalk "
                          f"reads version {FORMAT_VERSION} (upgrade artalk or rerun encode-audio)")
    if TENSOR_NAME not in tensors:
        raise FormatError(f"{name} is corrupt: artalk features file without a '{TENSOR_NAME}' tensor")
    arr = np.ascontiguousarray(tensors[TENSOR_NAME], dtype=np.float32)
    _check_array(arr, name, FormatError)
    _check_samples(meta.get("audio_samples"), arr.shape[0], name, FormatError)
    return Features(arr, dict(meta))


def check_features_match(features: Features, *, checkpoint_sha256: str, audio_dim: int) -> None:
    """Raise InputError unless ``features`` were made by this checkpoint and fit the model.

    ``checkpoint_sha256``: hash of the checkpoint about to be used ("" skips that check);
    ``audio_dim``: the model's audio feature size C.
    """
    have = features.checkpoint_sha256
    if checkpoint_sha256:
        if not have:
            raise InputError("features do not say which checkpoint made them (rerun encode-audio)")
        if have != checkpoint_sha256:
            raise InputError(f"features were made by checkpoint {have[:12]}, not by "
                             f"{checkpoint_sha256[:12]} (rerun encode-audio)")
    if features.feature_dim != audio_dim:
        raise InputError(f"features have {features.feature_dim} channels but the model expects "
                         f"{audio_dim} (rerun encode-audio with this checkpoint)")


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Features", "check_features_match", "features_bytes",
           "read_features", "write_features"]
