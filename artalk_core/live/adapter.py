"""Any motion engine fed live: its ``motion`` generator run in a helper thread, fed as audio arrives.

Engines that can make frames from the audio heard so far offer ``open_stream`` (the built-in
``artalk`` and ``energy`` engines do; see :class:`artalk_core.engines.base.StreamingEngine`). For any
other registered engine, :class:`ThreadedEngineStream` runs :meth:`MotionEngine.motion` in a thread
whose speech blocks until the next 4-s chunk is pushed; :meth:`push` returns once the engine has
taken the chunk and has nothing more to say without the next one, so its frames are the engine's
offline frames, given as early as the engine yields them (an engine that reads all of its audio
first gives everything at the end).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import CHUNK_SAMPLES, MOTION_DIM
from artalk_core.engines.speech import Speech
from artalk_core.timing import num_frames

if TYPE_CHECKING:
    from artalk_core.engines.base import EngineStream, MotionEngine
    from artalk_core.styles import Style

_END = object()


class _FedSpeech(Speech):
    """The speech the engine thread reads: blocks as they are pushed; tells when it waits for more."""

    def __init__(self, stream: ThreadedEngineStream) -> None:
        self._stream = stream
        self.total: int | None = None

    def audio_blocks(self) -> Iterator[np.ndarray]:
        taken = 0
        while True:
            self._stream._out.put(("waiting", taken))
            item = self._stream._in.get()
            if item is _END:
                return
            taken += 1
            yield item

    def frames(self) -> int:
        return num_frames(self.total or 0)

    def facts(self) -> dict[str, str]:
        return {"audio_sha256": "", "audio_samples": "" if self.total is None else str(self.total)}


class ThreadedEngineStream:
    """An :class:`~artalk_core.engines.base.EngineStream` over any engine's ``motion`` (see the module)."""

    block_samples = CHUNK_SAMPLES
    lookahead_frames = 0

    def __init__(self, engine: MotionEngine, style: Style) -> None:
        self._engine, self._style = engine, style
        self._in: queue.Queue[Any] = queue.Queue()
        self._out: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._speech = _FedSpeech(self)
        self._fed = 0
        self._thread: threading.Thread | None = None
        self._over = False

    def _run(self) -> None:
        try:
            for block in self._engine.motion(self._speech, self._style):
                self._out.put(("frames", np.asarray(block, dtype=np.float32)))
            self._out.put(("done", None))
        except BaseException as e:  # handed to the caller of push/finish
            self._out.put(("error", e))

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"artalk-engine-{self._engine.name}", daemon=True)
            self._thread.start()

    def _collect(self, *, final: bool) -> np.ndarray:
        """The frames the engine yields until it waits for the block after the last one fed (or ends)."""
        frames: list[np.ndarray] = []
        while not self._over:
            kind, value = self._out.get()
            if kind == "frames":
                frames.append(value)
            elif kind == "waiting":
                if value == self._fed and not final:
                    break
            elif kind == "done":
                self._over = True
            else:
                self._over = True
                raise value
        return np.concatenate(frames) if frames else np.zeros((0, MOTION_DIM), np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._start()
        for i in range(0, len(samples), CHUNK_SAMPLES):
            self._in.put(samples[i:i + CHUNK_SAMPLES])
            self._fed += 1
        return self._collect(final=False)

    def finish(self, samples: np.ndarray, total_samples: int) -> np.ndarray:
        self._start()
        if len(samples):
            self._in.put(samples)
            self._fed += 1
        self._speech.total = int(total_samples)
        self._in.put(_END)
        return self._collect(final=True)

    def close(self) -> None:
        if self._thread is not None and not self._over:
            self._speech.total = self._speech.total or 0
            self._in.put(_END)  # the engine thread ends by itself; what it still makes is dropped
        self._over = True


def open_engine_stream(engine: MotionEngine, style: Style) -> EngineStream:
    """The engine's own live stream (``open_stream``), else a :class:`ThreadedEngineStream`."""
    opener = getattr(engine, "open_stream", None)
    if callable(opener):
        stream: EngineStream = opener(style)
        return stream
    return ThreadedEngineStream(engine, style)


__all__ = ["ThreadedEngineStream", "open_engine_stream"]
