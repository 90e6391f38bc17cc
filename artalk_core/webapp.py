"""`artalk app`: the reference tool's web page (Gradio ``run_gradio_app``) on the standard library.

A :class:`http.server.ThreadingHTTPServer` serves one static page (``artalk_core/data/web/``) and a
small JSON API:

- ``GET  /api/config``: styles, heads, languages, examples, limits and the assets notice.
- ``POST /api/jobs`` (multipart form): ``mode`` (audio|text), ``audio`` (file) or ``example`` (id),
  ``text`` + ``lang``, ``style`` (name) or ``style_file`` (file), ``head`` (id) -> ``{"job_id"}``.
- ``GET  /api/jobs/<id>``: status, stage, progress, queue position, error, result links.
- ``GET  /api/jobs/<id>/<video.mp4|motion.safetensors|motion.pt|vertices.h5>``: a result.
- ``DELETE /api/jobs/<id>``: cancel / forget a job and remove its files.
- ``GET  /api/examples/<id>``: a bundled speech sample.

One worker thread runs the jobs one at a time (the model is loaded once and never shared by two
generations); every job lives in its own folder under one temporary root that is removed at
shutdown, and finished jobs expire. Results are addressed only by an opaque job id and fixed file
names, so nothing else on disk can be read through the app.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from artalk_core.constants import CHECKPOINT_NAME, FLAME_NAME, FPS, IMAGE_SIZE, SAMPLE_RATE
from artalk_core.errors import ArtalkError, InputError
from artalk_core.fileio import PathLike

WEB_DIR = Path(__file__).parent / "data" / "web"
PROJECT_ASSETS = Path(__file__).resolve().parent.parent / "assets"
"""The repository's own ``assets/`` (bundled speech samples), when running from a checkout."""

STATIC_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
RESULT_FILES: dict[str, tuple[str, str]] = {
    # served name -> (content type, download name suffix)
    "video.mp4": ("video/mp4", ".mp4"),
    "motion.safetensors": ("application/octet-stream", ".motion.safetensors"),
    "motion.pt": ("application/octet-stream", "_motions.pt"),
    "vertices.h5": ("application/x-hdf5", ".h5"),
}
# The reference page's language menu (label -> tts code).
LANGUAGE_LABELS: dict[str, str] = {
    "English": "en", "中文": "zh", "日本語": "ja", "Deutsch": "de", "Français": "fr", "Español": "es",
}
MSG_NO_AUDIO = "Please upload an audio file"
MSG_NO_TEXT = "Please input text content"
TEXT_CHARS_PER_SECOND = 25  # generous upper bound of speech rate, to refuse absurd texts before TTS
SHARE_VALUES = ("off",)

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_JOB_PATH_RE = re.compile(r"^/api/jobs/([^/]+)(?:/([^/]+))?$")
_EXAMPLE_PATH_RE = re.compile(r"^/api/examples/([^/]+)$")
_SAFE_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
# Overall progress: where each core stage starts and ends (fractions of the whole job).
_STAGE_SPAN: dict[str, tuple[float, float]] = {
    "tts": (0.0, 0.05), "encode audio": (0.05, 0.25), "generate": (0.25, 0.45),
    "energy engine": (0.05, 0.45), "vertices": (0.45, 0.6), "render": (0.6, 0.97), "encode": (0.6, 0.97),
    "finishing": (0.97, 1.0),
}


