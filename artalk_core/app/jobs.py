"""Per-job folders of the web app and their cleanup.

Everything the app writes lives under one private root folder (``mkdtemp``, mode 0700), in Gradio's
upload/output cache (``GRADIO_TEMP_DIR`` points there): the uploads, and ``jobs/<random id>/``, one
folder per generation. Results are written inside the cache so that Gradio serves them as they
are: a file outside it is hashed and copied in on the event loop when delivered (measured: 0.5 s
with every page frozen, for 50 MB of results from 30 s of speech). A job's scratch files
(``work/``) go as soon as it ends; its results ``keep_seconds`` after it finished (as Gradio's
``delete_cache`` ages the uploads), by a janitor thread. :meth:`JobStore.close` removes the whole
root: the server calls it on the way out, for Ctrl+C and SIGTERM alike.

Cancelling: when Gradio cancels an event (the page's Cancel button, ``Job.cancel()`` in
gradio_client) the job's flag is set, and the page's Cancel also marks the running job of its
browser session; the job's progress callback then raises :class:`Cancelled`, so the worker thread
stops at its next progress report instead of finishing a generation nobody waits for.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


class Cancelled(Exception):
    """Raised inside a job (from its progress callback) once it was cancelled or the server stops.

    ``shutdown``: the server is stopping (the visitor did not cancel; the message says so).
    """

    def __init__(self, *, shutdown: bool = False) -> None:
        super().__init__("the server is shutting down" if shutdown else "cancelled")
        self.shutdown = shutdown


@dataclass
class Job:
    """One generation: its folder, its browser session and its cancel flag."""

    id: str
    dir: Path
    session: str
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def work(self) -> Path:
        """Scratch folder (uploads copied in, decoded speech, intermediates): removed when the job ends."""
        return self.dir / "work"


class JobStore:
    """The app's private root folder, its job folders, expiry and shutdown cleanup."""

    def __init__(self, *, keep_seconds: float = 3600.0, cache_seconds: float = 3600.0,
                 sweep_seconds: float | None = None, parent: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="artalk-app-", dir=parent))
        self.cache = self.root / "cache"
        """Gradio's file cache (uploads, served files, and the job folders)."""
        self.cache.mkdir()
        self.jobs_dir = self.cache / "jobs"
        """The job folders (``<id>/``, each with its ``work/``)."""
        self.keep_seconds = float(keep_seconds)
        self.cache_seconds = float(cache_seconds)
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        interval = sweep_seconds if sweep_seconds is not None else min(max(self.keep_seconds / 4, 0.5), 60.0)
        self._janitor = threading.Thread(target=self._sweep, args=(interval,), name="artalk-app-janitor",
                                         daemon=True)
        self._janitor.start()

    def new(self, session: str, cancel: threading.Event | None = None) -> Job:
        """A fresh job folder for one generation of ``session`` (a browser tab or API client).

        ``cancel``: the job's cancel flag, when the caller already holds one (set when Gradio cancels
        the event, see :func:`artalk_core.app.handlers.gradio_callback`).
        """
        if self.closing.is_set() or (cancel is not None and cancel.is_set()):
            raise Cancelled(shutdown=self.closing.is_set())
        job_id = secrets.token_urlsafe(12)
        job = Job(id=job_id, dir=self.jobs_dir / job_id, session=session)
        if cancel is not None:
            job.cancel = cancel
        job.work.mkdir(parents=True)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def check(self, job: Job) -> None:
        """Raise :class:`Cancelled` when ``job`` was cancelled or the server is stopping."""
        if job.cancel.is_set() or self.closing.is_set():
            raise Cancelled(shutdown=self.closing.is_set())

    def cancel_session(self, session: str) -> int:
        """Mark every unfinished job of ``session`` as cancelled; returns how many."""
        with self._lock:
            running = [j for j in self._jobs.values() if j.session == session and j.finished is None]
        for job in running:
            job.cancel.set()
        return len(running)

    def finish(self, job: Job, *, keep_results: bool) -> None:
        """End a job: drop its scratch files now, and its results too unless they are to be served."""
        job.finished = time.monotonic()
        shutil.rmtree(job.work, ignore_errors=True)
        if not keep_results:
            self._remove(job)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def _remove(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    def expire(self, now: float | None = None) -> list[str]:
        """Remove the folders of jobs that finished ``keep_seconds`` ago or more; returns their ids."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values()
                   if j.finished is not None and now - j.finished >= self.keep_seconds]
        for job in old:
            self._remove(job)
        return [j.id for j in old]

    def sweep_cache(self, now: float | None = None) -> int:
        """Remove what Gradio's ``delete_cache`` does not track: stray files at the top of the cache
        (an upload cut off mid-body leaves its temp file there) and emptied hash folders, once
        ``cache_seconds`` old (by ctime, as Gradio ages its files). Gradio's own files live in hash
        folders and are left to it (it spares the examples, which must outlive any age).
        Returns the number of files removed.
        """
        now = time.time() if now is None else now
        removed = 0
        for path in list(self.cache.iterdir()):
            with contextlib.suppress(OSError):
                old = now - path.lstat().st_ctime >= self.cache_seconds
                if path.is_dir() and not path.is_symlink():
                    if old and not any(path.iterdir()):
                        path.rmdir()
                elif old:
                    path.unlink()
                    removed += 1
        return removed

    def _sweep(self, interval: float) -> None:
        while not self.closing.wait(interval):
            with contextlib.suppress(Exception):  # the janitor must outlive a failed removal
                self.expire()
                self.sweep_cache()

    def stop(self) -> None:
        """Refuse new jobs and make every running one stop at its next progress report."""
        self.closing.set()
        for job in self.jobs():
            job.cancel.set()

    def close(self) -> None:
        """:meth:`stop`, then remove the whole root folder."""
        self.stop()
        self._janitor.join(5.0)
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["Cancelled", "Job", "JobStore"]
