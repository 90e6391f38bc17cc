"""`artalk batch`: many clips, each worker loading the model once and keeping it for all its clips.

Backends: ``local`` runs the clips in this process (one worker) or in a pool of processes, each
with ``cores // workers`` torch threads; ``ray`` runs one actor per worker on a Ray cluster (see
:mod:`artalk_core.batch.ray_backend`). Whatever the backend, a bad row fails that clip only, the
results file is written at the end (also after Ctrl-C, with the unfinished clips marked
``interrupted``), and every output is written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core.batch.clip import (
    ClipResult,
    WorkerConfig,
    partial_files,
    record_path,
    run_clip,
    state_folder,
    targets,
)
from artalk_core.batch.jobs import PATH_FIELDS, Job, load_jobs
from artalk_core.constants import BATCH_RAY_TIMEOUT_S, BATCH_RESULTS_NAME
from artalk_core.device import cpu_count, resolve_device
from artalk_core.errors import InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output, check_not_input, make_folder
from artalk_core.options import ModelOptions

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


def _run_local(jobs: list[Job], cfg: WorkerConfig, workers: int, threads: int) -> Generator[ClipResult, None, None]:
    if workers == 1:
        for job in jobs:
            yield run_clip(job, cfg)
        return
    from artalk_core.batch.pool import run_pool

    yield from run_pool(jobs, cfg, workers, threads)


def write_results(path: Path, results: Iterable[ClipResult]) -> None:
    """The results file: one JSON object per clip (schema ``batch-results``), written atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(r.as_dict(), sort_keys=True, default=str) + "\n")


