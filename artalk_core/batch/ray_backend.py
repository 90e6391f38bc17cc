"""The Ray backend of `artalk batch`: one actor per worker, each loading the model once.

Without an address a local Ray instance is started (and shut down afterwards); with one
(``HOST:PORT`` of a cluster's head, ``ray://HOST:10001`` through Ray Client, or ``auto``) the
clips run on that cluster. Every node must see the jobs' input files and the output folder at the
same paths (a shared file system): the actors read and write them directly, nothing is shipped
through Ray's object store but the small job records.

An address is checked first (:func:`check_address`): Ray itself retries a silent address for
minutes. An actor that dies (its process killed, its node lost) costs the clip it was making
(tried again once on a fresh actor, then failed); the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from artalk_core.batch.clip import ClipResult, WorkerConfig, lost_result, partial_files, run_clip
from artalk_core.batch.jobs import Job
from artalk_core.constants import BATCH_CLIP_TRIES
from artalk_core.device import cpu_count
from artalk_core.errors import DependencyError, InputError
from artalk_core.text import printable


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


def _effective_address(address: str | None) -> str | None:
    """The address Ray would use: the given one, else ``$RAY_ADDRESS`` (None: start a local instance)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_address(address: str | None, timeout: float) -> None:
    """Fail within ``timeout`` seconds, with one clear error, when nothing answers at the cluster
    address (Ray would retry for minutes); a ``ray://`` address without Ray Client installed is a
    missing dependency. ``auto``/``local`` and no address are left to Ray (they look on this machine)."""
    import socket

    _ray()
    target = _effective_address(address)
    if target is None or target in ("auto", "local"):
        return
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = "", target
    if scheme == "ray":
        try:
            import grpc  # noqa: F401 - Ray Client's transport: what the ray[client] extra adds
        except ImportError:
            raise DependencyError(f"--ray-address {target}: a ray:// address needs Ray Client: "
                                  f"pip install 'ray[client]'") from None
    elif scheme:
        raise InputError(f"--ray-address {target}: use HOST:PORT, ray://HOST:PORT or auto")
    host, colon, port = rest.split("/", 1)[0].rpartition(":")
    if not colon or not host or not port.isdigit():
        raise InputError(f"--ray-address {target}: use HOST:PORT, ray://HOST:PORT or auto")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except TimeoutError:
        raise InputError(f"cannot reach the Ray cluster at {target}: no answer within {timeout:g} s "
                         f"(--ray-timeout)") from None
    except (OSError, OverflowError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InputError(f"cannot reach the Ray cluster at {target}: {reason}") from None
    if scheme != "ray":  # Ray Client (ray://) has its own handshake limit: 3 tries, about 30 s, in Python
        _check_gcs(target, max(0.0, deadline - time.monotonic()), timeout)


def _check_gcs(target: str, seconds: float, timeout: float) -> None:
    """A Ray cluster's head answers at ``target`` within ``seconds``: Ray's own health check, run
    in a child process that is killed at the deadline (or at Ctrl-C). An address that accepts TCP
    but is not a Ray GCS (another service, a hung head) makes Ray retry for minutes inside its C++
    client, where neither a timeout nor a signal reaches it in this process, printing a warning
    every few seconds; the child's are discarded. (`ray health-check` is what KubeRay's probes run;
    a thread would keep retrying, and printing, after the deadline.)"""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "ray.scripts.scripts", "health-check", "--address", target, "--skip-version-check"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise InputError(f"cannot reach the Ray cluster at {target}: it accepts connections, but no Ray cluster "
                         f"answered within {timeout:g} s (--ray-timeout; a head's address is HOST:6379 "
                         f"unless it was started with another --port)") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"the Ray health check failed (exit status {proc.returncode})"
        raise InputError(f"cannot reach the Ray cluster at {target}: {printable(reason)[:300]}")


@contextlib.contextmanager
def _keep_sigterm() -> Iterator[None]:
    """ray.init replaces the SIGTERM handler with sys.exit; keep the caller's (the CLI's clean stop)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_ray(jobs: list[Job], cfg: WorkerConfig, *, workers: int | None, threads: int | None,
            gpus_per_worker: float, address: str | None, plan: dict[str, int] | None = None) -> Generator[ClipResult, None, None]:
    """Yield each clip's result as its actor finishes it; ``plan`` receives the number of workers used."""
    if not jobs:
        return
    ray = _ray()

    started = False
    if not ray.is_initialized():
        target = _effective_address(address)
        kwargs: dict[str, Any] = {"address": target} if target else {"num_cpus": cpu_count()}
        try:
            with _keep_sigterm():
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise InputError(f"cannot reach the Ray cluster at {target}: {e}") from None
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
        queue = list(reversed(range(len(jobs))))
        tries = [0] * len(jobs)
        running: dict[Any, tuple[Any, int, float]] = {}  # task -> (actor, job index, start)

        def submit(actor: Any) -> None:
            if queue:
                index = queue.pop()
                running[actor.run.remote(jobs[index], cfg)] = (actor, index, time.perf_counter())

        for actor in actors:
            submit(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, index, start = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the actor died (killed, out of memory, node lost)
                for tmp in partial_files(jobs[index], Path(cfg.output_dir)):  # it could not remove them
                    tmp.unlink(missing_ok=True)
                with contextlib.suppress(Exception):
                    ray.kill(actor)
                actors.remove(actor)
                actor = actor_cls.remote(threads)
                actors.append(actor)
                tries[index] += 1
                if tries[index] < BATCH_CLIP_TRIES:
                    queue.append(index)
                    submit(actor)
                    continue
                first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
                result = lost_result(jobs[index], f"the Ray worker making this clip failed: {first_line}",
                                     tries[index], time.perf_counter() - start)
            submit(actor)
            yield result
    finally:
        for actor in actors:  # on Ctrl-C too (the runner then removes the temporary files they leave)
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if started:
            ray.shutdown()
