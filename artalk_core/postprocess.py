"""Post-processing of generated motion, exactly as the reference engine does it.

1. :func:`smooth_motion`: Savitzky-Golay filter over time (scipy ``savgol_filter``, axis 0,
   default mode ``'interp'``) on all 106 channels with window 5 / order 2; then the global head
   rotation channels 100:103 are replaced by the filter of the RAW 100:103 with window 9 / order 3.
2. :func:`finalize_motion`: cut to ``clip_length`` frames; ``fix_pose`` zeroes the head rotation
   100:103; the jaw's y/z rotation 104:106 is always zeroed.

Short sequences (fewer frames than a window) are not in the reference, which would crash; here
the window shrinks to the largest odd length <= T that is still > the polynomial order, and when
no such length exists (T <= order) the channels are left unsmoothed. Because a degree-p polynomial
through exactly p+1 points reproduces them, a window of length order+1 is also the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from artalk_core.constants import (
    GLOBAL_ROT_SLICE, JAW_YZ_SLICE, MOTION_DIM, SAVGOL_ORDER, SAVGOL_POSE_ORDER,
    SAVGOL_POSE_WINDOW, SAVGOL_WINDOW)
from artalk_core.errors import InputError


def _as_motion(raw: Any) -> np.ndarray:
    if hasattr(raw, "detach"):  # torch tensor
        raw = raw.detach().cpu().float().numpy()
    arr = np.asarray(raw, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != MOTION_DIM:
        raise InputError(f"motion has shape {list(arr.shape)}, expected [T, {MOTION_DIM}]")
    return arr


def effective_window(n_frames: int, window: int, order: int) -> int | None:
    """Window actually used for ``n_frames`` frames: ``window`` if it fits, else the largest odd
    length <= n_frames that is > ``order``; None when the channels must stay unsmoothed."""
    if n_frames >= window:
        return window
    w = n_frames if n_frames % 2 == 1 else n_frames - 1
    return w if w > order else None


def _savgol(x: np.ndarray, window: int, order: int) -> np.ndarray:
    from scipy.signal import savgol_filter

    w = effective_window(x.shape[0], window, order)
    if w is None:
        return x.copy()
    return np.asarray(savgol_filter(x, w, order, axis=0), dtype=np.float32)


def smooth_motion(raw: Any) -> np.ndarray:
    """Savitzky-Golay smoothing of raw motion [T, 106] -> float32 [T, 106] (a new array).

    All channels: window 5, order 2; channels 100:103 (head rotation): window 9, order 3 on the
    raw values. Shorter sequences use the shrunken windows described in the module docstring.
    """
    arr = _as_motion(raw)
    out = _savgol(arr, SAVGOL_WINDOW, SAVGOL_ORDER)
    out[:, GLOBAL_ROT_SLICE] = _savgol(arr[:, GLOBAL_ROT_SLICE], SAVGOL_POSE_WINDOW, SAVGOL_POSE_ORDER)
    return out


def finalize_motion(smoothed: Any, *, clip_length: int | None = None, fix_pose: bool = False) -> np.ndarray:
    """Cut to ``clip_length`` frames (None: keep all), zero 100:103 when ``fix_pose``, zero 104:106.

    [T, 106] -> float32 [min(T, clip_length), 106] (a new array). Raises InputError for a
    ``clip_length`` < 1.
    """
    arr = _as_motion(smoothed)
    if clip_length is not None:
        if clip_length < 1:
            raise InputError(f"clip length must be at least 1 frame, got {clip_length}")
        arr = arr[:clip_length]
    out = arr.copy()
    if fix_pose:
        out[:, GLOBAL_ROT_SLICE] = 0.0
    out[:, JAW_YZ_SLICE] = 0.0
    return out


def postprocess(raw: Any, *, clip_length: int | None = None, fix_pose: bool = False) -> np.ndarray:
    """:func:`smooth_motion` then :func:`finalize_motion`: raw [T, 106] -> float32 [T', 106]."""
    return finalize_motion(smooth_motion(raw), clip_length=clip_length, fix_pose=fix_pose)


def postprocess_metadata(*, smoothed: bool = True, clip_length: int | None = None,
                         fix_pose: bool = False) -> dict[str, str]:
    """Motion-file metadata recording the post-processing applied (postprocessed, smoothed,
    clip_length, fix_pose)."""
    return {
        "postprocessed": "true",
        "smoothed": "true" if smoothed else "false",
        "clip_length": "" if clip_length is None else str(int(clip_length)),
        "fix_pose": "true" if fix_pose else "false",
    }


__all__ = ["effective_window", "finalize_motion", "postprocess", "postprocess_metadata", "smooth_motion"]
