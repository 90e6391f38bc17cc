"""`artalk batch`: many clips, each worker loading the model once and keeping it for all its clips.

Backends: ``local`` runs the clips in this process (one worker) or in a pool of processes, each
with ``cores // workers`` torch threads; ``ray`` runs one actor per worker on a Ray cluster (see
:mod:`artalk_core.batch.ray_backend`). Whatever the backend, a bad row fails that clip only, the
results file is written at the end (also after Ctrl-C, with the unfinished clips marked
``interrupted``), and every output is written atomically.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core.batch.clip import ClipResult, WorkerConfig, run_clip
from artalk_core.batch.jobs import Job, load_jobs
from artalk_core.constants import BATCH_RESULTS_NAME
from artalk_core.errors import InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output

BACKENDS: tuple[str, ...] = ("local", "ray")


@dataclass
class BatchStatus:
    """Counts shown while a batch runs."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed


@dataclass
class BatchSummary:
    """What a batch did: one result per job, in job order, and where the results file is."""

    results: list[ClipResult]
    results_file: Path
    seconds: float
    workers: int
    backend: str
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[ClipResult]:
        return [r for r in self.results if r.status in ("failed", "interrupted")]


StatusFn = Callable[[BatchStatus], None]


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where there is one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(workers: int | None, threads: int | None, *, jobs: int, device: str = "auto") -> tuple[int, int]:
    """(workers, torch threads per worker) with workers x threads <= cores.

    By default one worker per two cores on a CPU (a single clip's model does not use many cores
    well), one worker on a GPU device (the model is loaded once per worker), never more workers
    than clips.
    """
    cores = cpu_count()
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    if workers is None:
        workers = 1 if device.startswith("cuda") else max(1, cores // (threads or 2))
    workers = max(1, min(workers, jobs))
    if threads is None:
        threads = max(1, cores // workers)
    return workers, threads


def _init_worker(threads: int) -> None:
    """In a pool process: the torch thread budget; Ctrl-C belongs to the parent, SIGTERM unwinds."""
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Raising (not dying) on SIGTERM lets the atomic writers remove their temporary files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _pool_task(args: tuple[Job, WorkerConfig]) -> ClipResult:
    return run_clip(*args)


def _run_local(jobs: list[Job], cfg: WorkerConfig, workers: int, threads: int) -> Iterator[ClipResult]:
    if workers == 1:
        for job in jobs:
            yield run_clip(job, cfg)
        return
    import multiprocessing

    # spawn, not fork: torch's thread pools and locks do not survive a fork.
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(threads,))
    try:
        yield from pool.imap_unordered(_pool_task, [(j, cfg) for j in jobs], chunksize=1)
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM: each worker unwinds, removing its temporary files
        raise
    finally:
        pool.join()


def write_results(path: Path, results: Iterable[ClipResult]) -> None:
    """The results file: one JSON object per clip (schema ``batch-results``), written atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(r.as_dict(), sort_keys=True, default=str) + "\n")


def run(jobs: PathLike | list[Mapping[str, Any]] | list[Job], *, output_dir: PathLike, workers: int | None = None,
        threads: int | None = None, backend: str = "local", ray_address: str | None = None,
        gpus_per_worker: float = 0.0, defaults: Mapping[str, Any] | None = None, assets: PathLike | None = None,
        checkpoint: PathLike | None = None, model_config: PathLike | None = None, device: str = "auto",
        force: bool = False, on_status: StatusFn | None = None,
        on_result: Callable[[ClipResult], None] | None = None) -> BatchSummary:
    """Make every clip of ``jobs`` into ``output_dir``; return the results (also written to
    ``output_dir/results.jsonl``).

    ``jobs``: a CSV/TSV/JSONL file, a folder of audio files, a list of row mappings, or Jobs.
    ``defaults``: options for rows that do not set them (``style``, ``engine``, ``outputs``...).
    A rerun skips clips whose outputs are current (``force`` remakes them). On Ctrl-C the workers
    stop, the results file marks unfinished clips ``interrupted``, and KeyboardInterrupt is raised.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{backend}': choose {' or '.join(BACKENDS)}")
    if gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker must not be negative, got {gpus_per_worker}")
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    job_list: list[Job]
    if isinstance(jobs, list) and jobs and all(isinstance(j, Job) for j in jobs):
        job_list = [j for j in jobs if isinstance(j, Job)]
    else:
        job_list = load_jobs(jobs, defaults=defaults)  # type: ignore[arg-type]
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror}") from None
    cfg = WorkerConfig(output_dir=str(out.resolve()), assets=None if assets is None else str(assets),
                       checkpoint=None if checkpoint is None else str(checkpoint),
                       model_config=None if model_config is None else str(model_config), device=device, force=force)
    start = time.perf_counter()
    runnable = [j for j in job_list if j.error is None]
    n_workers, n_threads = plan_workers(workers, threads, jobs=max(1, len(runnable)), device=device)
    status = BatchStatus(total=len(job_list))
    results: dict[int, ClipResult] = {}

    def finish(res: ClipResult) -> None:
        results[id_of[res.row]] = res
        if res.status == "done":
            status.done += 1
        elif res.status == "skipped":
            status.skipped += 1
        else:
            status.failed += 1
        status.running = min(n_workers, len(job_list) - status.finished)
        if on_result is not None:
            on_result(res)
        if on_status is not None:
            on_status(status)

    id_of = {j.row: i for i, j in enumerate(job_list)}
    for job in job_list:
        if job.error is not None:  # an unusable row fails at once, without a worker
            finish(run_clip(job, cfg))
    status.running = min(n_workers, len(runnable))
    if on_status is not None:
        on_status(status)
    interrupted = False
    plan = {"workers": n_workers}
    try:
        if backend == "ray":
            from artalk_core.batch.ray_backend import run_ray

            stream = run_ray(runnable, cfg, workers=workers, threads=threads, gpus_per_worker=gpus_per_worker,
                             address=ray_address, plan=plan)
        else:
            stream = _run_local(runnable, cfg, n_workers, n_threads)
        for res in stream:
            finish(res)
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
    ordered = [results.get(i) or ClipResult(row=j.row, name=j.name, status="interrupted",
                                            error="the batch was interrupted", options=dict(j.options))
               for i, j in enumerate(job_list)]
    results_file = out / BATCH_RESULTS_NAME
    write_results(results_file, ordered)
    counts = {s: sum(r.status == s for r in ordered) for s in ("done", "skipped", "failed", "interrupted")}
    summary = BatchSummary(results=ordered, results_file=results_file, seconds=time.perf_counter() - start,
                           workers=plan["workers"], backend=backend, interrupted=interrupted, counts=counts)
    if interrupted:
        _sweep_partials(out)
        raise KeyboardInterrupt
    return summary


def _sweep_partials(out: Path) -> None:
    """Remove temporary files that killed workers could not remove themselves (never a finished output)."""
    for tmp in [*out.glob(".*.part*"), *out.glob("**/.*.part*")]:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
