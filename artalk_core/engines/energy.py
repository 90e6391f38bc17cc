"""The ``energy`` engine: motion from the loudness of the audio, with no model weights.

It exists so every command (preview, render, export, live) works before the 2 GB checkpoint is
downloaded, and so a preview can be understood at a glance. It is deterministic (the same audio and
``seed`` always give the same motion) and causal: frame t depends only on the audio up to the end
of frame t + 1, so live input (``generate --stream``, ``artalk serve``) gets each frame 40 ms after
its audio, and the frames equal the offline ones bit for bit however the audio is cut.

How one motion frame t (40 ms, samples [640 t, 640 t + 640)) is made:

1. **Loudness.** The frame's RMS level in dBFS. The speech level is the 90th percentile (in 0.1 dB
   steps) of the levels of the voiced frames heard so far (above -55 dBFS, up to frame t); until
   10 of them (0.4 s) have been heard it is taken as -20 dBFS. If it is below -20 dBFS the frame
   is raised towards -20 dBFS by at most +18 dB, so quiet recordings still move the mouth while a
   louder voice never opens it less.
2. **Gate.** Frames below -55 dBFS (before that gain), or more than 35 dB below the speech level,
   count as silence: the mouth stays closed in pauses and in background noise.
3. **Opening.** The gated level maps linearly from -45 dBFS (closed) to -10 dBFS (fully open),
   clipped to [0, 1], then raised to the power 1.6 so quiet syllables open the mouth only a little
   and loud vowels stand out. A one-frame look-ahead (weight 0.3 of frame t + 1's value) opens
   the mouth just before a syllable, as people do.
4. **Smoothing.** An attack/release follower: the opening rises with a 20 ms time constant and
   falls with 50 ms, which looks like syllables rather than a flicker (below 1e-3 it shows as 0).
5. **Jaw** (channel 103, radians, positive opens): ``0.30 * opening``, i.e. 0 to about 17 degrees.
6. **Expression** (channels 0..9, FLAME coefficients, all |x| < 1.5): channel 0 follows the
   opening (``1.2 * opening``); channel 1 pulls the other way a little (``-0.4 * opening``);
   channel 2 follows the frame's brightness (share of energy above 2 kHz, high for "s"/"ee",
   low for "oo", smoothed with a 40 ms time constant; ``1.5 * (brightness - 0.3) * opening``);
   channels 3..9 are slow seeded wobbles (at most 0.1) that grow while speaking. Channels 10..99
   stay 0.
7. **Head** (channels 100:103, axis-angle radians): per axis a weighted sum of three slow
   sinusoids (0.08 to 0.45 Hz, seeded frequencies and phases) with peak 3 degrees for pitch and
   yaw and 1.5 degrees for roll, scaled by 0.6 in silence up to 1.2 while speaking (the speech
   activity: 2.5 x the opening smoothed with a 0.5 s time constant, at most 1), plus a small nod
   (at most 1.5 degrees of pitch) that follows the syllables (the opening smoothed twice with
   0.1 s, less half the activity).
8. Channels 104:106 (jaw side motion) stay 0, as the reference post-processing leaves them.

The smoothing filters are one-pole low-passes (exponential, ``y += a (x - y)`` per frame with
``a = 1 - exp(-40 ms / time constant)``), run frame by frame so that a stream fed in pieces makes
the same numbers as the whole clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import (
    FPS,
    GLOBAL_ROT_SLICE,
    JAW_OPEN_CHANNEL,
    MOTION_DIM,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
)
from artalk_core.errors import InputError
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import num_frames

if TYPE_CHECKING:
    from artalk_core.engines.speech import Speech
    from artalk_core.styles import Style

ENGINE_NAME = "energy"

# Loudness -> opening (dBFS)
NOISE_FLOOR_DB = -55.0
RELATIVE_GATE_DB = 35.0
OPEN_LOW_DB = -45.0
OPEN_HIGH_DB = -10.0
TARGET_SPEECH_DB = -20.0
MAX_GAIN_DB = 18.0
OPEN_CURVE = 1.6
ATTACK_S = 0.020
RELEASE_S = 0.050
MAX_JAW_RAD = 0.30
LOOKAHEAD_WEIGHT = 0.3
LOOKAHEAD_FRAMES = 1
"""Frames of audio beyond a frame that its motion waits for (the look-ahead of step 3)."""
SPEECH_PERCENTILE = 90.0
LEVEL_STEP_DB = 0.1
LEVEL_BINS = 650  # -55 .. +10 dBFS
MIN_VOICED_FRAMES = 10
ACTIVITY_S = 0.5
NOD_S = 0.1
BRIGHT_S = 0.04

# Head sway
HEAD_AMPLITUDE_RAD = (math.radians(3.0), math.radians(3.0), math.radians(1.5))
HEAD_FREQS_HZ = (0.08, 0.45)
NOD_RAD = math.radians(1.5)


def _frame_levels(x: np.ndarray, n_frames: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame RMS level (dBFS) and brightness (share of energy above 2 kHz), each [T].

    Works through ``block`` frames at a time so an hour of audio needs no float64 or spectrum copy
    of the whole signal.
    """
    window = np.hanning(SAMPLES_PER_FRAME)
    freqs = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1.0 / SAMPLE_RATE)
    voiced_band, high_band = freqs >= 80.0, freqs >= 2000.0
    db = np.empty(n_frames)
    bright = np.empty(n_frames)
    all_frames = x.reshape(n_frames, SAMPLES_PER_FRAME)
    for start in range(0, n_frames, block):
        frames = all_frames[start:start + block].astype(np.float64)
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        db[start:start + len(frames)] = 20.0 * np.log10(np.maximum(rms, 1e-10))
        spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        total = spec[:, voiced_band].sum(axis=1)
        high = spec[:, high_band].sum(axis=1)
        bright[start:start + len(frames)] = np.where(total > 1e-12, high / np.maximum(total, 1e-12), 0.0)
    return db, bright


