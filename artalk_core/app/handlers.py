"""The generate callback: validate, cap the speech, run the core ``animate`` stage, name the results.

:class:`Generator` holds no Gradio; :func:`run_generation` runs it in a worker thread for the page
(:mod:`artalk_core.app.layout`) and the HTTP API (:func:`gradio_callback`, ``api_name="generate"``),
the core's progress reports becoming ``gr.Progress`` with stage names a visitor understands and every
failure a :class:`Refused` in plain words (no server paths, no library internals): the API raises it
as a ``gr.Error``, the page shows it under the video.

The speech length is capped BEFORE decoding it whole: the container's announced duration is
checked first, and decoding (progressive, a block at a time) stops as soon as it passes the limit,
so a few KB of FLAC announcing (or hiding) hours of silence costs milliseconds and a few blocks of
memory. This runs in the queue's worker, never in a request thread.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artalk_core.app.config import CHARS_PER_SECOND, MESH, AppConfig, Catalog
from artalk_core.app.jobs import Cancelled, Job, JobStore
from artalk_core.constants import FPS, SAMPLE_RATE
from artalk_core.errors import (
    BUG_SUMMARY,
    ArtalkError,
    AudioError,
    InputError,
    StyleError,
    explain,
)
from artalk_core.options import AvatarOptions, MotionOptions, RenderOptions
from artalk_core.text import slug

log = logging.getLogger("artalk.app")

MSG_NO_INPUT = "Please upload or record speech, or type a text."
MSG_BOTH_INPUTS = "Give either speech or a text, not both."
MSG_CANCELLED = "Cancelled."
MSG_SHUTDOWN = "The server is shutting down, so the video was not made; try again once it is back."
MSG_BUG = BUG_SUMMARY

# Where each core stage sits in the whole job (fractions), and what a visitor reads for it.
STAGES: dict[str, tuple[float, float, str]] = {
    "check": (0.0, 0.03, "Checking the speech"),
    "tts": (0.0, 0.03, "Speaking the text"),
    "encode audio": (0.03, 0.25, "Listening to the speech"),
    "generate": (0.25, 0.45, "Generating the motion"),
    "energy engine": (0.03, 0.45, "Generating the motion (energy engine)"),
    "vertices": (0.45, 0.6, "Moving the head"),
    "render": (0.6, 0.97, "Drawing the video"),
    "encode": (0.6, 0.97, "Drawing the video"),
    "finishing": (0.97, 1.0, "Preparing the downloads"),
}
SPEECH_FORMATS = ("wav", "w64", "flac", "mp3", "ogg", "mov", "matroska", "aac", "wv", "aiff", "caf", "mpegts")
"""FFmpeg demuxers the app decodes speech with (mov: mp4/m4a/mov; matroska: mkv/webm): files of one
stream each. Never a playlist (hls, concat): FFmpeg would read the files it names, the server's too."""
# An absolute path in a message (POSIX or Windows), at the start or after a space, quote, bracket,
# colon or equals sign: text naming one that no visitor name replaced is not shown.
_ABS_PATH = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))(?:[A-Za-z]:)?[/\\][^\s/\\]")


@dataclass
class Outputs:
    """A finished generation: the video and the downloads (motion, reference .pt, vertices, .glb)."""

    video: Path
    files: list[Path]
    frames: int
    seconds: float


def _duration(seconds: float) -> str:
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


def _too_long(seconds: float | None, limit: float) -> InputError:
    how = f" ({_duration(seconds)})" if seconds is not None else ""
    return InputError(f"The speech is too long{how}: this server takes at most {_duration(limit)}. "
                      "Use a shorter clip.")


