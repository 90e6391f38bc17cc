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

import functools
from typing import Any

import numpy as np

from artalk_core.constants import (
    GLOBAL_ROT_SLICE,
    JAW_YZ_SLICE,
    MOTION_DIM,
    SAVGOL_ORDER,
    SAVGOL_POSE_ORDER,
    SAVGOL_POSE_WINDOW,
    SAVGOL_WINDOW,
)
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


@functools.lru_cache(maxsize=4)
def _coeffs(window: int, order: int) -> np.ndarray:
    from scipy.signal import savgol_coeffs

    return np.asarray(savgol_coeffs(window, order))


def _savgol_interior(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """``savgol_filter(x, window, order, axis=0)`` without its polynomial fits of the first and
    last ``window // 2`` rows: the convolution scipy runs for the rest (``mode='interp'``), so
    those rows are its numbers bit for bit; the edge rows are not final (the caller drops them).
    Why not savgol_filter itself: live streams smooth a few frames at a time, and the edge fits
    (least squares) it computes and they discard cost 70% of the energy engine's live CPU time."""
    from scipy.ndimage import convolve1d

    return np.asarray(convolve1d(x, _coeffs(window, order), axis=0, mode="constant"), dtype=np.float32)


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


BLOCK_FRAMES: int = 4096
"""Above this many frames :func:`postprocess` smooths block by block (same result, less memory)."""


def postprocess(raw: Any, *, clip_length: int | None = None, fix_pose: bool = False) -> np.ndarray:
    """:func:`smooth_motion` then :func:`finalize_motion`: raw [T, 106] -> float32 [T', 106].

    Long input goes through :class:`StreamingPostprocessor` in blocks, which gives the identical
    result without float64 copies of the whole sequence (hour-long motion).
    """
    arr = _as_motion(raw)
    if arr.shape[0] <= BLOCK_FRAMES:
        return finalize_motion(smooth_motion(arr), clip_length=clip_length, fix_pose=fix_pose)
    stream = StreamingPostprocessor(clip_length=clip_length, fix_pose=fix_pose)  # validates clip_length
    out = np.empty((arr.shape[0] if clip_length is None else min(arr.shape[0], clip_length), MOTION_DIM),
                   dtype=np.float32)
    pos = 0
    for start in range(0, arr.shape[0], BLOCK_FRAMES):
        if stream.full:
            break
        piece = stream.push(arr[start:start + BLOCK_FRAMES])
        out[pos:pos + piece.shape[0]] = piece
        pos += piece.shape[0]
    piece = stream.flush()
    out[pos:pos + piece.shape[0]] = piece
    return out[: pos + piece.shape[0]]


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


SMOOTH_DELAY: int = max(SAVGOL_WINDOW, SAVGOL_POSE_WINDOW) // 2
"""Frames a causal smoother waits for: frame t is final once frames up to t + 4 are known
(half the head-rotation window; the expression window needs only 2)."""
_CONTEXT: int = 2 * SMOOTH_DELAY + 1  # the longest window: below it, the offline filter shrinks it


class StreamingPostprocessor:
    """:func:`postprocess` fed frame by frame: the concatenation of what :meth:`push` and
    :meth:`flush` return equals ``postprocess(all_frames, clip_length=..., fix_pose=...)`` exactly.

    Frame t comes out once frame t + :data:`SMOOTH_DELAY` (4) has been pushed; frames 0..3 wait for
    frame 8 as well, since scipy's ``'interp'`` mode fits them with the first 9-frame window.
    :meth:`flush` (the end of the input) returns the rest: the last frames use the fit of the last
    window, and input shorter than 9 frames is smoothed whole with the shrunken windows of
    :func:`effective_window`. Exactness: every output frame is computed by the same scipy calls on
    the same samples as offline (a centred window away from the buffer's ends, or the edge fit of
    the same first/last window), so the results are bit-for-bit identical.

    Memory: at most 9 raw frames are kept beyond those pushed in the current call.
    """

    def __init__(self, *, clip_length: int | None = None, fix_pose: bool = False) -> None:
        if clip_length is not None and clip_length < 1:
            raise InputError(f"clip length must be at least 1 frame, got {clip_length}")
        self.clip_length = clip_length
        self.fix_pose = fix_pose
        self._buf = np.zeros((0, MOTION_DIM), dtype=np.float32)  # raw frames buf_start .. pushed-1
        self._buf_start = 0
        self.pushed = 0
        """Raw frames received so far."""
        self.emitted = 0
        """Frames returned so far (after the clip)."""
        self._next = 0  # next frame index to output (before the clip)
        self._done = False

    @property
    def full(self) -> bool:
        """True once ``clip_length`` frames were returned: later input changes nothing."""
        return self.clip_length is not None and self.emitted >= self.clip_length

    @property
    def needed(self) -> int | None:
        """Raw frames after which the output cannot change any more (clip_length + 4), or None."""
        return None if self.clip_length is None else self.clip_length + SMOOTH_DELAY

    def _finish(self, smoothed: np.ndarray) -> np.ndarray:
        if self.clip_length is not None:
            smoothed = smoothed[: max(0, self.clip_length - self.emitted)]
        if smoothed.shape[0] == 0:
            return np.zeros((0, MOTION_DIM), dtype=np.float32)
        out = finalize_motion(smoothed, fix_pose=self.fix_pose)
        self.emitted += out.shape[0]
        return out

    def push(self, frames: Any) -> np.ndarray:
        """Add raw frames [n,106] (n >= 0); return the frames now final, float32 [m,106]."""
        if self._done:
            raise InputError("this stream was already flushed")
        arr = _as_motion(frames) if np.asarray(frames).size else np.zeros((0, MOTION_DIM), np.float32)
        self._buf = np.concatenate([self._buf, arr]) if self._buf.shape[0] else arr.copy()
        self.pushed += arr.shape[0]
        # Frames up to pushed - 1 - DELAY are final, but only once a whole first window exists.
        if self.pushed < _CONTEXT:
            return np.zeros((0, MOTION_DIM), dtype=np.float32)
        return self._emit(self.pushed - SMOOTH_DELAY, at_end=False)

    def flush(self) -> np.ndarray:
        """The end of the input: return every frame not yet returned."""
        if self._done:
            return np.zeros((0, MOTION_DIM), dtype=np.float32)
        self._done = True
        if self.pushed == 0:
            return np.zeros((0, MOTION_DIM), dtype=np.float32)
        if self.pushed < _CONTEXT:  # nothing returned yet: the offline filter with shrunken windows
            assert self._next == 0 and self._buf_start == 0
            self._next = self.pushed
            return self._finish(smooth_motion(self._buf))
        return self._emit(self.pushed, at_end=True)

    def _emit(self, stop: int, *, at_end: bool) -> np.ndarray:
        """Output frames _next .. stop-1 from a segment that starts SMOOTH_DELAY frames before them
        (or at frame 0) and, at the end, holds at least one whole window."""
        if stop <= self._next:
            return np.zeros((0, MOTION_DIM), dtype=np.float32)
        start = max(0, self._next - SMOOTH_DELAY)
        if at_end:
            start = max(0, min(start, self.pushed - _CONTEXT))
        seg = self._buf[start - self._buf_start:]
        # Interior outputs of the segment (and its edges where they are the sequence's edges)
        # are the offline values; outputs near a cut end of the segment are dropped.
        if start > 0 and not at_end:  # no edge of the sequence in the segment: the convolution alone
            smoothed = _savgol_interior(seg, SAVGOL_WINDOW, SAVGOL_ORDER)
            smoothed[:, GLOBAL_ROT_SLICE] = _savgol_interior(seg[:, GLOBAL_ROT_SLICE], SAVGOL_POSE_WINDOW,
                                                             SAVGOL_POSE_ORDER)
        else:
            smoothed = smooth_motion(seg)
        out = smoothed[self._next - start: stop - start]
        self._next = stop
        keep = self._next - SMOOTH_DELAY
        self._trim(keep_from=max(0, min(keep, self.pushed - _CONTEXT)))
        return self._finish(out)

    def _trim(self, keep_from: int) -> None:
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:].copy()
            self._buf_start = keep_from


__all__ = ["SMOOTH_DELAY", "StreamingPostprocessor", "effective_window", "finalize_motion", "postprocess",
           "postprocess_metadata", "smooth_motion"]