class HttpError(Exception):
    """A request the app refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Cancelled(Exception):
    """Raised from the progress callback to stop a job that was deleted or a server shutting down."""


@dataclass
class AppConfig:
    """Settings of one app instance (the ``artalk app`` options)."""

    assets: PathLike | None = None
    device: str = "auto"
    engine: str = "auto"  # auto: the model when <assets>/ARTalk_wav2vec.pt exists, else the energy engine
    tts_engine: str = "espeak"
    max_seconds: float = 60.0
    max_upload_bytes: int = 50 * 1024 * 1024
    size: int = IMAGE_SIZE
    clip_length: int | None = None
    keep_seconds: float = 3600.0  # finished jobs (and their files) are removed this long after finishing
    max_queue: int = 16
    max_finished: int = 32
    examples: list[PathLike] | None = None  # None: *.wav of the asset folder and of the project's assets/
    preload: bool = True


@dataclass
class Head:
    id: str
    label: str
    path: Path | None  # None: resolve_flame's default (FLAME_with_eye.pt, else the stand-in)
    is_standin: bool


@dataclass
class Job:
    """One generation request and its state; files live in ``dir``."""

    id: str
    dir: Path
    mode: str
    audio_path: Path | None
    text: str | None
    lang: str
    style: Any  # a style name or an artalk_core.styles.Style built from an upload
    style_label: str
    head: Head
    name: str  # stem for download names
    status: str = "queued"  # queued | running | done | error | cancelled
    stage: str = ""
    stage_done: int = 0
    stage_total: int = 0
    progress: float = 0.0
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    head_is_standin: bool = False
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


def check_share(share: str) -> None:
    """``--share`` exists for parity with the reference (Gradio share links); only ``off`` works here."""
    if share.strip().lower() not in SHARE_VALUES:
        raise InputError(f"--share {share}: only 'off' is supported (public share links need a tunnel "
                         f"service, which this app does not use); serve on a reachable --host instead")


def _safe_name(text: str, default: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60]
    return name or default


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` -> {field name: (file name or None, bytes)}; the first of repeated fields."""
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the form as multipart/form-data")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise HttpError(HTTPStatus.BAD_REQUEST, "multipart form without a boundary")
    delim = b"--" + boundary.encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    chunks = body.split(delim)
    if len(chunks) < 2:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed multipart form")
    for raw in chunks[1:]:
        if raw.startswith(b"--"):
            break
        if raw.startswith(b"\r\n"):
            raw = raw[2:]
        head, sep, data = raw.partition(b"\r\n\r\n")
        if not sep:
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed multipart form part")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        part = Message()
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                part[key.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        if isinstance(name, str) and name not in fields:
            fields[name] = (filename if isinstance(filename, str) else None, data)
    return fields


class App:
    """The job queue, the worker thread and the file store behind the HTTP handler."""

    def __init__(self, config: AppConfig, *, log: Callable[[str], None] | None = None) -> None:
        from artalk_core.assets import assets_dir

        self.config = config
        self.log = log or (lambda message: None)
        self.assets_dir = assets_dir(config.assets)
        if config.max_seconds <= 0:
            raise InputError(f"--max-seconds must be > 0, got {config.max_seconds}")
        if config.max_upload_bytes <= 0:
            raise InputError(f"--max-upload-mb must be > 0, got {config.max_upload_bytes / 2**20:g}")
        has_model = (self.assets_dir / CHECKPOINT_NAME).is_file()
        has_flame = (self.assets_dir / FLAME_NAME).is_file()
        if config.engine == "auto":
            self.engine = "artalk" if has_model else "energy"
        elif config.engine in ("artalk", "energy"):
            self.engine = config.engine
        else:
            raise InputError(f"unknown engine '{config.engine}': choose auto, artalk or energy")
        if config.preload and self.engine == "artalk":
            from artalk_core.pipeline import load_artalk

            load_artalk(assets=self.assets_dir, device=config.device)  # fail at start, not on the first job
        self.root = Path(tempfile.mkdtemp(prefix="artalk-app-"))
        self.notice = self._notice(has_model, has_flame)
        self.heads = self._find_heads(has_flame)
        self.examples = self._find_examples()
        self.model_lock = threading.Lock()
        """Held by the worker while a job runs: no two generations use the model at once."""
        self._lock = threading.Lock()  # guards the job table
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._work, name="artalk-app-worker", daemon=True)
        self._janitor = threading.Thread(target=self._sweep, name="artalk-app-janitor", daemon=True)
        self._worker.start()
        self._janitor.start()

    # ----- setup -------------------------------------------------------------------------------
    def _notice(self, has_model: bool, has_flame: bool) -> str:
        folder = self.assets_dir.resolve()
        if self.engine == "energy" and not has_model:
            head = "and the stand-in head" if not has_flame else f"(with {FLAME_NAME})"
            return (f"released model not found in {folder}: using the weight-free energy engine {head}"
                    f" (get the released files with `artalk assets download`)")
        if self.engine == "energy":
            return "using the weight-free energy engine (chosen with --engine energy)"
        if not has_flame:
            return f"{FLAME_NAME} not found in {folder}: rendering the stand-in head"
        return ""

    def _find_heads(self, has_flame: bool) -> list[Head]:
        heads = [Head("mesh", f"mesh ({FLAME_NAME})" if has_flame else "mesh (stand-in head)", None,
                      not has_flame)]
        if has_flame:
            from artalk_core.flame import write_standin

            standin = self.root / "standin_head.pt"
            write_standin(standin)
            heads.append(Head("standin", "stand-in head", standin, True))
        if self.assets_dir.is_dir():
            # Other head files in the asset folder: FLAME*.pt / *flame*.pt and the official *.pkl.
            for p in sorted(self.assets_dir.iterdir()):
                if not p.is_file() or p.name in (FLAME_NAME, CHECKPOINT_NAME):
                    continue
                if p.suffix == ".pkl" or (p.suffix == ".pt" and "flame" in p.name.lower()):
                    heads.append(Head(f"file-{len(heads)}", p.stem, p, False))
        return heads

    def _find_examples(self) -> list[tuple[str, str, Path]]:
        if self.config.examples is not None:
            paths = [Path(p) for p in self.config.examples]
        else:
            paths = []
            for folder in (self.assets_dir, PROJECT_ASSETS):
                if folder.is_dir():
                    paths += sorted(folder.glob("*.wav"))
        out: list[tuple[str, str, Path]] = []
        seen: set[Path] = set()
        for p in paths:
            rp = p.resolve()
            if rp in seen or not rp.is_file():
                continue
            seen.add(rp)
            out.append((f"ex{len(out)}", p.name, rp))
        return out

    def styles(self) -> list[str]:
        from artalk_core.assets import available_styles

        return ["default", *available_styles(self.assets_dir)]

    def public_config(self) -> dict[str, Any]:
        return {
            "styles": self.styles(),
            "heads": [{"id": h.id, "label": h.label} for h in self.heads],
            "languages": list(LANGUAGE_LABELS),
            "examples": [{"id": i, "name": n, "url": f"/api/examples/{i}"} for i, n, _ in self.examples],
            "notice": self.notice,
            "engine": self.engine,
            "max_seconds": self.config.max_seconds,
            "max_upload_bytes": self.config.max_upload_bytes,
        }

    # ----- requests ----------------------------------------------------------------------------
    def submit(self, form: dict[str, tuple[str | None, bytes]]) -> Job:
        """Validate a form and queue a job; HttpError (400/503) with the page's message otherwise."""
        from artalk_core.audio import load_audio

        def text_field(name: str, default: str = "") -> str:
            item = form.get(name)
            return item[1].decode("utf-8", errors="replace") if item is not None else default

        mode = text_field("mode", "audio").strip().lower()
        if mode not in ("audio", "text"):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown input mode '{mode}': audio or text")
        head_id = text_field("head", "mesh").strip() or "mesh"
        head = next((h for h in self.heads if h.id == head_id), None)
        if head is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown appearance '{head_id}'")
        style, style_label = self._style(form, text_field("style", "default").strip() or "default")

        audio_bytes: bytes | None = None
        audio_name = "speech"
        text: str | None = None
        lang = "en"
        if mode == "audio":
            upload = form.get("audio")
            example = text_field("example").strip()
            if upload is not None and upload[1]:
                audio_bytes, audio_name = upload[1], upload[0] or "upload"
            elif example:
                match = next((e for e in self.examples if e[0] == example), None)
                if match is None:
                    raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown example '{example}'")
                audio_bytes, audio_name = match[2].read_bytes(), match[1]
            else:
                raise HttpError(HTTPStatus.BAD_REQUEST, MSG_NO_AUDIO)
            try:
                clip = load_audio(audio_bytes)
            except ArtalkError as e:
                raise HttpError(HTTPStatus.BAD_REQUEST,
                                f"unsupported file '{audio_name}': not decodable audio ({e})") from None
            seconds = len(clip.samples) / SAMPLE_RATE
            if seconds > self.config.max_seconds:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"the audio is too long: {seconds:.1f} s "
                                                        f"(at most {self.config.max_seconds:g} s)")
        else:
            text = text_field("text").strip()
            if not text:
                raise HttpError(HTTPStatus.BAD_REQUEST, MSG_NO_TEXT)
            limit = int(self.config.max_seconds * TEXT_CHARS_PER_SECOND)
            if len(text) > limit:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"the text is too long: {len(text)} characters "
                                                        f"(at most {limit}, about {self.config.max_seconds:g} s of speech)")
            lang_label = text_field("lang", "English").strip()
            try:
                from artalk_core.tts import normalize_lang

                lang = normalize_lang(LANGUAGE_LABELS.get(lang_label, lang_label))
            except InputError as e:
                raise HttpError(HTTPStatus.BAD_REQUEST, str(e)) from None

        with self._lock:
            if self._closed.is_set():
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down")
            if len(self._waiting) >= self.config.max_queue:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                                f"the queue is full ({len(self._waiting)} waiting): try again in a minute")
            job_id = secrets.token_urlsafe(18)
            job_dir = self.root / job_id
            job_dir.mkdir()
            audio_path = None
            if audio_bytes is not None:
                suffix = Path(audio_name).suffix
                audio_path = job_dir / f"input{suffix if _SAFE_SUFFIX_RE.match(suffix) else ''}"
                audio_path.write_bytes(audio_bytes)
            stem = _safe_name(Path(audio_name).stem, "speech") if mode == "audio" else "tts"
            job = Job(id=job_id, dir=job_dir, mode=mode, audio_path=audio_path, text=text, lang=lang,
                      style=style, style_label=style_label, head=head,
                      name=f"{stem}_{_safe_name(style_label, 'style')}_{_safe_name(head.id, 'mesh')}")
            self._jobs[job_id] = job
            self._waiting.append(job_id)
        self.log(f"job {job_id[:8]} queued ({mode}, style {style_label}, head {head.id})")
        self._queue.put(job_id)
        return job

    def _style(self, form: dict[str, tuple[str | None, bytes]], name: str) -> tuple[Any, str]:
        from artalk_core.formats.motion import read_style
        from artalk_core.styles import style_from_array

        upload = form.get("style_file")
        if upload is not None and upload[1]:
            label = f"upload_{_safe_name(Path(upload[0] or 'style').stem, 'style')}"
            try:
                arr = read_style(upload[1])
                return style_from_array(arr, label=label), label
            except ArtalkError as e:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"unsupported style file '{upload[0] or 'upload'}': {e}") from None
        if name not in self.styles():
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"unknown style '{name}': choose one of {', '.join(self.styles())}")
        return name, name

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id) if _JOB_ID_RE.match(job_id) else None
        if job is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such job (it may have expired)")
        return job

    def status(self, job: Job) -> dict[str, Any]:
        with self._lock:
            position = self._waiting.index(job.id) + 1 if job.id in self._waiting else 0
            running = any(j.status == "running" for j in self._jobs.values())
        files = {}
        if job.status == "done":
            files = {name: {"url": f"/api/jobs/{job.id}/{name}", "download": job.name + suffix}
                     for name, (_, suffix) in RESULT_FILES.items() if (job.dir / name).is_file()}
        return {
            "id": job.id, "status": job.status, "stage": job.stage, "stage_done": job.stage_done,
            "stage_total": job.stage_total, "progress": round(job.progress, 4), "queue_position": position,
            "busy": running, "error": job.error, "files": files, "frames": job.frames,
            "seconds": job.seconds, "head_is_standin": job.head_is_standin, "style": job.style_label,
            "head": job.head.id, "created": job.created, "started": job.started, "finished": job.finished,
        }

    def result_path(self, job_id: str, name: str) -> Path:
        """The file of a finished job: only the fixed result names, only inside that job's folder."""
        if name not in RESULT_FILES:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such file")
        job = self.get(job_id)
        if job.status != "done":
            raise HttpError(HTTPStatus.NOT_FOUND, "the job has no results (yet)")
        path = job.dir / name
        if not path.is_file():
            raise HttpError(HTTPStatus.NOT_FOUND, "no such file")
        return path

    def example_path(self, example_id: str) -> Path:
        match = next((e for e in self.examples if e[0] == example_id), None)
        if match is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such example")
        return match[2]

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        job.cancel.set()
        with self._lock:
            self._jobs.pop(job.id, None)
            if job.id in self._waiting:
                self._waiting.remove(job.id)
            running = job.status == "running"
        if not running:  # a running job removes its own folder when it stops
            shutil.rmtree(job.dir, ignore_errors=True)

    # ----- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._closed.is_set():
                return
            with self.model_lock:
                with self._lock:
                    job = self._jobs.get(job_id)
                    if job is None or job_id not in self._waiting:
                        continue  # deleted while waiting
                    self._waiting.remove(job_id)
                    job.status, job.started = "running", time.time()
                self.log(f"job {job_id[:8]} running")
                try:
                    self._run(job)
                    job.status, job.progress = "done", 1.0
                    self.log(f"job {job_id[:8]} done: {job.frames} frames")
                except _Cancelled:
                    job.status, job.error = "cancelled", "cancelled"
                except ArtalkError as e:
                    job.status, job.error = "error", str(e)
                    self.log(f"job {job_id[:8]} failed: {e}")
                except Exception as e:  # a bug: keep serving, say what happened
                    job.status, job.error = "error", f"unexpected {type(e).__name__}: {e}"
                    self.log(f"job {job_id[:8]} failed: {type(e).__name__}: {e}")
                finally:
                    job.finished = time.time()
                    shutil.rmtree(job.dir / "work", ignore_errors=True)
                    if job.audio_path is not None:
                        job.audio_path.unlink(missing_ok=True)
                    with self._lock:
                        forgotten = job.id not in self._jobs
                    if forgotten or job.status != "done":
                        # deleted while running, or nothing to serve: free the disk now
                        for name in RESULT_FILES:
                            (job.dir / name).unlink(missing_ok=True)
                    if forgotten:
                        shutil.rmtree(job.dir, ignore_errors=True)

    def _progress(self, job: Job) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            if job.cancel.is_set() or self._closed.is_set():
                raise _Cancelled()
            start, end = _STAGE_SPAN.get(stage, (job.progress, job.progress))
            frac = done / total if total > 0 else 0.0
            job.stage, job.stage_done, job.stage_total = stage, done, total
            job.progress = max(job.progress, start + (end - start) * min(max(frac, 0.0), 1.0))

        return report

    def _run(self, job: Job) -> None:
        from artalk_core.animate import animate
        from artalk_core.formats.motion import read_motion, write_reference_motion

        progress = self._progress(job)
        work = job.dir / "work"
        work.mkdir(exist_ok=True)
        audio = job.audio_path
        if job.text is not None:
            from artalk_core.tts import tts

            progress("tts", 0, 1)
            audio = work / "speech.wav"
            spoken = tts(job.text, output=audio, lang=job.lang, engine=self.config.tts_engine)
            seconds = len(spoken.samples) / SAMPLE_RATE
            if seconds > self.config.max_seconds:
                raise InputError(f"the spoken text is too long: {seconds:.1f} s "
                                 f"(at most {self.config.max_seconds:g} s)")
            progress("tts", 1, 1)
        assert audio is not None
        res = animate(audio, output=job.dir / "video.mp4", style=job.style, engine=self.engine,
                      clip_length=self.config.clip_length, flame=job.head.path, size=self.config.size,
                      keep=work, assets=self.assets_dir, device=self.config.device, progress=progress)
        progress("finishing", 0, 1)
        os.replace(res.files["motion"], job.dir / "motion.safetensors")
        os.replace(res.files["vertices"], job.dir / "vertices.h5")
        write_reference_motion(job.dir / "motion.pt", read_motion(job.dir / "motion.safetensors").data)
        job.frames, job.head_is_standin = res.frames, res.head_is_standin
        job.seconds = res.frames / FPS
        progress("finishing", 1, 1)

    # ----- cleanup -----------------------------------------------------------------------------
    def cleanup_expired(self, now: float | None = None) -> list[str]:
        """Forget finished jobs older than ``keep_seconds`` (and the oldest beyond ``max_finished``)."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.finished is not None),
                              key=lambda j: j.finished or 0.0)
            expired = [j for j in finished if now - (j.finished or now) >= self.config.keep_seconds]
            keep = [j for j in finished if j not in expired]
            expired += keep[: max(len(keep) - self.config.max_finished, 0)]
            for j in expired:
                self._jobs.pop(j.id, None)
        for j in expired:
            shutil.rmtree(j.dir, ignore_errors=True)
        return [j.id for j in expired]

    def _sweep(self) -> None:
        interval = min(max(self.config.keep_seconds / 4, 0.2), 60.0)
        while not self._closed.wait(interval):
            with contextlib.suppress(Exception):
                self.cleanup_expired()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker (a running job stops at its next progress report) and remove every file."""
        self._closed.set()
        self._queue.put(None)
        self._worker.join(timeout)
        self._janitor.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)