def cap_speech(source: Path, output: Path, *, max_seconds: float, check: Callable[[], None] | None = None) -> float:
    """Decode ``source`` to a 16 kHz mono WAV at ``output`` unless it is longer than ``max_seconds``.

    Refuses (InputError) on the container's announced duration before decoding anything, and
    otherwise stops decoding at the limit (for containers that do not announce, or lie). Memory:
    at most ``max_seconds`` of 16 kHz float32 (3.8 MB a minute). Returns the speech's seconds.
    """
    import numpy as np

    from artalk_core.audio import iter_audio, write_wav

    limit = int(max_seconds * SAMPLE_RATE)
    blocks: list[Any] = []
    total = 0
    with iter_audio(source, block=SAMPLE_RATE, label="the audio", formats=SPEECH_FORMATS) as stream:
        announced = stream.expected_samples
        if announced is not None and announced > limit + SAMPLE_RATE // 2:
            raise _too_long(announced / SAMPLE_RATE, max_seconds)
        for block in stream:
            total += len(block)
            if total > limit:
                raise _too_long(None, max_seconds)
            blocks.append(block)
            if check is not None:
                check()
    write_wav(output, np.concatenate(blocks))
    return total / SAMPLE_RATE


class Refused(Exception):
    """A generation that did not happen; ``message`` is what a visitor reads (plain text, not HTML)."""

    def __init__(self, message: str, *, title: str = "Error") -> None:
        super().__init__(message)
        self.message = message
        self.title = title


