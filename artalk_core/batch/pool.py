"""The local backend's process pool: one spawned process per worker, each loading the model once.

Written here rather than taken from the standard library for a stated reason:
``multiprocessing.Pool`` never notices a worker killed by SIGKILL (the out-of-memory killer): its
clip never returns and the batch waits forever. ``concurrent.futures.ProcessPoolExecutor``
notices, but a dead worker breaks the whole executor: every clip in flight fails with
BrokenProcessPool and nothing says which clip the dead worker was making, so innocent clips
would fail with it. Here each worker has its own pipe and is watched through its process
sentinel: a lost worker costs exactly the clip it was making (tried again once on a fresh worker,
then failed), a replacement takes its place, and the batch goes on to its results file.

Stopping: on Ctrl-C or SIGTERM the parent sends every worker SIGTERM (which unwinds it like an
interrupt: its temporary files are removed), waits up to ``BATCH_STOP_GRACE_S``, then kills what is
left. Workers ignore SIGINT: a terminal's Ctrl-C goes to the whole process group, and the parent
decides. Only pipes are shared (no semaphores), so nothing is left for the resource tracker to
warn about.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artalk_core.batch.clip import ClipResult, WorkerConfig, lost_result, partial_files, run_clip
from artalk_core.batch.jobs import Job
from artalk_core.constants import BATCH_CLIP_TRIES, BATCH_STOP_GRACE_S


def init_worker(threads: int) -> None:
    """In a worker process: the torch thread budget; Ctrl-C belongs to the parent, SIGTERM unwinds
    (:func:`artalk_core.interrupt.stop_signals`, entered by the worker's loop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent while starting us
    import torch

    torch.set_num_threads(threads)


def _serve(conn: Any, threads: int) -> None:
    """A worker's life: clips in, results out, until the parent sends None or goes away."""
    from artalk_core.errors import Interrupted
    from artalk_core.interrupt import stop_signals

    try:
        init_worker(threads)
        with stop_signals(("SIGTERM",)):
            while True:
                try:
                    task = conn.recv()
                except EOFError:
                    return
                if task is None:
                    return
                conn.send(run_clip(*task))
    except (Interrupted, BrokenPipeError):
        return  # stopped by the parent (its temporary files are gone), or the parent is gone


@dataclass
class _Worker:
    process: Any
    conn: Any
    job: Job | None = None
    index: int = -1
    started: float = 0.0


def _start(ctx: Any, threads: int) -> _Worker:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, threads), daemon=True)
    # The child inherits the signal mask: SIGINT stays blocked until it has chosen to ignore it, so
    # a Ctrl-C while it starts cannot print a traceback from inside it.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    child.close()
    return _Worker(process=process, conn=parent)


def _how_it_died(process: Any) -> str:
    process.join(1.0)
    code = process.exitcode
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ", perhaps by the out-of-memory killer" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"


def run_pool(jobs: list[Job], cfg: WorkerConfig, workers: int, threads: int) -> Generator[ClipResult, None, None]:
    """Yield each clip's result as a worker finishes it (in no particular order)."""
    import multiprocessing
    from multiprocessing.connection import wait

    # spawn, not fork: torch's thread pools and locks do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    queue: deque[int] = deque(range(len(jobs)))
    tries = [0] * len(jobs)
    live: list[_Worker] = []
    try:
        while queue or any(w.job is not None for w in live):
            while queue and len(live) < workers:
                live.append(_start(ctx, threads))
            for w in live:
                if w.job is None and queue:
                    w.index = queue.popleft()
                    w.job, w.started = jobs[w.index], time.perf_counter()
                    try:
                        w.conn.send((w.job, cfg))
                    except (BrokenPipeError, OSError):
                        pass  # it died idle: its sentinel says so below
            busy = [w for w in live if w.job is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                result, dead = None, w.process.sentinel in ready
                try:
                    if w.conn.poll():
                        result = w.conn.recv()
                except (EOFError, OSError):  # its end of the pipe closed: it is gone
                    dead = True
                if isinstance(result, ClipResult):
                    w.job = None
                    yield result
                    continue
                if not dead:
                    continue
                # the worker died making this clip
                job, index = w.job, w.index
                assert job is not None
                how = _how_it_died(w.process)
                w.conn.close()
                live.remove(w)
                for tmp in partial_files(job, Path(cfg.output_dir)):  # it could not remove them itself
                    tmp.unlink(missing_ok=True)
                tries[index] += 1
                if tries[index] < BATCH_CLIP_TRIES:
                    queue.appendleft(index)
                else:
                    yield lost_result(job, f"the worker process making this clip died: {how}", tries[index],
                                      time.perf_counter() - w.started)
            for w in [w for w in live if w.job is None and not queue]:
                _finish(w)  # nothing left for it: its memory goes back now
                live.remove(w)
    finally:
        _stop_all(live)


def _finish(w: _Worker) -> None:
    """End an idle worker: ask it to leave, kill it if it does not."""
    try:
        w.conn.send(None)
    except (BrokenPipeError, OSError):
        pass
    w.process.join(BATCH_STOP_GRACE_S)
    if w.process.is_alive():
        w.process.kill()
        w.process.join()
    w.conn.close()


def _stop_all(live: list[_Worker]) -> None:
    """Stop every worker now: SIGTERM (each unwinds, removing its temporary files), a grace period,
    then SIGKILL for any still there. A second interrupt while waiting kills them at once."""
    for w in live:
        if w.process.is_alive():
            w.process.terminate()
    deadline = time.monotonic() + BATCH_STOP_GRACE_S
    try:
        for w in live:
            w.process.join(max(0.0, deadline - time.monotonic()))
    finally:
        for w in live:
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()
