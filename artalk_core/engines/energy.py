"""The ``energy`` engine: motion from the loudness of the audio, with no model weights.

It exists so every command (preview, render, export) works before the 2 GB checkpoint is
downloaded, and so a preview can be understood at a glance. It is deterministic: the same audio,
``n_frames`` and ``seed`` always give the same motion.

How one motion frame t (40 ms, samples [640 t, 640 t + 640)) is made:

1. **Loudness.** The frame's RMS level in dBFS. If the clip's speech level (90th percentile of
   the non-silent frames) is below -20 dBFS, the whole clip is raised towards -20 dBFS by at most
   +18 dB, so quiet recordings still move the mouth while a louder clip never opens it less.
2. **Gate.** Frames below -55 dBFS (before that gain), or more than 35 dB below the clip's speech
   level, count as silence: the mouth stays closed in pauses and in background noise.
3. **Opening.** The gated level maps linearly from -45 dBFS (closed) to -10 dBFS (fully open),
   clipped to [0, 1], then raised to the power 1.6 so quiet syllables open the mouth only a little
   and loud vowels stand out.
   A one-frame look-ahead (weight 0.3) opens the mouth just before a syllable, as people do.
4. **Smoothing.** An attack/release follower: the opening rises with a 20 ms time constant and
   falls with 50 ms, which looks like syllables rather than a flicker.
5. **Jaw** (channel 103, radians, positive opens): ``0.30 * opening``, i.e. 0 to about 17 degrees.
6. **Expression** (channels 0..9, FLAME coefficients, all |x| < 1.5): channel 0 follows the
   opening (``1.2 * opening``); channel 1 pulls the other way a little (``-0.4 * opening``);
   channel 2 follows the frame's brightness (share of energy above 2 kHz, high for "s"/"ee",
   low for "oo"; ``1.5 * (brightness - 0.3) * opening``); channels 3..9 are slow seeded wobbles
   (at most 0.1) that grow while speaking. Channels 10..99 stay 0.
7. **Head** (channels 100:103, axis-angle radians): per axis a weighted sum of three slow
   sinusoids (0.08 to 0.45 Hz, seeded frequencies and phases) with peak 3 degrees for pitch and
   yaw and 1.5 degrees for roll, scaled by 0.6 in silence up to 1.2 while speaking (speech
   activity smoothed over about one second), plus a small nod (at most 1.5 degrees of pitch)
   that follows the syllables.
8. Channels 104:106 (jaw side motion) stay 0, as the reference post-processing leaves them.
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
from artalk_core.engines.base import EngineSettings
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


def _opening(db: np.ndarray) -> np.ndarray:
    """Mouth opening in [0, 1] per frame from frame levels in dBFS (steps 1 to 4 of the module doc)."""
    voiced = db[db > NOISE_FLOOR_DB]
    speech_db = float(np.percentile(voiced, 90)) if voiced.size else NOISE_FLOOR_DB
    gain = float(np.clip(TARGET_SPEECH_DB - speech_db, 0.0, MAX_GAIN_DB))
    gate = max(NOISE_FLOOR_DB, speech_db - RELATIVE_GATE_DB)
    level = np.clip((db + gain - OPEN_LOW_DB) / (OPEN_HIGH_DB - OPEN_LOW_DB), 0.0, 1.0) ** OPEN_CURVE
    level = np.where(db > gate, level, 0.0)
    ahead = np.concatenate([level[1:], [0.0]]) if level.size else level
    target = np.maximum(level, LOOKAHEAD_WEIGHT * ahead)
    a_up = 1.0 - math.exp(-1.0 / (FPS * ATTACK_S))
    a_down = 1.0 - math.exp(-1.0 / (FPS * RELEASE_S))
    out = np.empty_like(target)
    y = 0.0
    for t, v in enumerate(target):
        y += (a_up if v > y else a_down) * (v - y)
        out[t] = y
    # The release decays forever; snap the tail to exactly closed.
    out[out < 1e-3] = 0.0
    return out


def _smooth(x: np.ndarray, seconds: float) -> np.ndarray:
    """Centred Gaussian smoothing over about ``seconds`` (edge values repeated)."""
    if x.size == 0:
        return x
    sigma = seconds * FPS / 2.0
    half = int(math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, half, mode="edge"), k, mode="valid")


def _checked(audio: Any) -> np.ndarray:
    """Mono float32 [S] audio, or InputError."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise InputError(f"energy engine wants mono audio [S], got shape {tuple(x.shape)}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputError("energy engine: the audio contains NaN or infinite samples")
    return x


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
    if T == 0:
        return np.zeros((0, MOTION_DIM), np.float32)
    need = T * SAMPLES_PER_FRAME
    x = x[:need] if len(x) >= need else np.pad(x, (0, need - len(x)))
    db, bright = _frame_levels(x, T)
    return _motion_from_levels(db, bright, seed)