def plain_message(e: BaseException, names: dict[str, str] | None = None) -> str:
    """What a visitor reads for an error: its kind in words, and its text when that names nothing
    of the server's.

    ``names``: server paths the text may contain (a job's inputs) -> what the visitor calls them
    ("the style file"). A text that still holds another absolute path is left out rather than
    cut up: the visitor reads the kind of problem only. Server-side failures (model files, a
    missing program, rendering, writing) get a fixed sentence; their text is for the log.
    """
    if isinstance(e, Cancelled):
        return MSG_SHUTDOWN if e.shutdown else MSG_CANCELLED
    said = explain(e)
    if not said.about_input:
        return said.summary  # the server's own problem: its text is for the log
    text = said.text
    for path, name in sorted((names or {}).items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    text = text.replace("<audio bytes>", "the audio").replace("<bytes>", "the file").replace("<stdin>", "the input")
    if _ABS_PATH.search(text):
        text = ""
    text = text.strip().rstrip(".")
    if text:
        text = text[0].upper() + text[1:] + "."
    if isinstance(e, (AudioError, StyleError)):
        return f"{said.summary} {text}".strip()
    return text or said.summary


class Generator:
    """One generation at a time on the model: input checks, speech cap, ``animate``, result names."""

    def __init__(self, config: AppConfig, catalog: Catalog, jobs: JobStore) -> None:
        self.config = config
        self.catalog = catalog
        self.jobs = jobs
        self.model_lock = threading.Lock()
        """Held for a whole generation: a cancelled job still unwinding blocks the next one."""
        if config.preload and catalog.engine == "artalk":
            from artalk_core.pipeline import load_artalk

            load_artalk(dataclasses.replace(config.model, assets=catalog.assets))

    def input_problems(self, *, audio: str | None, text: str | None, language: str = "en", appearance: str = MESH,
                       style: str = "default", style_file: str | None = None) -> dict[str, str]:
        """The cheap checks, before queueing: {input name: what is wrong with it} (empty if fine).

        Nothing is decoded here; the speech length is checked by :func:`cap_speech` in the worker.
        """
        from artalk_core.tts import LANGUAGES, normalize_lang

        text = (text or "").strip() or None
        if not audio and text is None:
            return {"audio": MSG_NO_INPUT}
        if audio and text is not None:
            return {"text": MSG_BOTH_INPUTS}
        problems: dict[str, str] = {}
        if text is not None and len(text) > self.config.max_seconds * CHARS_PER_SECOND:
            problems["text"] = (f"The text is too long ({len(text)} characters): this server speaks at most "
                                f"{_duration(self.config.max_seconds)}, about "
                                f"{int(self.config.max_seconds * CHARS_PER_SECOND)} characters.")
        try:
            normalize_lang(language or "en")
        except InputError:
            problems["language"] = f"Unknown language: choose one of {', '.join(LANGUAGES)}."
        appearances = [a for _, a in self.catalog.appearances]
        if appearance not in appearances:
            problems["appearance"] = f"Unknown appearance '{appearance}': choose one of {', '.join(appearances)}."
        if not style_file and style not in ("default", *self.catalog.styles):
            problems["style"] = (f"Unknown style '{style}': choose one of "
                                 f"{', '.join(['default', *self.catalog.styles])}.")
        return problems

    def run(self, *, audio: str | None, text: str | None, language: str = "en", appearance: str = MESH,
            style: str = "default", style_file: str | None = None, session: str = "",
            progress: Callable[[str, int, int], None] | None = None,
            cancel: threading.Event | None = None) -> Outputs:
        """Make the video and downloads; :class:`Refused` with what the visitor reads otherwise."""
        from artalk_core.tts import normalize_lang

        # an upload keeps the visitor's own file name: messages call it that
        names = {path: f"'{Path(given).name}'" for given in (audio, style_file) if given
                 for path in (given, str(Path(given).resolve()))}
        try:
            problems = self.input_problems(audio=audio, text=text, language=language, appearance=appearance,
                                           style=style, style_file=style_file)
            if problems:
                raise InputError(next(iter(problems.values())))
            text = (text or "").strip() or None
            lang = normalize_lang(language or "en")
            with self.model_lock:
                job = self.jobs.new(session, cancel)
                ok = False
                log.info("job %s: started (%s)", job.id[:8], "text" if text is not None else "speech")
                try:
                    out = self._run(job, audio or None, text, lang, appearance, style, style_file, progress)
                    ok = True
                    return out
                except Cancelled as e:
                    log.info("job %s: %s", job.id[:8], e)
                    raise
                except ArtalkError as e:
                    log.info("job %s: refused: %s", job.id[:8], e)  # the whole text: the log is the operator's
                    raise
                finally:
                    self.jobs.finish(job, keep_results=ok)
        except Cancelled as e:
            raise Refused(plain_message(e), title="Stopped" if e.shutdown else "Cancelled") from None
        except ArtalkError as e:
            raise Refused(plain_message(e, names)) from e

    def _report(self, job: Job, progress: Callable[[str, int, int], None] | None) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            self.jobs.check(job)
            if progress is not None:
                progress(stage, done, total)

        return report

    def _run(self, job: Job, audio: str | None, text: str | None, lang: str, appearance: str, style: str,
             style_file: str | None, progress: Callable[[str, int, int], None] | None) -> Outputs:
        from artalk_core.animate import AnimateOptions, animate
        from artalk_core.formats.motion import read_motion, write_reference_motion
        from artalk_core.styles import resolve_style

        report = self._report(job, progress)
        if text is not None:
            from artalk_core.tts import tts

            report("tts", 0, 1)
            source = job.work / "tts.wav"
            tts(text, output=source, lang=lang, engine=self.config.tts_engine)
            stem = "text"
        else:
            assert audio is not None
            source = Path(audio)
            stem = _stem(source.name)
        report("check", 0, 1)
        speech = job.work / "speech.wav"
        seconds = cap_speech(source, speech, max_seconds=self.config.max_seconds, check=lambda: self.jobs.check(job))
        report("check", 1, 1)
        if style_file:
            try:
                sty = resolve_style(style_file, assets=self.catalog.assets)
            except InputError as e:  # a motion file's own complaint is still about the style
                raise e if isinstance(e, StyleError) else StyleError(str(e)) from e
            sty.label = _stem(Path(style_file).name)
        else:
            sty = resolve_style(style, assets=self.catalog.assets)
        name = f"{stem}_{_stem(sty.label)}_{_stem(appearance)}"
        glb = job.dir / f"{name}.glb"
        options = AnimateOptions(
            audio=speech, output=job.dir / f"{name}.mp4", keep=job.work / "steps", glb=glb,
            motion=MotionOptions(style=sty, engine=self.catalog.engine, clip_length=self.config.clip_length),
            # --size is the mesh video's: the photoreal head has its network's size
            look=RenderOptions(size=self.config.size) if appearance == MESH else
            RenderOptions(avatar=AvatarOptions(avatar=appearance)),
            model=dataclasses.replace(self.config.model, assets=self.catalog.assets))
        res = animate(options, progress=report)
        report("finishing", 0, 1)
        motion = job.dir / f"{name}.motion.safetensors"
        verts = job.dir / f"{name}.h5"
        ref = job.dir / f"{name}_motions.pt"
        res.files["motion"].replace(motion)
        res.files["vertices"].replace(verts)
        write_reference_motion(ref, read_motion(motion).data)
        files = [motion, ref, verts] + ([glb] if glb.is_file() else [])
        report("finishing", 1, 1)
        log.info("job %s: done, %d frames from %.1f s of speech", job.id[:8], res.frames, seconds)
        return Outputs(video=res.output, files=files, frames=res.frames, seconds=res.frames / FPS)


def preview_glb(files: list[str]) -> str | None:
    """The download to show in the page's 3D viewer: the ``.glb`` (None when this version writes none)."""
    return next((f for f in files if f.lower().endswith(".glb")), None)


def _stem(name: str) -> str:
    return slug(name.rsplit(".", 1)[0] if "." in name else name, max_len=40, default="speech")


class ProgressBridge:
    """The core's ``progress(stage, done, total)`` -> ``gr.Progress(fraction, desc=...)``, throttled."""

    def __init__(self, gr_progress: Any, *, interval: float = 0.25) -> None:
        self.gr_progress = gr_progress
        self.interval = interval
        self.fraction = 0.0
        self._last = (0.0, "")

    def __call__(self, stage: str, done: int, total: int) -> None:
        start, end, label = STAGES.get(stage, (self.fraction, self.fraction, stage.capitalize()))
        frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        self.fraction = max(self.fraction, start + (end - start) * frac)
        now = time.monotonic()
        if label != self._last[1] or now - self._last[0] >= self.interval or done >= total:
            self._last = (now, label)
            self.gr_progress(self.fraction, desc=label)


async def run_generation(generator: Generator, *, audio: str | None, text: str | None, language: str,
                         appearance: str, style: str, style_file: str | None, session: str,
                         progress: Callable[[str, int, int], None] | None) -> tuple[str, list[str]]:
    """One generation in a worker thread: (video path, download paths), or :class:`Refused`.

    When the awaiting task is cancelled (Gradio cancels the event: the page's Cancel,
    ``Job.cancel()`` in gradio_client) the job's cancel flag is set and the thread stops at its
    next progress report or decoded block (a thread cannot be killed).
    """
    import anyio

    cancel = threading.Event()

    def work() -> Outputs:
        return generator.run(audio=audio, text=text, language=language, appearance=appearance, style=style,
                             style_file=style_file, session=session, progress=progress, cancel=cancel)

    try:
        out = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise
    except Refused:
        raise
    except ArtalkError as e:
        raise Refused(plain_message(e)) from e
    except Exception as e:
        log.exception("generation failed")
        raise Refused(MSG_BUG) from e
    return str(out.video), [str(p) for p in out.files]


def gradio_callback(generator: Generator) -> Callable[..., Awaitable[tuple[Any, ...]]]:
    """The Gradio function behind ``api_name='generate'`` (the HTTP API).

    Parameters (API keywords): ``audio`` (file), ``text``, ``language``, ``appearance``, ``style``,
    ``style_file`` (file); returns (video file, list of download files). A refusal is a
    ``gr.Error`` whose message is plain text (the client reads it as is; no page renders it).
    """
    import gradio as gr

    async def generate(audio: str | None = None, text: str | None = None, language: str = "en",
                       appearance: str = MESH, style: str = "default", style_file: str | None = None,
                       request: gr.Request | None = None, progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        try:
            return await run_generation(generator, audio=audio, text=text, language=language, appearance=appearance,
                                        style=style, style_file=style_file, session=session_of(request),
                                        progress=ProgressBridge(progress))
        except Refused as e:
            raise gr.Error(e.message, title=e.title, print_exception=False) from None

    generate.__annotations__["request"] = gr.Request  # resolved, so Gradio injects it (not an API input)
    return generate


def session_of(request: Any) -> str:
    """The browser tab or API client of a request (Gradio's session hash)."""
    return getattr(request, "session_hash", None) or ""


__all__ = ["Generator", "MSG_CANCELLED", "MSG_NO_INPUT", "MSG_SHUTDOWN", "Outputs", "ProgressBridge", "Refused",
           "STAGES", "cap_speech", "gradio_callback", "plain_message", "preview_glb", "run_generation", "session_of"]
