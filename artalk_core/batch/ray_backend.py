"""The Ray backend of `artalk batch`: one actor per worker, each loading the model once.

Without an address a local Ray instance is started (and shut down afterwards); with one
(``ray://host:10001`` or ``auto``) the clips run on that cluster. Every node must see the jobs'
input files and the output folder at the same paths (a shared file system): the actors read and
write them directly, nothing is shipped through Ray's object store but the small job records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from artalk_core.batch.clip import ClipResult, WorkerConfig, run_clip
from artalk_core.batch.jobs import Job
from artalk_core.errors import DependencyError, InputError


class ClipWorker:
    """A Ray actor's body: torch threads set once; the model stays loaded between clips (the
    pipeline caches it per process)."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)

    def run(self, job: Job, cfg: WorkerConfig) -> ClipResult:
        return run_clip(job, cfg)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError("--backend ray needs Ray: pip install 'artalk[ray]'") from None
    return ray


def run_ray(jobs: list[Job], cfg: WorkerConfig, *, workers: int | None, threads: int | None,
            gpus_per_worker: float, address: str | None, plan: dict[str, int] | None = None) -> Iterator[ClipResult]:
    """Yield each clip's result as its actor finishes it; ``plan`` receives the number of workers used."""
    if not jobs:
        return
    ray = _ray()
    from artalk_core.batch.runner import cpu_count

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": cpu_count()}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"cannot reach the Ray cluster at {address}: {e}") from None
        started = True
    actors: list[Any] = []
    try:
        resources = ray.cluster_resources()
        threads = threads or 1
        if workers is None:
            by_cpu = int(resources.get("CPU", 1) // threads)
            by_gpu = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker > 0 else by_cpu
            workers = max(1, min(by_cpu, by_gpu))
        if gpus_per_worker > resources.get("GPU", 0):
            raise InputError(f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has "
                             f"{resources.get('GPU', 0):g} GPU(s)")
        workers = max(1, min(workers, len(jobs)))
        if plan is not None:
            plan["workers"] = workers
        actor_cls = ray.remote(num_cpus=threads, num_gpus=gpus_per_worker)(ClipWorker)
        actors = [actor_cls.remote(threads) for _ in range(workers)]
        queue = list(reversed(jobs))
        running: dict[Any, Any] = {}
        for actor in actors:
            if queue:
                running[actor.run.remote(queue.pop(), cfg)] = actor
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            actor = running.pop(ref)
            if queue:
                running[actor.run.remote(queue.pop(), cfg)] = actor
            yield ray.get(ref)
    finally:
        for actor in actors:  # on Ctrl-C too: the actors' processes end, their temporary files with them
            ray.kill(actor)
        if started:
            ray.shutdown()