def _levels_from_blocks(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Frame levels and brightness [T] of the concatenated ``blocks``, as :func:`energy_motion`
    computes them, without holding the audio (incomplete frames carry over between blocks)."""
    dbs: list[np.ndarray] = []
    brights: list[np.ndarray] = []
    rest = np.zeros(0, np.float32)  # samples of an incomplete frame carried to the next block
    total = 0
    for block in blocks:
        x = _checked(block)
        total += len(x)
        if len(rest):
            x = np.concatenate([rest, x])
        whole = len(x) // SAMPLES_PER_FRAME
        if whole:
            db, bright = _frame_levels(x[:whole * SAMPLES_PER_FRAME], whole)
            dbs.append(db)
            brights.append(bright)
        rest = x[whole * SAMPLES_PER_FRAME:].copy()
    T = num_frames(total)
    if T == 0:
        return np.zeros(0), np.zeros(0)
    done = sum(len(d) for d in dbs)
    if T > done:  # the last partial frame and any further frames, zero-padded as energy_motion pads
        need = (T - done) * SAMPLES_PER_FRAME
        db, bright = _frame_levels(np.pad(rest[:need], (0, need - min(len(rest), need))), T - done)
        dbs.append(db)
        brights.append(bright)
    return np.concatenate(dbs)[:T], np.concatenate(brights)[:T]


def iter_energy_motion(blocks: Iterable[np.ndarray], *, seed: int = 0, block_frames: int = 4096) -> Iterator[np.ndarray]:
    """:func:`energy_motion` of the concatenated ``blocks`` (16 kHz mono float32 [n] each), yielded
    ``block_frames`` frames at a time, float32 [n,106]: the concatenation is the same motion bit
    for bit, yet neither the audio nor the whole [T,106] motion is held. Frame levels are computed
    block by block, and only the per-frame curves [T] are kept (the gain is clip-wide, so the
    audio is read to its end before the first block). Raises like :func:`energy_motion`.
    """
    db, bright = _levels_from_blocks(blocks)
    plan = _MotionPlan(db, bright, seed)
    for start in range(0, plan.frames, max(1, int(block_frames))):
        yield plan.rows(start, min(start + block_frames, plan.frames))


class _MotionPlan:
    """Everything the motion of a clip depends on, as per-frame curves [T] and the seeded draws
    (steps 1 to 8), so frames can be made in any ranges that together give the same bits."""

    def __init__(self, db: np.ndarray, bright: np.ndarray, seed: int) -> None:
        self.frames = len(db)
        self.opening = _opening(db)
        self.activity = np.clip(_smooth(self.opening, 1.0) * 2.5, 0.0, 1.0)
        self.bright = _smooth(bright, 0.08)
        self.nod = NOD_RAD * (_smooth(self.opening, 0.3) - 0.5 * self.activity)
        rng = np.random.default_rng(seed)
        # The draws in the order the curves use them: wobbles of channels 3..9, then head axes.
        self.wobbles = [(rng.uniform(0.1, 0.6, size=2), rng.uniform(0.0, 2 * math.pi, size=2)) for _ in range(3, 10)]
        self.sways = [(rng.uniform(*HEAD_FREQS_HZ, size=3), rng.uniform(0.0, 2 * math.pi, size=3))
                      for _ in HEAD_AMPLITUDE_RAD]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Motion float32 [stop-start, 106] of frames start..stop-1."""
        n = stop - start
        opening, activity = self.opening[start:stop], self.activity[start:stop]
        motion = np.zeros((n, MOTION_DIM), np.float32)
        t = np.arange(start, stop) / FPS
        motion[:, JAW_OPEN_CHANNEL] = MAX_JAW_RAD * opening
        motion[:, 0] = 1.2 * opening
        motion[:, 1] = -0.4 * opening
        motion[:, 2] = 1.5 * (self.bright[start:stop] - 0.3) * opening
        for ch, (f, ph) in zip(range(3, 10), self.wobbles):
            wobble = 0.5 * (np.sin(2 * math.pi * f[0] * t + ph[0]) + np.sin(2 * math.pi * f[1] * t + ph[1]))
            motion[:, ch] = 0.10 * wobble * (0.5 + 0.5 * activity)
        scale = 0.6 + 0.6 * activity
        rot = np.zeros((n, 3))
        weights = np.array([0.5, 0.3, 0.2])
        for axis, (amp, (freqs, phases)) in enumerate(zip(HEAD_AMPLITUDE_RAD, self.sways)):
            sway = (weights[:, None] * np.sin(2 * math.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(0)
            rot[:, axis] = amp * sway * scale
        rot[:, 0] += self.nod[start:stop]
        motion[:, GLOBAL_ROT_SLICE] = rot
        np.clip(motion[:, 0:10], -1.45, 1.45, out=motion[:, 0:10])
        return motion


def _motion_from_levels(db: np.ndarray, bright: np.ndarray, seed: int) -> np.ndarray:
    """Motion float32 [T,106] from per-frame levels (dBFS) and brightness, each [T] (steps 1 to 8)."""
    plan = _MotionPlan(db, bright, seed)
    return plan.rows(0, plan.frames)


class EnergyEngine:
    """The energy engine as a :class:`~artalk_core.engines.base.MotionEngine`: audio in any form
    (not a features file), no weights, no style; ``seed`` from the settings."""

    name = ENGINE_NAME
    inputs = frozenset({"audio"})
    checkpoint_sha256 = ""

    def __init__(self, settings: EngineSettings) -> None:
        self.seed = settings.seed
        self.options: dict[str, Any] = {"seed": settings.seed}

    def motion(self, speech: Speech, style: Style, progress: OptionalProgress = None) -> Iterator[np.ndarray]:
        """:func:`iter_energy_motion` of the speech's audio blocks (read to the end before the first block)."""
        report(progress, "energy engine", 0, 1)
        try:
            yield from iter_energy_motion(speech.audio_blocks(), seed=self.seed)
        finally:  # also when the caller stops at the clip length: the whole audio was read already
            report(progress, "energy engine", 1, 1)
