"""A live session: speech in as it is spoken (PCM bytes, any piece size, any rate), motion out as it is made.

:class:`LiveSession` is the stateful feed/finish streamer behind ``artalk serve`` (one per
WebSocket stream) and ``artalk generate --stream`` (one per run). It is built from the pieces the
offline path uses, so its frames are ``artalk generate``'s bit for bit:

- :class:`~artalk_core.audio.pcm.PcmDecoder`: bytes -> float as FFmpeg converts them, each channel
  resampled to 16 kHz as ``torchaudio`` does (block by block, same numbers), channels averaged;
- the engine's live stream (:func:`~artalk_core.live.adapter.open_engine_stream`): whole blocks in
  (the model's 4-s chunks, the energy engine's 40-ms frames), raw frames out as soon as final;
- :class:`~artalk_core.generation.MotionSink`: causal post-processing (4 frames of delay), the clip
  length, the metadata; written as motion-stream lines
  (:class:`~artalk_core.formats.motion_stream.MotionStreamWriter`).

Threads: :meth:`feed` and :meth:`end` only queue bytes (cheap, any thread: an event loop);
:meth:`take` (decode what arrived, cut the engine's input) and :meth:`compute` (the engine, the
sink) run in one worker thread at a time (:mod:`artalk_core.live.scheduler`), and return the lines
to send. Memory: the bytes not yet taken, less than one engine block of decoded audio, the engine's
own state (the model's previous-chunk context) and 9 frames of post-processing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.audio.pcm import PcmDecoder, PcmLayout, ready_estimate
from artalk_core.constants import CHUNK_SAMPLES, SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.errors import ArtalkError, AudioError
from artalk_core.live.adapter import open_engine_stream

if TYPE_CHECKING:
    from artalk_core.engines.base import MotionEngine
    from artalk_core.generation import MotionSink
    from artalk_core.styles import Style


class _Lines:
    """A binary file object collecting the NDJSON lines a writer writes; :meth:`drain` takes them."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> list[str]:
        text = b"".join(self._parts).decode("utf-8")
        self._parts = []
        return text.splitlines()


