"""Interleaved PCM bytes, arriving in pieces of any size, to the 16 kHz mono float32 the engines read.

Used by ``generate --stream`` (a WAV or raw stream on stdin) and by live sessions (PCM over a
WebSocket). The numbers are the offline decoder's: integer PCM becomes float as FFmpeg converts it
(int16 / 32768 ...), each channel is resampled to 16 kHz exactly as ``torchaudio`` does it
(:class:`~artalk_core.audio.resample.BlockResampler`, the same numbers whatever the pieces), then the
channels are averaged (:func:`~artalk_core.audio.resample.to_mono`), so a stream gives the samples
``load_audio`` gives for the same audio in a WAV file, bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from artalk_core.audio.resample import BlockResampler, to_mono
from artalk_core.constants import SAMPLE_RATE
from artalk_core.errors import AudioError

SAMPLE_BYTES: dict[str, int] = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4, "f64": 8}
"""Bytes per sample of each sample format."""


@dataclass(frozen=True)
class PcmLayout:
    """How the samples of a PCM stream are stored: ``sample_format`` (u8 | s16 | s24 | s32 | f32 |
    f64, little-endian), interleaved ``channels``, ``rate`` in Hz, and ``data_bytes`` (None: until
    the end of the input)."""

    sample_format: str
    channels: int
    rate: int
    data_bytes: int | None = None

    @property
    def sample_bytes(self) -> int:
        return SAMPLE_BYTES[self.sample_format]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample of every channel."""
        return self.sample_bytes * self.channels


def pcm_to_channels(raw: bytes | bytearray | memoryview, sample_format: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes (a whole number of sample frames) -> float32 [channels, n], with
    FFmpeg's conversion: u8 (x - 128) / 128, s16 / 32768, s24 as s32 shifted by 8, s32 / 2**31."""
    fmt = sample_format
    if fmt == "u8":
        x = np.frombuffer(raw, dtype=np.uint8)
        f = ((x.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    elif fmt == "s16":
        f = (np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0).astype(np.float32)
    elif fmt == "s24":
        # FFmpeg decodes 24-bit PCM to s32 (shifted left by 8), then it is divided by 2**31.
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        xi = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
        f = (xi.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif fmt == "s32":
        f = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif fmt == "f32":
        f = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif fmt == "f64":
        f = np.frombuffer(raw, dtype="<f8").astype(np.float32)
    else:
        raise ValueError(f"unknown sample format {fmt!r}")
    return np.ascontiguousarray(f.reshape(-1, channels).T)


class PcmDecoder:
    """PCM bytes of ``layout`` in pieces of any size -> 16 kHz mono float32 (see the module docstring).

    :meth:`push` returns the samples that became final (a partial sample frame waits for the next
    piece; the resampler's right context, about 20 input samples, waits too); :meth:`finish` the
    rest. Counted on the way: ``bytes_in`` and their ``sha256``, ``samples`` (16 kHz out) and
    ``sum_squares`` (float64, for the silence check). Non-finite float samples raise AudioError.
    """

    def __init__(self, layout: PcmLayout, *, name: str = "<stream>") -> None:
        if layout.sample_format not in SAMPLE_BYTES or layout.channels < 1:
            raise AudioError(f"{name}: cannot read {layout.sample_format} PCM with {layout.channels} channel(s)")
        try:
            self._res = BlockResampler(layout.rate, layout.channels)
        except ValueError as e:
            raise AudioError(f"{name}: {e}") from e
        self.layout = layout
        self.name = name
        self._carry = b""  # the start of a sample frame cut by the piece boundary
        self._hash = hashlib.sha256()
        self.bytes_in = 0
        self.samples = 0
        self.sum_squares = 0.0
        self._finished = False

    @property
    def sha256(self) -> str:
        """sha256 of every byte pushed."""
        return self._hash.hexdigest()

    @property
    def dropped_bytes(self) -> int:
        """Bytes of an incomplete last sample frame (dropped at :meth:`finish`)."""
        return len(self._carry)

    def _out(self, y: np.ndarray) -> np.ndarray:
        mono = to_mono(y) if y.shape[1] else np.zeros(0, np.float32)
        if mono.size:
            self.samples += mono.shape[0]
            m64 = mono.astype(np.float64)
            self.sum_squares += float(np.dot(m64, m64))
        return mono

    def push(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Add PCM bytes; return the 16 kHz mono samples float32 [m] now final (m may be 0)."""
        if not data:
            return np.zeros(0, np.float32)
        self._hash.update(data)
        self.bytes_in += len(data)
        buf = self._carry + bytes(data) if self._carry else data
        fb = self.layout.frame_bytes
        usable = len(buf) - len(buf) % fb
        self._carry = bytes(buf[usable:])
        if not usable:
            return np.zeros(0, np.float32)
        x = pcm_to_channels(memoryview(buf)[:usable], self.layout.sample_format, self.layout.channels)
        if self.layout.sample_format in ("f32", "f64") and not np.all(np.isfinite(x)):
            raise AudioError(f"{self.name} contains NaN or infinite samples; re-export the audio")
        # eager: every sample the filter allows now, not after 4096 inputs were gathered (lag)
        return self._out(self._res.push(x, eager=True))

    def finish(self) -> np.ndarray:
        """The end of the input: the rest of the 16 kHz samples (an incomplete sample frame is dropped)."""
        if self._finished:
            return np.zeros(0, np.float32)
        self._finished = True
        return self._out(self._res.finish())


def ready_estimate(layout: PcmLayout, n_bytes: int) -> int:
    """About how many 16 kHz samples ``n_bytes`` of ``layout`` become (for scheduling, not exact)."""
    frames = n_bytes // layout.frame_bytes
    return frames if layout.rate == SAMPLE_RATE else frames * SAMPLE_RATE // layout.rate


__all__ = ["PcmDecoder", "PcmLayout", "SAMPLE_BYTES", "pcm_to_channels", "ready_estimate"]