def _check_options(*, backend: str, gpus_per_worker: float, ray_address: str | None, ray_timeout: float,
                   device: str) -> None:
    """Options of the batch as a whole: an InputError here is one error before any work."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend '{backend}': choose {' or '.join(BACKENDS)}")
    if not gpus_per_worker >= 0:
        raise InputError(f"--gpus-per-worker must not be negative, got {gpus_per_worker}")
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if not 0 < ray_timeout < float("inf"):
        raise InputError(f"--ray-timeout must be a positive number of seconds, got {ray_timeout}")
    name = (device or "auto").strip().lower()
    if name == "auto" or (name.startswith("egl:") and name[4:].isdigit()):  # egl:N: the GL renderer's own
        return

    if backend == "ray" and name.startswith("cuda"):
        import torch

        try:  # the cluster's nodes have the GPUs, not necessarily this machine: check the spelling only
            torch.device(name)
            return
        except (RuntimeError, ValueError):
            pass
    resolve_device(device)


def _check_files(source: object, job_list: list[Job], out: Path, cfg: WorkerConfig) -> None:
    """Before any work: no output of the batch (results file, a clip's files or record) is one of
    its inputs (the jobs file, a file a row names, a row's or the batch's style file, an avatar
    given as a file, the model and head files given or in the asset folder), compared as files
    (hard links and symlinks too); a folder of audio is not its own output folder (the outputs
    would be taken as speech next time); the output folder and its state folder can be made, the
    results file written."""
    from artalk_core.assets import asset_inputs
    from artalk_core.styles import style_file

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() and out.is_dir() \
            and os.path.samefile(source, out):
        raise InputError(f"-o {out} is the folder of audio files itself: the clips' outputs (NAME.mp4) would "
                         f"be taken as speech by the next run; choose another output folder")
    inputs: dict[str, object] = {}
    if isinstance(source, (str, os.PathLike)):
        inputs["JOBS"] = source
    # every asset a clip may read, whether or not a row uses it (a row's own --flame... is a column)
    m = cfg.model
    inputs.update(asset_inputs(m.assets, {"--checkpoint": m.checkpoint, "--model-config": m.model_config,
                                          "--flame": None, "--tracked": None, "--avatar-checkpoint": None}))
    styles: dict[str, Path | None] = {}  # rows mostly share a style: look each up once
    outputs: dict[str, object] = {"the results file": out / BATCH_RESULTS_NAME}
    for job in job_list:
        if job.error is not None:
            continue
        for key in PATH_FIELDS:
            if job.options.get(key):
                inputs[f"{key} of row {job.row}"] = job.options[key]
        style = str(job.options.get("style") or "default")
        if style not in styles:
            styles[style] = style_file(style, assets=m.assets)
        inputs[f"style of row {job.row}"] = styles[style]
        if str(job.options.get("appearance") or "mesh") != "mesh":  # an avatar name, or a tracked entry's file
            inputs[f"appearance of row {job.row}"] = job.options["appearance"]
        for kind, path in targets(job, out).items():
            outputs[f"the {kind} output of row {job.row}"] = path
        outputs[f"the record of row {job.row}"] = record_path(job, out)
    check_not_input(outputs, inputs)
    results = out / BATCH_RESULTS_NAME
    if results.is_dir() or (results.exists() and not results.is_file()):
        raise OutputError(f"cannot write the results file {results}: it is "
                          f"{'a folder' if results.is_dir() else 'not a regular file'}")
    make_folder(out)  # one at a time: each says which of them is in the way
    state_folder(out, "work")


def run(jobs: PathLike | list[Mapping[str, Any]] | list[Job], *, output_dir: PathLike, workers: int | None = None,
        threads: int | None = None, backend: str = "local", ray_address: str | None = None,
        ray_timeout: float = BATCH_RAY_TIMEOUT_S, gpus_per_worker: float = 0.0,
        defaults: Mapping[str, Any] | None = None, model: ModelOptions | None = None,
        force: bool = False, on_status: StatusFn | None = None,
        on_result: Callable[[ClipResult], None] | None = None) -> BatchSummary:
    """Make every clip of ``jobs`` into ``output_dir``; return the results (also written to
    ``output_dir/results.jsonl``).

    ``jobs``: a CSV/TSV/JSONL file (or ``-``, a FIFO), a folder of audio files, a list of row
    mappings, or Jobs. ``defaults``: options for rows that do not set them (``style``, ``engine``,
    ``outputs``...). ``model``: the model files and device every clip uses (a row may set its own
    ``precision``). Bad options, a bad default or an output that is an input raise InputError
    before any work (and before the output folder is made). A rerun skips clips whose outputs are
    current (``force`` remakes them). A worker process that dies (SIGKILL, out of memory) fails its
    clip after one retry; the batch goes on. On Ctrl-C/SIGTERM the workers stop, the results file
    marks the unfinished clips ``interrupted``, and the interrupt is raised again.
    """
    model = model or ModelOptions()
    assets, device = model.assets, model.device
    _check_options(backend=backend, gpus_per_worker=gpus_per_worker, ray_address=ray_address,
                   ray_timeout=ray_timeout, device=device)
    job_list: list[Job]
    if isinstance(jobs, list) and jobs and all(isinstance(j, Job) for j in jobs):
        job_list = [j for j in jobs if isinstance(j, Job)]
    else:
        job_list = load_jobs(jobs, defaults=defaults)  # type: ignore[arg-type]
        if defaults and defaults.get("style"):
            from artalk_core.styles import resolve_style

            resolve_style(str(defaults["style"]), assets=assets)  # a bad --style: one error, not one per row
    out = Path(output_dir)
    runnable = [j for j in job_list if j.error is None]
    n_workers, n_threads = plan_workers(workers, threads, jobs=max(1, len(runnable)), device=device)
    if any(str(j.options.get("engine") or "artalk") == "artalk" for j in runnable):
        from artalk_core.assets import checkpoint_path

        # a missing --checkpoint (or asset folder), a bad --model-config: one error, not one per row
        checkpoint_path(model.checkpoint, assets, model_config=model.model_config)
    if backend == "ray" and runnable:
        from artalk_core.batch.ray_backend import check_address

        check_address(ray_address, ray_timeout)  # seconds, not Ray's minutes of retries
    cfg = WorkerConfig(output_dir=str(out.resolve()), model=model, force=force)
    _check_files(jobs if not isinstance(jobs, list) else None, job_list, out, cfg)
    start = time.perf_counter()
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
    stop: BaseException | None = None
    plan = {"workers": n_workers}
    stream: Generator[ClipResult, None, None]
    if backend == "ray":
        from artalk_core.batch.ray_backend import run_ray

        stream = run_ray(runnable, cfg, workers=workers, threads=threads, gpus_per_worker=gpus_per_worker,
                         address=ray_address, plan=plan)
    else:
        stream = _run_local(runnable, cfg, n_workers, n_threads)
    try:
        # closing: an exception raised here, outside the generator (an on_result that stops, a
        # signal landing in the progress bar), must stop the workers now, not when it is collected
        with contextlib.closing(stream):
            for res in stream:
                finish(res)
    except BaseException as e:  # Ctrl-C, SIGTERM (Interrupted), an error of the backend: results first
        stop = e
    why = "the batch was interrupted" if isinstance(stop, (KeyboardInterrupt, SystemExit)) else \
        f"the batch stopped: {stop}"
    ordered = [results.get(i) or ClipResult(row=j.row, name=j.name, status="interrupted", error=why,
                                            options=dict(j.options))
               for i, j in enumerate(job_list)]
    if stop is not None:
        from artalk_core.interrupt import clear_interrupt

        # The interrupt is handled here: forget it, or the results file's commit would raise it again.
        clear_interrupt()
        for job in job_list:
            if results.get(id_of[job.row]) is None:
                for tmp in partial_files(job, out):
                    tmp.unlink(missing_ok=True)
    results_file = out / BATCH_RESULTS_NAME
    write_results(results_file, ordered)
    counts = {s: sum(r.status == s for r in ordered) for s in ("done", "skipped", "failed", "interrupted")}
    summary = BatchSummary(results=ordered, results_file=results_file, seconds=time.perf_counter() - start,
                           workers=plan["workers"], backend=backend, interrupted=stop is not None, counts=counts)
    if stop is not None:
        raise stop
    return summary
