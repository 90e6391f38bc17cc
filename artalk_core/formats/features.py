"""The audio-features format: the audio encoder's outputs per 64,000-sample chunk, cached between runs.

safetensors with tensor ``features`` float32 [n_chunks, F, C] (the audio encoder's output for
each 4 s chunk of the zero-padded audio: F x C = 199 x 1024 for wav2vec2, 50 x 512 for Mimi) and
string metadata (``artalk_core/schemas/features.schema.json``): which audio encoder and checkpoint
made them, the source audio's hash and length in 16 kHz samples (so the motion length
T = ceil(samples / 16000 * 25) is known without the audio), chunk count, feature size and the model
config as JSON. A file without ``audio_encoder`` (written before Mimi was supported) is wav2vec2's.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import AUDIO_ENCODERS, CHUNK_AUDIO_TOKENS
from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, atomic_output, input_file, parse_json
from artalk_core.formats import (
    Source,
    describe_kind,
    first_nonfinite,
    metadata_strings,
    sniff_kind,
    source_name,
    to_float32_array,
)
from artalk_core.formats.tensorfile import TensorFileReader, TensorFileWriter, tensor_file_bytes
from artalk_core.timing import num_chunks, num_frames

FORMAT_NAME = "artalk.features"
FORMAT_VERSION = "1"
TENSOR_NAME = "features"

_SHA_RE = re.compile(r"^([0-9a-f]{64})?$")
_UINT_RE = re.compile(r"^(0|[1-9][0-9]*)$")


class _FeaturesMeta:
    """What a features file's metadata says (shared by :class:`Features` and :class:`FeaturesReader`)."""

    meta: dict[str, str]

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
    def audio_encoder(self) -> str:
        """The audio encoder that made the features (``wav2vec`` for files that do not say)."""
        return self.meta.get("audio_encoder") or AUDIO_ENCODERS[0]

    @property
    def model_config(self) -> dict[str, Any]:
        """The model config the features were made with ({} when not recorded)."""
        try:
            value = parse_json(self.meta.get("model_config", "") or "{}", "features metadata")
        except FormatError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class Features(_FeaturesMeta):
    """Audio features read from (or to be written to) a features file.

    ``data``: float32 [n_chunks, F, C] (numpy, or a torch tensor when built in memory);
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
    def tokens(self) -> int:
        """F, the audio encoder's frames per chunk."""
        return int(self.data.shape[1])

    def to_torch(self) -> Any:
        """``data`` as a float32 torch tensor [n_chunks, F, C]."""
        import torch

        if isinstance(self.data, torch.Tensor):
            return self.data
        return torch.from_numpy(np.ascontiguousarray(self.data, dtype=np.float32))


def _check_shape(shape: tuple[int, ...], name: str, err: type[InputError]) -> None:
    if len(shape) != 3 or shape[1] == 0 or shape[2] == 0:
        raise err(f"{name}: features have shape {list(shape)}, expected [chunks, F, C] "
                  f"(F = {CHUNK_AUDIO_TOKENS} for wav2vec2, 50 for Mimi)")


def _check_array(arr: np.ndarray, name: str, err: type[InputError]) -> None:
    _check_shape(arr.shape, name, err)
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


def _check_encoder(value: str | None, tokens: int, name: str, err: type[InputError]) -> None:
    """``audio_encoder`` (None: not recorded, wav2vec2's) must be known; wav2vec2 features have 199 frames."""
    if value is not None and value not in AUDIO_ENCODERS:
        raise err(f"{name}: features metadata 'audio_encoder' must be {' or '.join(AUDIO_ENCODERS)}, got {value!r}")
    if (value or AUDIO_ENCODERS[0]) == "wav2vec" and tokens != CHUNK_AUDIO_TOKENS:
        raise err(f"{name}: wav2vec2 features have {CHUNK_AUDIO_TOKENS} frames per chunk, these have {tokens}"
                  + ("" if value else " (and no 'audio_encoder' in their metadata)"))


def _features_meta(meta: Mapping[str, Any], n_chunks: int, tokens: int, feature_dim: int) -> dict[str, str]:
    """Checked metadata strings for ``n_chunks`` x ``tokens`` x ``feature_dim`` features (InputError)."""
    name = "features to write"
    out = metadata_strings(meta)
    samples = _check_samples(out.get("audio_samples"), n_chunks, name, InputError)
    if "checkpoint_sha256" not in out:
        raise InputError("features metadata needs 'checkpoint_sha256' (the checkpoint that made them)")
    _check_encoder(out.get("audio_encoder"), tokens, name, InputError)
    for key, value in out.items():
        if key.endswith("_sha256") and not _SHA_RE.match(value):
            raise InputError(f"features metadata {key!r} must be a lowercase sha256 hex digest or empty")
    if "model_config" in out:
        parse_json(out["model_config"], "features metadata 'model_config' must be JSON", error=InputError)
    out.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, audio_samples=str(samples),
               frames=str(num_frames(samples)), chunks=str(n_chunks), feature_dim=str(feature_dim))
    return out