def _make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "artalk-app"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # requests are not logged; jobs are

        # -- responses
        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": message})

        def _file(self, path: Path, ctype: str, download: str | None = None) -> None:
            size = path.stat().st_size
            start, end = 0, size - 1
            status = HTTPStatus.OK
            rng = self.headers.get("Range", "")
            m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if m and size > 0 and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(size - int(m.group(2)), 0)
                if start > end or start >= size:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            if download:
                self.send_header("Content-Disposition", f'attachment; filename="{download}"')
            self.end_headers()
            if self.command == "HEAD":
                return
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    block = f.read(min(left, 1 << 16))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)

        def _route(self) -> str:
            path = urlsplit(self.path).path
            # Decoded once: an encoded '/' or '..' cannot reach a file anyway (fixed names only).
            return unquote(path)

        # -- methods
        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            try:
                path = self._route()
                if path in STATIC_FILES:
                    name, ctype = STATIC_FILES[path]
                    self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), ctype)
                elif path == "/api/config":
                    self._json(HTTPStatus.OK, app.public_config())
                elif (m := _EXAMPLE_PATH_RE.match(path)) is not None:
                    self._file(app.example_path(m.group(1)), "audio/wav")
                elif (m := _JOB_PATH_RE.match(path)) is not None:
                    job_id, name = m.group(1), m.group(2)
                    if name is None:
                        self._json(HTTPStatus.OK, app.status(app.get(job_id)))
                    else:
                        target = app.result_path(job_id, name)
                        ctype, suffix = RESULT_FILES[name]
                        # the player streams the video inline; ?download=1 (and every other file) saves it
                        inline = name == "video.mp4" and "download=1" not in urlsplit(self.path).query
                        self._file(target, ctype, None if inline else app.get(job_id).name + suffix)
                else:
                    self._error(HTTPStatus.NOT_FOUND, "not found")
            except HttpError as e:
                self._error(e.status, e.message)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_DELETE(self) -> None:
            try:
                m = _JOB_PATH_RE.match(self._route())
                if m is None or m.group(2) is not None:
                    raise HttpError(HTTPStatus.NOT_FOUND, "not found")
                app.delete(m.group(1))
                self._json(HTTPStatus.OK, {"deleted": m.group(1)})
            except HttpError as e:
                self._error(e.status, e.message)

        def do_POST(self) -> None:
            try:
                if self._route() != "/api/jobs":
                    raise HttpError(HTTPStatus.NOT_FOUND, "not found")
                length_header = self.headers.get("Content-Length")
                if length_header is None:
                    raise HttpError(HTTPStatus.LENGTH_REQUIRED, "the upload needs a Content-Length")
                try:
                    length = int(length_header)
                except ValueError:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
                limit = app.config.max_upload_bytes
                if length > limit:
                    self.close_connection = True
                    if length <= 2 * limit:  # drain a modest excess so the client reads our answer
                        left = length
                        while left > 0 and (block := self.rfile.read(min(left, 1 << 16))):
                            left -= len(block)
                    raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                    f"the upload is too large: {length / 2**20:.1f} MB "
                                    f"(at most {limit / 2**20:g} MB)")
                body = self.rfile.read(length)
                form = parse_multipart(body, self.headers.get("Content-Type", ""))
                job = app.submit(form)
                self._json(HTTPStatus.ACCEPTED, app.status(job) | {"job_id": job.id})
            except HttpError as e:
                self._error(e.status, e.message)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class AppServer:
    """The HTTP server and its :class:`App`; ``url`` is where it listens (port 0 picks a free one)."""

    def __init__(self, config: AppConfig, *, host: str = "127.0.0.1", port: int = 8960,
                 log: Callable[[str], None] | None = None) -> None:
        self.app = App(config, log=log)
        try:
            self.httpd = ThreadingHTTPServer((host, port), _make_handler(self.app))
        except OSError as e:
            self.app.close()
            from artalk_core.errors import OutputError

            raise OutputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        self.httpd.daemon_threads = True
        h, p = self.httpd.server_address[:2]
        self.url = f"http://{'[' + str(h) + ']' if ':' in str(h) else h}:{p}"
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> AppServer:
        """Serve in a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="artalk-app-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and remove every job's files."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(10)
        self.httpd.server_close()
        self.app.close()

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(*, host: str = "127.0.0.1", port: int = 8960, assets: PathLike | None = None, share: str = "off",
          config: AppConfig | None = None, log: Callable[[str], None] | None = None,
          ready: Callable[[AppServer], None] | None = None) -> None:
    """Run the app until interrupted (Ctrl+C); every job's files are removed on the way out."""
    check_share(share)
    cfg = config or AppConfig()
    if assets is not None:
        cfg.assets = assets
    server = AppServer(cfg, host=host, port=port, log=log)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


__all__ = ["App", "AppConfig", "AppServer", "HttpError", "LANGUAGE_LABELS", "MSG_NO_AUDIO", "MSG_NO_TEXT",
           "RESULT_FILES", "check_share", "parse_multipart", "serve"]
