"""The motion format: float32 [T, 106] at 25 fps, plus style clips.

artalk writes motion as safetensors: tensor ``motion`` float32 [T, 106] (FLAME expression 0:100,
global head rotation 100:103, jaw rotation 103:106, axis-angle radians) and string metadata
(schema: ``schemas/motion.schema.json``). It also reads the reference tool's motion and style
files: ``torch.save`` of a float32 [T, 106] tensor (``*_motions.pt``, ``style_motion/*.pt``).
The format is recognised from the content, never from the file name, so ``-`` (stdin) works.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artalk_core.constants import (
    CHANNEL_LAYOUT, FPS, GLOBAL_ROT_SLICE, JAW_SLICE, MOTION_DIM, STYLE_FRAMES)
from artalk_core.errors import FormatError, InputError, StyleError
from artalk_core.fileio import PathLike, atomic_output
from artalk_core.formats import (
    Source, describe_kind, first_nonfinite, load_safetensors_bytes, metadata_strings,
    save_safetensors_bytes, sniff_kind, source_bytes, source_name, to_float32_array)

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
    ``motion`` tensor) or ``"reference-pt"`` (a torch.save'd tensor).
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
    import pickle
    import zipfile

    import torch

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise FormatError(f"{name} holds Python objects that artalk will not unpickle; "
                              "expected a torch.save'd tensor") from e
        raise FormatError(f"{name} is truncated or corrupt (torch file cannot be unpickled)") from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise FormatError(f"{name} is truncated or corrupt (torch file cannot be read)") from e
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

    Accepts artalk motion safetensors, a safetensors file with a ``motion`` tensor, and the
    reference tool's ``torch.save``'d float32 [T, 106] tensor (any file name). Returns float32
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
    arr = check_motion_array(to_float32_array(data, what="motion"), "motion to write")
    return save_safetensors_bytes({TENSOR_NAME: arr}, _normalize_meta(meta, arr.shape[0]))


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


def write_reference_motion(path: PathLike, data: Any) -> None:
    """Write motion in the reference tool's format: ``torch.save`` of a float32 [T, 106] tensor."""
    import torch

    arr = check_motion_array(to_float32_array(data, what="motion"), "motion to write")
    with atomic_output(path) as tmp:
        torch.save(torch.from_numpy(arr.copy()), tmp)


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Motion", "channel_name", "check_motion_array",
           "load_motion_array", "load_torch_tensor", "motion_bytes", "read_motion", "read_style",
           "write_motion", "write_reference_motion"]