def features_bytes(data: Any, meta: Mapping[str, Any]) -> bytes:
    """The bytes of an artalk features file (what :func:`write_features` writes)."""
    arr = to_float32_array(data, what="features")
    _check_array(arr, "features to write", InputError)
    return tensor_file_bytes(TENSOR_NAME, arr, _features_meta(meta, arr.shape[0], arr.shape[1], arr.shape[2]))


class FeaturesWriter:
    """Writes a features file progressively, a group of chunks [G,F,C] at a time (F = ``tokens``, 199
    for wav2vec2, 50 for Mimi); the same bytes as :func:`write_features` of the whole. Use as a
    context manager; :meth:`finish` writes it."""

    def __init__(self, path: PathLike, feature_dim: int, tokens: int = CHUNK_AUDIO_TOKENS) -> None:
        self._w = TensorFileWriter(path, TENSOR_NAME, (int(tokens), int(feature_dim)))
        self.feature_dim = int(feature_dim)
        self.tokens = int(tokens)

    @property
    def chunks(self) -> int:
        return self._w.rows

    def write(self, group: Any) -> None:
        """Append features float32 [G,F,C] (G may be 0)."""
        arr = to_float32_array(group, what="features")
        if arr.size == 0:
            return
        _check_array(arr, "features to write", InputError)
        self._w.write(arr)

    def finish(self, meta: Mapping[str, Any]) -> dict[str, str]:
        """Check ``meta`` (as :func:`write_features` does), write the file; returns the metadata written."""
        if self.chunks == 0:
            self._w.abort()
            raise InputError("features to write: features are empty (0 chunks)")
        out = _features_meta(meta, self.chunks, self.tokens, self.feature_dim)
        self._w.finish(out)
        return out

    def map_rows(self) -> np.ndarray:
        """The features written, float32 [chunks,F,C], memory-mapped (copy-on-write), not held."""
        return self._w.map_rows()

    def abort(self) -> None:
        self._w.abort()

    def __enter__(self) -> FeaturesWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._w.__exit__(exc_type, exc, tb)


def write_features(path: PathLike, data: Any, meta: Mapping[str, Any]) -> None:
    """Write features float32 [n_chunks, F, C] (numpy or torch) atomically (``-`` = stdout).

    ``meta`` must hold ``audio_samples`` (16 kHz samples of the source audio; its chunk count
    must equal n_chunks) and ``checkpoint_sha256``, and should name the ``audio_encoder`` (wav2vec
    or mimi; without it the features are taken as wav2vec2's); a dict ``model_config`` is stored as JSON.
    format, format_version, frames, chunks and feature_dim are filled in here. Invalid data
    raises InputError before anything is written.
    """
    blob = features_bytes(data, meta)
    with atomic_output(path) as tmp:
        tmp.write_bytes(blob)


def _check_kind(kind: str, name: str) -> None:
    if kind == "motion":
        raise FormatError(f"{name} is an artalk motion file, not audio features; use read_motion "
                          "(features come from `artalk encode-audio`)")
    if kind != "features":
        what = "a truncated or non-artalk safetensors file" if kind == "safetensors" else describe_kind(kind)
        raise FormatError(f"{name} is {what}, not an artalk features file "
                          "(make one with `artalk encode-audio`)")


def _check_version(meta: Mapping[str, str], name: str) -> None:
    version = meta.get("format_version", "")
    if version != FORMAT_VERSION:
        raise FormatError(f"{name} is artalk features format version {version or '?'}; this artalk "
                          f"reads version {FORMAT_VERSION} (upgrade artalk or rerun encode-audio)")


