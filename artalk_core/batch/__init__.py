"""Batch runs: many clips from a CSV/JSONL jobs file or a folder, on a process pool or a Ray cluster.

>>> from artalk_core.batch import run
>>> summary = run("jobs.csv", output_dir="out", defaults={"engine": "energy"})  # doctest: +SKIP
>>> [(r.name, r.status) for r in summary.results]                              # doctest: +SKIP
"""

from __future__ import annotations

from artalk_core.batch.clip import ClipResult, WorkerConfig, run_clip
from artalk_core.batch.jobs import FIELDS, Job, load_jobs
from artalk_core.batch.runner import BACKENDS, BatchStatus, BatchSummary, plan_workers, run

__all__ = ["BACKENDS", "FIELDS", "BatchStatus", "BatchSummary", "ClipResult", "Job", "WorkerConfig", "load_jobs",
           "plan_workers", "run", "run_clip"]
