"""What the array formats share: float32 conversion, the motion array check, metadata as strings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from artalk_core.constants import GLOBAL_ROT_SLICE, JAW_SLICE, MOTION_DIM, MOTION_MAX_ABS
from artalk_core.errors import FormatError, InputError


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
    T >= 1, all finite and within :data:`~artalk_core.constants.MOTION_MAX_ABS`. Returns the
    (possibly squeezed) float32 array; raises ``err``.
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
    big = np.abs(arr) > MOTION_MAX_ABS
    if big.any():
        frame, channel = (int(i) for i in np.argwhere(big)[0])
        raise err(f"{name}: {what} has the value {float(arr[frame, channel]):g} at frame {first_frame + frame}, "
                  f"channel {channel} ({channel_name(channel)}); motion values are at most {MOTION_MAX_ABS:g} "
                  f"in size (expressions stay within about 5, rotations are radians)")
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


__all__ = ["channel_name", "check_motion_array", "first_nonfinite", "metadata_strings", "to_float32_array"]
