"""Sample <-> frame arithmetic, exactly as the reference computes it."""

from __future__ import annotations

import math

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES, FPS, SAMPLE_RATE


def num_frames(num_samples: int) -> int:
    """Motion frames for ``num_samples`` of 16 kHz audio: ceil(S / 16000 * 25), the reference's float formula."""
    return math.ceil(num_samples / SAMPLE_RATE * FPS)


def num_chunks(n_frames: int) -> int:
    """100-frame chunks needed to cover ``n_frames``."""
    return math.ceil(n_frames / CHUNK_FRAMES)


def padded_samples(num_samples: int) -> int:
    """Length the audio is zero-padded to before chunking: whole 64,000-sample chunks."""
    return int(math.ceil(num_frames(num_samples) / CHUNK_FRAMES) * CHUNK_FRAMES / FPS * SAMPLE_RATE)


def samples_for_frames(n_frames: int) -> int:
    """Audio samples matching ``n_frames`` of video, as the reference cuts audio: int(T / 25 * 16000)."""
    return int(n_frames / FPS * SAMPLE_RATE)


assert padded_samples(1) == CHUNK_SAMPLES
