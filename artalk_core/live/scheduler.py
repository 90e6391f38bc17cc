"""The live worker: one thread computes every stream's chunks, as soon as they are complete.

Streams are submitted when new audio may have completed an engine block (or when they end); the
worker sleeps on a condition until then (no polling), takes every waiting stream, and computes
them in arrival order: the lag of a chunk is its own compute plus the compute of the chunks that
were already waiting ahead of it, nothing else.

Two modes (``batch``):

- ``batch=1``, the exact mode: each stream's chunk is encoded on its own, exactly as
  ``generate --stream`` encodes it.
- ``batch=N>1``: the model chunks of all the streams waiting at once (and several chunks of one
  stream) are encoded by the audio encoder together, N rows per call; then each stream's
  autoregressive generation runs on its own (it is sequential per stream and holds per-stream
  context). Rows of the encoder are independent (each chunk is normalised on its own, and the
  offline path already encodes 8 chunks per call), so the features are the same numbers where
  the matrix library computes a row the same way whatever the batch size: checked bit for bit on
  this machine's CPU by the tests and by ``scripts/bench_live.py``, which also reports whether it
  holds on a GPU. Batching pays on a GPU; on a CPU the encoder already keeps the cores busy.

The worker owns the engines' state; the event loop only queues bytes (:meth:`LiveSession.feed`)
and receives lines through each job's ``deliver`` callback (called in the worker thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from artalk_core.live.session import LiveSession, LiveWork

log = logging.getLogger("artalk.live")

Deliver = Callable[[list[str], bool], None]
"""``deliver(lines, over)``: the lines a computation made; ``over``: the stream has ended (end or error line sent)."""


@dataclass(eq=False)
class LiveJob:
    """A session in the scheduler and where its lines go (``deliver`` runs in the worker thread)."""

    session: LiveSession
    deliver: Deliver
    queued: bool = False
    running: bool = False
    abandoned: bool = False
    freed: threading.Event = field(default_factory=threading.Event)
    """Set once the worker has released the session (after the end, an error or :meth:`Scheduler.abandon`)."""


@dataclass
class ChunkTiming:
    """One computation: when its input was complete, when its lines were handed over, its compute."""

    ready_at: float
    done_at: float
    compute_s: float
    streams: int

    @property
    def lag_s(self) -> float:
        return self.done_at - self.ready_at


class Scheduler:
    """The worker thread (see the module docstring). ``lock``: held around each round of compute
    (a model shared with another user, e.g. the web app's generator); ``hold``: a context entered
    once in the worker thread for its whole life (the engine's precision cast)."""

    def __init__(self, *, batch: int = 1, lock: Any = None,
                 hold: Callable[[], contextlib.AbstractContextManager[Any]] | None = None) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch = int(batch)
        self._lock = lock
        self._hold = hold
        self._cond = threading.Condition()
        self._queue: deque[LiveJob] = deque()
        self._closing = False
        self.timings: deque[ChunkTiming] = deque(maxlen=100_000)
        """Every computation's timing (the bench reads them; bounded)."""
        self._thread = threading.Thread(target=self._run, name="artalk-live-worker", daemon=True)
        self._thread.start()

    # ---- any thread ------------------------------------------------------------------------------
    def submit(self, job: LiveJob) -> None:
        """Have the worker look at ``job`` (new audio, the end, or its abandonment)."""
        with self._cond:
            if job.queued or job.freed.is_set():
                return
            job.queued = True
            self._queue.append(job)
            self._cond.notify()

    def abandon(self, job: LiveJob) -> None:
        """The stream's client went away: the worker frees the session (after a computation under way)."""
        job.abandoned = True
        self.submit(job)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (a computation under way finishes in its daemon thread)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    # ---- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        with self._hold() if self._hold is not None else contextlib.nullcontext():
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if self._closing:
                        return
                    jobs = list(self._queue)
                    self._queue.clear()
                    for job in jobs:
                        job.queued, job.running = False, True
                try:
                    with self._lock if self._lock is not None else contextlib.nullcontext():
                        self._round(jobs)
                except Exception:  # never lose the worker: a bug in one round fails its streams only
                    log.exception("live worker round failed")
                    for job in jobs:
                        self._finish(job, job.session.fail(RuntimeError("worker failure")))
                finally:
                    for job in jobs:
                        job.running = False
                        if not job.freed.is_set() and (job.abandoned or job.session.ready):
                            self.submit(job)

    def _finish(self, job: LiveJob, lines: list[str]) -> None:
        """The stream is over: hand over its last lines and release it."""
        with contextlib.suppress(Exception):
            job.deliver(lines, True)
        self._free(job)

    def _free(self, job: LiveJob) -> None:
        if not job.freed.is_set():
            job.session.close()
            job.freed.set()

    def _round(self, jobs: list[LiveJob]) -> None:
        works: list[tuple[LiveJob, LiveWork]] = []
        for job in jobs:
            if job.abandoned:
                self._free(job)
                continue
            try:
                work = job.session.take()
            except Exception as e:
                self._finish(job, job.session.fail(e))
                continue
            if work is not None:
                works.append((job, work))
        if not works:
            return
        if self.batch > 1:
            self._encode_together(works)
        for job, work in works:
            if job.freed.is_set():
                continue
            t0 = time.perf_counter()
            try:
                lines = job.session.compute(work)
            except Exception as e:
                if not isinstance(e, _expected_errors()):
                    log.exception("live stream failed")
                self._finish(job, job.session.fail(e))
                continue
            done = time.perf_counter()
            self.timings.append(ChunkTiming(ready_at=work.ready_at, done_at=done, compute_s=done - t0,
                                            streams=len(works)))
            over = job.session.done
            with contextlib.suppress(Exception):
                job.deliver(lines, over)
            if over:
                self._free(job)

    def _encode_together(self, works: list[tuple[LiveJob, LiveWork]]) -> None:
        """Encode the model chunks of every stream in ``works`` in calls of up to ``batch`` rows, and
        hand each stream its features (streams of one engine only; others encode their own)."""
        import torch

        groups: dict[int, list[tuple[LiveJob, np.ndarray]]] = {}
        encoders: dict[int, Any] = {}
        for job, work in works:
            chunks = job.session.model_chunks(work)
            if chunks is not None and chunks.shape[0]:
                encoder = job.session.stream.encoder  # type: ignore[attr-defined]
                groups.setdefault(id(encoder), []).append((job, chunks))
                encoders[id(encoder)] = encoder
        for key, items in groups.items():
            if sum(c.shape[0] for _, c in items) < 2:
                continue  # nothing to share
            stacked = np.concatenate([c for _, c in items])
            try:
                feats = torch.cat([encoders[key].encode(stacked[i:i + self.batch])
                                   for i in range(0, stacked.shape[0], self.batch)])
            except Exception as e:
                for job, _ in items:
                    self._finish(job, job.session.fail(e))
                continue
            start = 0
            for job, chunks in items:
                job.session.stream.provide(feats[start:start + chunks.shape[0]])  # type: ignore[attr-defined]
                start += chunks.shape[0]


def _expected_errors() -> tuple[type[BaseException], ...]:
    from artalk_core.errors import ArtalkError

    return (ArtalkError,)


__all__ = ["ChunkTiming", "Deliver", "LiveJob", "Scheduler"]