def _pole(seconds: float) -> float:
    """The step ``a`` of a one-pole low-pass with time constant ``seconds`` at 25 fps."""
    return 1.0 - math.exp(-1.0 / (FPS * seconds))


def _checked(audio: Any) -> np.ndarray:
    """Mono float32 [S] audio, or InputError."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise InputError(f"energy engine wants mono audio [S], got shape {tuple(x.shape)}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError("energy engine: the audio contains NaN or infinite samples")
    return x


class _SpeechLevel:
    """The speech level of step 1: the 90th percentile of the voiced frame levels so far, from a
    histogram in 0.1 dB steps (constant memory however long the stream runs)."""

    def __init__(self) -> None:
        self.hist = np.zeros(LEVEL_BINS, np.int64)
        self.voiced = 0
        self.level = TARGET_SPEECH_DB

    def add(self, db: float) -> float:
        """Count frame level ``db``; the speech level (dBFS) including it."""
        if db > NOISE_FLOOR_DB:
            self.hist[min(int((db - NOISE_FLOOR_DB) / LEVEL_STEP_DB), LEVEL_BINS - 1)] += 1
            self.voiced += 1
            if self.voiced >= MIN_VOICED_FRAMES:
                rank = math.ceil(SPEECH_PERCENTILE / 100.0 * self.voiced)
                idx = int(np.searchsorted(np.cumsum(self.hist), rank))
                self.level = NOISE_FLOOR_DB + (idx + 0.5) * LEVEL_STEP_DB
        return self.level


class EnergyStream:
    """The energy engine fed as the audio arrives (an :class:`~artalk_core.engines.base.EngineStream`):
    :meth:`push` takes 16 kHz mono float32 samples (any number; an incomplete frame waits) and
    returns the raw frames now final, float32 [n,106]; frame t comes out once frame t + 1 is in.
    The concatenated output is :func:`energy_motion` of the concatenated input, bit for bit."""

    block_samples = SAMPLES_PER_FRAME
    lookahead_frames = LOOKAHEAD_FRAMES

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        # The draws in the order the curves use them: wobbles of channels 3..9, then head axes.
        self.wobbles = [(rng.uniform(0.1, 0.6, size=2), rng.uniform(0.0, 2 * math.pi, size=2)) for _ in range(3, 10)]
        self.sways = [(rng.uniform(*HEAD_FREQS_HZ, size=3), rng.uniform(0.0, 2 * math.pi, size=3))
                      for _ in HEAD_AMPLITUDE_RAD]
        self._rest = np.zeros(0, np.float32)  # samples of an incomplete frame
        self._speech = _SpeechLevel()
        self._pending: list[tuple[float, float]] = []  # (gated level, brightness) of frames not yet out
        self._frames_in = 0
        self._t = 0  # next frame out
        self._follow = self._activity = self._nod1 = self._nod2 = 0.0
        self._bright: float | None = None
        self.samples = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add audio float32 [n]; return the raw frames now final (all but the newest one)."""
        x = _checked(samples)
        self.samples += len(x)
        if len(self._rest):
            x = np.concatenate([self._rest, x])
        whole = len(x) // SAMPLES_PER_FRAME
        self._rest = x[whole * SAMPLES_PER_FRAME:].copy()
        if whole:
            self._add_levels(*_frame_levels(x[:whole * SAMPLES_PER_FRAME], whole))
        return self._emit(len(self._pending) - LOOKAHEAD_FRAMES)

    def finish(self, samples: np.ndarray | None = None, total_samples: int | None = None) -> np.ndarray:
        """The end of the audio (``samples``: any last samples): the remaining frames, so that the
        output has ``num_frames(total)`` frames in all (the last one zero-padded)."""
        out = [self.push(samples)] if samples is not None and len(samples) else []
        total = self.samples if total_samples is None else int(total_samples)
        missing = num_frames(total) - self._frames_in
        if missing > 0:
            need = missing * SAMPLES_PER_FRAME
            tail = np.pad(self._rest[:need], (0, need - min(len(self._rest), need)))
            self._add_levels(*_frame_levels(tail, missing))
        self._rest = np.zeros(0, np.float32)
        out.append(self._emit(len(self._pending), at_end=True))
        return np.concatenate(out) if len(out) > 1 else out[0]

    def close(self) -> None:
        self._pending = []

    def _add_levels(self, db: np.ndarray, bright: np.ndarray) -> None:
        """Steps 1 to 3 (before the look-ahead) for new frames, in order."""
        for d, b in zip(db.tolist(), bright.tolist()):
            speech_db = self._speech.add(d)
            gain = min(max(TARGET_SPEECH_DB - speech_db, 0.0), MAX_GAIN_DB)
            gate = max(NOISE_FLOOR_DB, speech_db - RELATIVE_GATE_DB)
            level = min(max((d + gain - OPEN_LOW_DB) / (OPEN_HIGH_DB - OPEN_LOW_DB), 0.0), 1.0) ** OPEN_CURVE
            self._pending.append((level if d > gate else 0.0, b))
        self._frames_in += len(db)

    def _emit(self, n: int, *, at_end: bool = False) -> np.ndarray:
        """Steps 3 (look-ahead) to 8 for the ``n`` oldest pending frames."""
        if n <= 0:
            return np.zeros((0, MOTION_DIM), np.float32)
        opening, activity, bright, nod = (np.empty(n) for _ in range(4))
        a_up, a_down = _pole(ATTACK_S), _pole(RELEASE_S)
        a_act, a_nod, a_bright = _pole(ACTIVITY_S), _pole(NOD_S), _pole(BRIGHT_S)
        for i in range(n):
            level, b = self._pending[i]
            ahead = self._pending[i + 1][0] if i + 1 < len(self._pending) else 0.0  # after the end: silence
            target = max(level, LOOKAHEAD_WEIGHT * ahead)
            self._follow += (a_up if target > self._follow else a_down) * (target - self._follow)
            o = self._follow if self._follow >= 1e-3 else 0.0  # the release decays forever: show it closed
            self._activity += a_act * (o - self._activity)
            self._nod1 += a_nod * (o - self._nod1)
            self._nod2 += a_nod * (self._nod1 - self._nod2)
            self._bright = b if self._bright is None else self._bright + a_bright * (b - self._bright)
            act = min(max(self._activity * 2.5, 0.0), 1.0)
            opening[i], activity[i], bright[i] = o, act, self._bright
            nod[i] = NOD_RAD * (self._nod2 - 0.5 * act)
        del self._pending[:n]
        rows = self._rows(self._t, opening, activity, bright, nod)
        self._t += n
        return rows

    def _rows(self, start: int, opening: np.ndarray, activity: np.ndarray, bright: np.ndarray,
              nod: np.ndarray) -> np.ndarray:
        """Motion float32 [n,106] of frames start..start+n-1 from their per-frame curves [n]."""
        n = len(opening)
        motion = np.zeros((n, MOTION_DIM), np.float32)
        t = np.arange(start, start + n) / FPS
        motion[:, JAW_OPEN_CHANNEL] = MAX_JAW_RAD * opening
        motion[:, 0] = 1.2 * opening
        motion[:, 1] = -0.4 * opening
        motion[:, 2] = 1.5 * (bright - 0.3) * opening
        for ch, (f, ph) in zip(range(3, 10), self.wobbles):
            wobble = 0.5 * (np.sin(2 * math.pi * f[0] * t + ph[0]) + np.sin(2 * math.pi * f[1] * t + ph[1]))
            motion[:, ch] = 0.10 * wobble * (0.5 + 0.5 * activity)
        scale = 0.6 + 0.6 * activity
        rot = np.zeros((n, 3))
        weights = np.array([0.5, 0.3, 0.2])
        for axis, (amp, (freqs, phases)) in enumerate(zip(HEAD_AMPLITUDE_RAD, self.sways)):
            sway = (weights[:, None] * np.sin(2 * math.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(0)
            rot[:, axis] = amp * sway * scale
        rot[:, 0] += nod
        motion[:, GLOBAL_ROT_SLICE] = rot
        np.clip(motion[:, 0:10], -1.45, 1.45, out=motion[:, 0:10])
        return motion


def energy_motion(audio: np.ndarray, *, n_frames: int | None = None, seed: int = 0) -> np.ndarray:
    """Motion float32 [T, 106] from 16 kHz mono audio float32 [S], without model weights.

    ``T`` defaults to ``timing.num_frames(S)``; a larger ``n_frames`` pads the audio with silence,
    a smaller one ignores the rest. ``seed`` only changes the head sway and the small expression
    wobbles. See the module docstring for the exact mapping. Raises :class:`InputError` for
    non-1-D or non-finite audio or a negative ``n_frames``.
    """
    x = _checked(audio)
    T = num_frames(len(x)) if n_frames is None else int(n_frames)
    if T < 0:
        raise InputError(f"n_frames must be >= 0, got {n_frames}")
    need = T * SAMPLES_PER_FRAME
    if n_frames is not None:
        x = x[:need] if len(x) >= need else np.pad(x, (0, need - len(x)))
    stream = EnergyStream(seed)
    return np.concatenate([stream.push(x), stream.finish(None, len(x))])[:T]


def iter_energy_motion(blocks: Iterable[np.ndarray], *, seed: int = 0) -> Iterator[np.ndarray]:
    """:func:`energy_motion` of the concatenated ``blocks`` (16 kHz mono float32 [n] each), yielded
    as the blocks come, float32 [n,106]: the concatenation is the same motion bit for bit, and
    neither the audio nor the motion is held. Raises like :func:`energy_motion`."""
    stream = EnergyStream(seed)
    for block in blocks:
        yield stream.push(block)
    yield stream.finish()


class EnergyEngine:
    """The energy engine as a :class:`~artalk_core.engines.base.MotionEngine` and
    :class:`~artalk_core.engines.base.StreamingEngine`: audio in any form (not a features file),
    no weights, no style; ``seed`` from the run's motion options."""

    name = ENGINE_NAME
    inputs = frozenset({"audio"})
    checkpoint_sha256 = ""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.options: dict[str, Any] = {"seed": seed}

    def open_stream(self, style: Style) -> EnergyStream:
        """A live stream of this engine (the style is not used)."""
        return EnergyStream(self.seed)

    def motion(self, speech: Speech, style: Style, progress: OptionalProgress = None) -> Iterator[np.ndarray]:
        """:func:`iter_energy_motion` of the speech's audio blocks, each block's frames as it is read."""
        report(progress, "energy engine", 0, 1)
        try:
            yield from iter_energy_motion(speech.audio_blocks(), seed=self.seed)
        finally:
            report(progress, "energy engine", 1, 1)
