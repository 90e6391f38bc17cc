"""The generate callback: validate, cap the speech, run the core ``animate`` stage, name the results.

:class:`Generator` holds no Gradio; :func:`gradio_callback` wraps it into the function the page and
the HTTP API (``api_name="generate"``) call, turning the core's progress reports into ``gr.Progress``
with stage names a visitor understands and every failure into a ``gr.Error`` in plain words (no
server paths, no internal placeholders).

The speech length is capped BEFORE decoding it whole: the container's announced duration is
checked first, and decoding (progressive, a block at a time) stops as soon as it passes the limit,
so a few KB of FLAC announcing (or hiding) hours of silence costs milliseconds and a few blocks of
memory. This runs in the queue's worker, never in a request thread.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artalk_core.app.config import CHARS_PER_SECOND, MESH, AppConfig, Catalog, animate_accepts
from artalk_core.app.jobs import Cancelled, Job, JobStore
from artalk_core.constants import FPS, SAMPLE_RATE
from artalk_core.errors import (
    ArtalkError,
    AssetError,
    AudioError,
    DependencyError,
    InputError,
    OutputError,
    RenderError,
    StyleError,
)

log = logging.getLogger("artalk.app")

MSG_NO_INPUT = "Please upload or record speech, or type a text."
MSG_BOTH_INPUTS = "Give either speech or a text, not both."
MSG_CANCELLED = "Cancelled."
MSG_BUG = "Something went wrong on the server while making the video; its log has the details."

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
_ABS_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\](?:[^\s/\\:;,'\"()<>]+[/\\])+([^\s/\\:;,'\"()<>]*)")


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
    with iter_audio(source, block=SAMPLE_RATE, label="the audio") as stream:
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


def plain_message(e: BaseException, hide: list[Path] | None = None) -> str:
    """What a visitor reads for an error: its kind in words, its text without server paths."""
    if isinstance(e, Cancelled):
        return MSG_CANCELLED
    if not isinstance(e, ArtalkError):
        return MSG_BUG
    text = str(e)
    for p in sorted(hide or [], key=lambda q: -len(str(q))):
        text = text.replace(str(p), "").replace(str(p.resolve()), "")
    text = _ABS_PATH.sub(lambda m: m.group(1) or "a file", text)
    text = text.replace("<audio bytes>", "the audio").replace("<bytes>", "the file").replace("<stdin>", "the input")
    text = text.strip().rstrip(".")
    if text:
        first = text.split(" ", 1)[0]
        text = (text[0].upper() + text[1:] if first.isalpha() else text) + "."
    if isinstance(e, AssetError):
        return "The server's model files are missing or damaged, so it cannot make videos right now."
    if isinstance(e, AudioError):
        return f"The speech could not be used. {text}"
    if isinstance(e, StyleError):
        return f"The style could not be used. {text}"
    if isinstance(e, DependencyError):
        return f"This server lacks a program it needs for that. {text}"
    if isinstance(e, (RenderError, OutputError)):
        return f"The video could not be made on this server. {text}"
    return text or MSG_BUG


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

            load_artalk(assets=catalog.assets, device=config.device)

    def hide(self) -> list[Path]:
        """Folders never to name in a message."""
        return [self.jobs.root, self.catalog.assets.resolve(), self.catalog.assets]

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
        """Make the video and downloads; ArtalkError (or Cancelled) with a message otherwise."""
        from artalk_core.tts import normalize_lang

        problems = self.input_problems(audio=audio, text=text, language=language, appearance=appearance,
                                       style=style, style_file=style_file)
        if problems:
            raise InputError(next(iter(problems.values())))
        text = (text or "").strip() or None
        audio = audio or None
        lang = normalize_lang(language or "en")
        with self.model_lock:
            job = self.jobs.new(session, cancel)
            ok = False
            log.info("job %s: started (%s)", job.id[:8], "text" if text is not None else "speech")
            try:
                out = self._run(job, audio, text, lang, appearance, style, style_file, progress)
                ok = True
                return out
            except Cancelled:
                log.info("job %s: cancelled", job.id[:8])
                raise
            except ArtalkError as e:
                log.info("job %s: refused: %s", job.id[:8], plain_message(e, self.hide()))
                raise
            finally:
                self.jobs.finish(job, keep_results=ok)

    def _report(self, job: Job, progress: Callable[[str, int, int], None] | None) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            self.jobs.check(job)
            if progress is not None:
                progress(stage, done, total)

        return report

    def _run(self, job: Job, audio: str | None, text: str | None, lang: str, appearance: str, style: str,
             style_file: str | None, progress: Callable[[str, int, int], None] | None) -> Outputs:
        from artalk_core.animate import animate
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
            sty = resolve_style(style_file, assets=self.catalog.assets)
            sty.label = _stem(Path(style_file).name)
        else:
            sty = resolve_style(style, assets=self.catalog.assets)
        name = f"{stem}_{_stem(sty.label)}_{_stem(appearance)}"
        extra: dict[str, Any] = {}
        if appearance != MESH:
            extra["avatar"] = appearance  # listed only when animate takes avatar= (config.photoreal_avatars)
        glb = job.dir / f"{name}.glb"
        if animate_accepts("glb"):
            # the glTF export (animate(glb=...)), offered when this version has it
            extra["glb"] = glb
        res = animate(speech, output=job.dir / f"{name}.mp4", style=sty, engine=self.catalog.engine,
                      clip_length=self.config.clip_length, size=self.config.size, keep=job.work / "steps",
                      assets=self.catalog.assets, device=self.config.device, progress=report, **extra)
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
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:40] or "speech"


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


def gradio_callback(generator: Generator) -> Callable[..., Awaitable[tuple[Any, ...]]]:
    """The Gradio function behind the page and ``api_name='generate'``.

    Parameters (API keywords): ``audio`` (file), ``text``, ``language``, ``appearance``, ``style``,
    ``style_file`` (file); returns (video file, list of download files).

    It is a coroutine running the generation in a worker thread: when Gradio cancels the event
    (Cancel, ``Job.cancel()`` in gradio_client) the coroutine is cancelled, sets the job's cancel
    flag, and the thread stops at its next progress report (a thread cannot be killed).
    """
    import anyio
    import gradio as gr

    async def generate(audio: str | None = None, text: str | None = None, language: str = "en",
                       appearance: str = MESH, style: str = "default", style_file: str | None = None,
                       request: gr.Request | None = None, progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        session = getattr(request, "session_hash", None) or ""
        cancel = threading.Event()

        def work() -> Outputs:
            return generator.run(audio=audio, text=text, language=language, appearance=appearance, style=style,
                                 style_file=style_file, session=session, progress=ProgressBridge(progress),
                                 cancel=cancel)

        try:
            out = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancel.set()
            raise
        except Cancelled:
            raise gr.Error(MSG_CANCELLED, title="Cancelled", print_exception=False) from None
        except ArtalkError as e:
            # Gradio renders the message as HTML: escape it (it may quote a visitor's text)
            raise gr.Error(html.escape(plain_message(e, generator.hide())), print_exception=False) from None
        except Exception as e:
            log.exception("generation failed")
            raise gr.Error(MSG_BUG, print_exception=False) from e
        return str(out.video), [str(p) for p in out.files]

    generate.__annotations__["request"] = gr.Request  # resolved, so Gradio injects it (not an API input)
    return generate


__all__ = ["Generator", "MSG_NO_INPUT", "Outputs", "ProgressBridge", "STAGES", "cap_speech", "gradio_callback",
           "plain_message", "preview_glb"]
