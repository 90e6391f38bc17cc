"""Progressive decoding: a file decoded to 16 kHz mono float32 block by block (memory stays flat)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from artalk_core.audio.decode import (
    _decoded_pieces,
    _DecodeState,
    _describe,
    _end_notes,
    _mono_16k,
    _non_finite,
    _open_container,
    _open_source,
)
from artalk_core.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.errors import AudioError, InputError
from artalk_core.fileio import PathLike


class AudioStream:
    """A file decoded progressively to 16 kHz mono float32, in blocks (see :func:`iter_audio`).

    Known at once: ``name``, ``sha256`` (of the file's bytes), ``source_rate``, ``source_channels``,
    ``source_format``. Iterating yields float32 [block] arrays (the last one shorter) whose
    concatenation is ``load_audio(source).samples`` bit for bit; the stream can be iterated once.
    After exhaustion ``num_samples``, ``decode_warnings`` and ``sum_squares`` (float64 energy, for
    :meth:`is_silent`) are final. The errors of :func:`load_audio` about the decoded samples (none
    decodable, NaN/Inf, too short) are raised by the iteration: too short before any block is
    yielded, NaN/Inf as soon as the decoder meets one (so a caller's length cap or cancel check
    between blocks is always reached), nothing decodable at the end.
    """

    def __init__(self, source: PathLike | bytes, *, block: int = 64000, min_frames: int = 1,
                 label: str | None = None, formats: tuple[str, ...] | None = None) -> None:
        if isinstance(block, bool) or int(block) < 1:
            raise InputError(f"block must be a positive number of samples, got {block!r}")
        self.block = int(block)
        self.name = label or _describe(source)
        self._min_frames = int(min_frames)
        self._src, self.sha256 = _open_source(source, self.name)
        (self._container, self._stream, rate, self.source_channels,
         self.source_format) = _open_container(self._src, self.name, formats)
        self.source_rate: int = rate
        self.expected_samples = self._expected_samples()
        """16 kHz samples the container announces (for progress; None when it does not say)."""
        self.num_samples: int | None = None
        self.decode_warnings: tuple[str, ...] = ()
        self.sum_squares = 0.0
        self._started = False

    def _expected_samples(self) -> int | None:
        st, c = self._stream, self._container
        try:
            if st.duration and st.time_base:
                return int(float(st.duration * st.time_base) * SAMPLE_RATE)
            if c.duration:
                return int(c.duration / 1_000_000 * SAMPLE_RATE)
        except (TypeError, ValueError, OverflowError):
            pass
        return None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._started:
            raise InputError(f"the audio stream of {self.name} can be read only once")
        self._started = True
        return self._blocks()

    def close(self) -> None:
        """Release the decoder (done by itself at the end of the iteration)."""
        self._container.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_silent(self, threshold_db: float = -60.0) -> bool:
        """:func:`is_silent` of the whole signal, from the energy summed while iterating."""
        n = self.num_samples or 0
        if n == 0:
            return True
        rms = math.sqrt(self.sum_squares / n)
        return rms <= 0.0 or 20.0 * math.log10(rms) < threshold_db

    def _blocks(self) -> Iterator[np.ndarray]:
        need = max(self._min_frames, 0) * SAMPLES_PER_FRAME
        st = _DecodeState()
        pending: list[np.ndarray] = []
        held = total = yielded = 0
        with self._container:
            for y in _mono_16k(_decoded_pieces(self._container, self._stream, self.source_rate, st), self.name):
                if not len(y):
                    continue
                error = _non_finite(y, self.name, total)
                if error is not None:
                    # At once: decoding on would not yield, so neither a length cap nor a cancel
                    # check between blocks would be reached (a NaN then hours of packed silence).
                    raise error
                total += len(y)
                y64 = y.astype(np.float64)
                self.sum_squares += float(np.dot(y64, y64))
                pending.append(y)
                held += len(y)
                if held >= self.block and (yielded or held >= need):
                    buf = np.concatenate(pending)
                    cut = len(buf) - len(buf) % self.block
                    for i in range(0, cut, self.block):
                        yield buf[i:i + self.block]
                    yielded += cut
                    pending, held = ([buf[cut:]] if cut < len(buf) else []), len(buf) - cut
            warnings = _end_notes(st, self._stream, self.name, self.source_format, self._src)
        if not self.source_rate and st.runs:
            self.source_rate = st.runs[0][0]
        self.decode_warnings = tuple(warnings)
        if total == 0 or total < need:
            raise AudioError(f"{self.name} is too short: {total / SAMPLE_RATE * 1000:.1f} ms of audio, "
                             f"at least {need / SAMPLE_RATE * 1000:.0f} ms ({self._min_frames} motion frame(s)) needed")
        self.num_samples = total
        if held:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def iter_audio(source: PathLike | bytes, *, block: int = 64000, min_frames: int = 1,
               label: str | None = None, formats: tuple[str, ...] | None = None) -> AudioStream:
    """Decode ``source`` progressively: an :class:`AudioStream` of float32 [block] 16 kHz mono blocks.

    The concatenated blocks equal ``load_audio(source, min_frames=min_frames).samples`` bit for
    bit (resampling included, see :class:`artalk_core.audio.resample.BlockResampler`), and the stream's facts and warnings
    are the :class:`Audio` ones. Errors about the file itself (missing, empty, not audio, no audio
    track) are raised here; those about its samples while iterating (see :class:`AudioStream`).
    Memory is a few blocks whatever the length; a path is hashed up front (a second read), while
    stdin and bytes are held whole as :func:`load_audio` holds them (a container may need to seek).
    ``label`` names the source in messages (e.g. ``<stdin>`` for a spooled copy of stdin).
    ``formats``: the only FFmpeg demuxers to accept (e.g. ``("wav", "flac")``; None: any), for a
    server decoding uploads (a playlist would make FFmpeg read the server's own files).
    """
    return AudioStream(source, block=block, min_frames=min_frames, label=label, formats=formats)




__all__ = ["AudioStream", "iter_audio"]