class _LinesTarget:
    """A :class:`~artalk_core.generation.MotionTarget` writing motion-stream lines into ``_Lines``."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        self.writer.write_frames(frames)

    def finish(self, meta: dict[str, Any]) -> int:
        self.writer.end(**meta)
        return int(self.writer.frames)

    def close(self, error: BaseException | None) -> None:
        pass  # errors are written by LiveSession.fail (a session outlives a failed step only to say why)


@dataclass
class LiveWork:
    """The engine's input one :meth:`LiveSession.compute` takes: ``audio`` whole blocks float32
    [k * block], and at the end ``rest`` (the last samples, fewer than a block) and ``total`` (the
    utterance's 16 kHz samples). :meth:`LiveSession.model_chunks` names the model chunks it will
    encode, for a scheduler that encodes several streams' chunks in one call."""

    audio: np.ndarray
    rest: np.ndarray | None = None
    total: int | None = None
    ready_at: float = 0.0
    """When the last byte this work needs arrived (``time.perf_counter``): the start of its lag."""

    @property
    def final(self) -> bool:
        return self.total is not None


class LiveSession:
    """One live stream (see the module docstring).

    ``engine``/``style``: what generates; ``layout``: the PCM arriving (any rate, channels, format);
    ``raw``/``clip_length`` (resolved: None = all)/``fix_pose``: post-processing as ``generate``;
    ``meta``: the header's metadata (:func:`~artalk_core.generation.motion_metadata`). The header
    line is :attr:`header`; :meth:`compute` returns the frame lines, then the end line (or, after
    :meth:`fail`, an error line) once the stream is over (:attr:`done`).
    """

    def __init__(self, engine: MotionEngine, style: Style, layout: PcmLayout, *, meta: Mapping[str, str],
                 raw: bool = False, clip_length: int | None = None, fix_pose: bool = False,
                 name: str = "<live>") -> None:
        from artalk_core.formats.motion_stream import MotionStreamWriter
        from artalk_core.generation import MotionSink
        from artalk_core.postprocess import SMOOTH_DELAY

        self.name = name
        self.layout = layout
        self.decoder = PcmDecoder(layout, name=name)
        self.stream = open_engine_stream(engine, style)
        self.meta = dict(meta)
        self._out = _Lines()
        delay = (0 if raw else SMOOTH_DELAY) + int(self.stream.lookahead_frames)
        writer = MotionStreamWriter(self._out, self.meta, delay_frames=delay,
                                    block_frames=max(1, self.stream.block_samples // SAMPLES_PER_FRAME))
        self.header: str = self._out.drain()[0]
        self._target = _LinesTarget(writer)
        self.sink: MotionSink[int] = MotionSink(self._target, raw=raw, clip_length=clip_length, fix_pose=fix_pose)
        self._lock = threading.Lock()
        self._inbox: list[bytes] = []
        self._inbox_bytes = 0
        self._last_arrival = 0.0
        self._ended = False  # end() was called
        self._end_fields: dict[str, str] | None = None
        self._final_taken = False
        self._audio = np.zeros(0, np.float32)  # decoded, not yet given to the engine
        self.done = False
        self.error: BaseException | None = None
        """Why the stream failed (after :meth:`fail`)."""
        self.stopped_early = False
        self.compute_seconds = 0.0
        self.first_frame_at: float | None = None

    # ---- any thread ------------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Queue PCM bytes (any size; a sample may be split across pieces). Ignored once ended."""
        if not data:
            return
        with self._lock:
            if self._ended or self.done:
                return
            self._inbox.append(bytes(data))
            self._inbox_bytes += len(data)
            self._last_arrival = time.perf_counter()

    def end(self, fields: Mapping[str, str] | None = None) -> None:
        """The speech is over: the rest is computed and the end line written (``fields`` replace the
        end line's defaults, e.g. the sha256 of a whole input file rather than of its PCM bytes)."""
        with self._lock:
            if not self._ended:
                self._ended = True
                self._last_arrival = time.perf_counter()
                self._end_fields = dict(fields) if fields is not None else None

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def ready(self) -> bool:
        """Whether :meth:`take` would find work: a whole engine block has (probably) arrived, or the end."""
        with self._lock:
            if self.done or self._final_taken:
                return False
            if self._ended:
                return True
            pending = len(self._audio) + ready_estimate(self.layout, self._inbox_bytes + self.decoder.dropped_bytes)
        return pending >= self.stream.block_samples

    @property
    def backlog_seconds(self) -> float:
        """Seconds of audio received but not yet computed (what a fast sender has queued)."""
        with self._lock:
            frames = self._inbox_bytes // self.layout.frame_bytes
        return frames / self.layout.rate + len(self._audio) / SAMPLE_RATE

    # ---- the worker thread -----------------------------------------------------------------------
    def take(self) -> LiveWork | None:
        """Decode what arrived and cut the engine's next input (whole blocks; at the end the rest);
        None when no whole block is there yet. Raises AudioError for unusable audio."""
        with self._lock:
            if self.done or self._final_taken:
                return None
            data, self._inbox, self._inbox_bytes = self._inbox, [], 0
            final, arrival = self._ended, self._last_arrival
            if final:
                self._final_taken = True
        parts = [self._audio] + [self.decoder.push(d) for d in data]
        if final:
            parts.append(self.decoder.finish())
        audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
        block = self.stream.block_samples
        whole = len(audio) - len(audio) % block
        self._audio = audio[whole:]
        if not final:
            return LiveWork(audio[:whole], ready_at=arrival) if whole else None
        rest, self._audio = self._audio, np.zeros(0, np.float32)
        return LiveWork(audio[:whole], rest=rest, total=self.decoder.samples, ready_at=arrival)

    def model_chunks(self, work: LiveWork) -> np.ndarray | None:
        """The model chunks [G,64000] ``work`` encodes when the engine's stream encodes chunks (else None)."""
        chunker = getattr(self.stream, "model_chunks", None)
        if chunker is None:
            return None
        chunks: np.ndarray = chunker(work.audio, work.rest, work.total) if work.final else chunker(work.audio)
        return chunks

    def compute(self, work: LiveWork) -> list[str]:
        """Run the engine and post-processing on ``work``; the lines now ready (frames, then the end
        line when the stream is over). Raises ArtalkError (then call :meth:`fail`)."""
        if self.done:
            return []
        t0 = time.perf_counter()
        if len(work.audio):
            self._push(self.stream.push(work.audio))
        if work.final and not self.done:
            total = int(work.total or 0)
            self._check_length(total)
            self._push(self.stream.finish(work.rest if work.rest is not None else np.zeros(0, np.float32), total))
            if not self.done:
                self._end(stopped_early=False)
        self.compute_seconds += time.perf_counter() - t0
        return self._out.drain()

    def _push(self, frames: np.ndarray) -> None:
        if self.done or frames.shape[0] == 0:
            return
        self.sink.push(frames)
        if self.first_frame_at is None and self._target.writer.frames:
            self.first_frame_at = time.perf_counter()
        if self.sink.full:  # the clip is complete: later speech cannot change it
            self._end(stopped_early=True)

    def _check_length(self, total: int) -> None:
        if total == 0:
            raise AudioError(f"{self.name} holds no audio samples" if self.decoder.bytes_in else
                             f"{self.name} is empty (0 bytes of audio)")
        if total < SAMPLES_PER_FRAME:
            raise AudioError(f"{self.name} is too short: {total / SAMPLE_RATE * 1000:.1f} ms of audio, "
                             f"at least {SAMPLES_PER_FRAME / SAMPLE_RATE * 1000:.0f} ms (1 motion frame) needed")

    def _end(self, *, stopped_early: bool) -> None:
        self.stopped_early = stopped_early
        complete = not stopped_early
        fields = {"audio_samples": str(self.decoder.samples) if complete else "",
                  "audio_sha256": self.decoder.sha256 if complete else "", **(self._end_fields or {})}
        chunks = -(-self.sink.pushed // (CHUNK_SAMPLES // SAMPLES_PER_FRAME))
        self.sink.finish({**fields, "stopped_early": stopped_early, "chunks": chunks})
        self._close_stream()

    def fail(self, error: BaseException) -> list[str]:
        """End the stream with an error line (``error``'s message); the lines to send."""
        if not self.done:
            self.error = error
            writer = self._target.writer
            writer.error(str(error) if isinstance(error, ArtalkError) else
                         f"internal error ({type(error).__name__}); the stream was stopped")
            self._close_stream()
        return self._out.drain()

    def _close_stream(self) -> None:
        self.done = True
        self.stream.close()
        self._audio = np.zeros(0, np.float32)

    def close(self) -> None:
        """Abandon the stream (the client went away): free the engine's state; nothing more is sent.
        Call it from the thread that runs :meth:`compute` (the engine's state is not thread-safe)."""
        with self._lock:
            self._inbox, self._inbox_bytes = [], 0
            self._ended = True
        if not self.done:
            self._close_stream()

    @property
    def frames(self) -> int:
        """Frame lines made so far."""
        return int(self._target.writer.frames)


__all__ = ["LiveSession", "LiveWork"]