class FeaturesReader(_FeaturesMeta):
    """A features file opened for reading a group of chunks at a time (``chunks``, ``feature_dim``,
    ``frames``, ``meta`` at once), read from disk group by group after a check of the header and
    of every value on opening. ``source``: a path, ``-`` (stdin, spooled to a temp file) or bytes;
    ``label`` names it in messages (default: its path, ``<stdin>`` or ``<bytes>``). Use as a
    context manager (or :meth:`close`).

    Raises FormatError for other files (naming what they are), truncated files, a newer format
    version, bad shapes, NaN/Inf, or metadata inconsistent with the tensor.
    """

    def __init__(self, source: Source, *, block: int = 16, label: str | None = None) -> None:
        self._stack = contextlib.ExitStack()
        try:
            path, _, src_label = self._stack.enter_context(input_file(source))
            self.name = label or src_label
            self._file = self._open(path, max(1, int(block)))
        except BaseException:
            self._stack.close()
            raise

    def _open(self, path: Path, block: int) -> TensorFileReader:
        name = self.name
        kind = sniff_kind(path)  # InputError for a missing file or a folder
        if path.stat().st_size == 0:
            raise FormatError(f"{name} is empty (0 bytes); expected an artalk features file")
        _check_kind(kind, name)
        reader = self._stack.enter_context(TensorFileReader(path, TENSOR_NAME, label=name, missing=lambda names: (
            FormatError(f"{name} is corrupt: artalk features file without a '{TENSOR_NAME}' tensor"))))
        self.meta = dict(reader.meta)
        _check_version(self.meta, name)
        shape = tuple(reader.shape)
        _check_shape(shape, name, FormatError)
        _check_encoder(self.meta.get("audio_encoder"), shape[1], name, FormatError)
        if shape[0] == 0:
            raise FormatError(f"{name}: features are empty (0 chunks)")
        _check_samples(self.meta.get("audio_samples"), shape[0], name, FormatError)
        for first, arr in zip(range(0, shape[0], block), reader.iter_blocks(block)):
            bad = first_nonfinite(arr)
            if bad is not None:
                raise FormatError(f"{name}: features have a non-finite value ({arr[bad]}) at chunk "
                                  f"{first + bad[0]}, token {bad[1]}, channel {bad[2]}")
        return reader

    @property
    def chunks(self) -> int:
        return self._file.rows

    @property
    def feature_dim(self) -> int:
        return int(self._file.shape[2])

    @property
    def tokens(self) -> int:
        return int(self._file.shape[1])

    def read(self) -> np.ndarray:
        """All chunks, float32 [chunks,F,C]."""
        return self._file.read()

    def iter_groups(self, group: int) -> Iterator[np.ndarray]:
        """The chunks in consecutive groups float32 [G,F,C] (the last may be smaller)."""
        yield from self._file.iter_blocks(group)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> FeaturesReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_features(source: Source) -> Features:
    """Read a features file from a path, ``-`` (stdin) or bytes: all of :class:`FeaturesReader`, in
    memory; data is float32 numpy [chunks,F,C]. Raises what :class:`FeaturesReader` raises."""
    with FeaturesReader(source) as r:
        return Features(r.read(), dict(r.meta))


def read_features_meta(source: PathLike) -> dict[str, str]:
    """The metadata of a features file on disk, from its header alone (FormatError if it is not one)."""
    name = source_name(source)
    _check_kind(sniff_kind(source), name)
    with TensorFileReader(source, TENSOR_NAME, label=name) as r:
        return dict(r.meta)


def check_features_match(features: Features, *, checkpoint_sha256: str, audio_dim: int,
                         audio_encoder: str = AUDIO_ENCODERS[0], audio_tokens: int | None = None) -> None:
    """Raise InputError unless ``features`` were made by this checkpoint and fit the model.

    ``checkpoint_sha256``: hash of the checkpoint about to be used ("" skips that check);
    ``audio_encoder``, ``audio_tokens``, ``audio_dim``: the model's audio encoder, its F and C.
    The encoder is checked first: features of the other encoder are refused as such.
    """
    if features.audio_encoder != audio_encoder:
        raise InputError(f"these features were made by the {features.audio_encoder} audio encoder but the model "
                         f"uses {audio_encoder}: rerun encode-audio with this model's checkpoint (or generate "
                         f"from the audio)")
    have = features.checkpoint_sha256
    if checkpoint_sha256:
        if not have:
            raise InputError("features do not say which checkpoint made them (rerun encode-audio)")
        if have != checkpoint_sha256:
            raise InputError(f"features were made by checkpoint {have[:12]}, not by "
                             f"{checkpoint_sha256[:12]} (rerun encode-audio)")
    if features.feature_dim != audio_dim or (audio_tokens is not None and features.tokens != audio_tokens):
        want = f"[chunks, {audio_tokens}, {audio_dim}]" if audio_tokens is not None else f"{audio_dim} channels"
        raise InputError(f"features have shape [chunks, {features.tokens}, {features.feature_dim}] but the model "
                         f"expects {want} (rerun encode-audio with this checkpoint)")


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Features", "FeaturesReader", "FeaturesWriter", "check_features_match",
           "features_bytes", "read_features", "read_features_meta", "write_features"]
