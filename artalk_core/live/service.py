"""Live streams over any message connection: the ``/live`` protocol's server side, without a web framework.

:class:`LiveService` holds what all streams share (the engines, loaded once; the styles; the
:class:`~artalk_core.live.scheduler.Scheduler` and its worker thread) and runs one stream per
connection (:meth:`LiveService.handle`). A connection is anything with ``receive`` / ``send`` /
``close`` coroutines (:class:`~artalk_core.live.stream.Connection`); :mod:`artalk_web.live` adapts
starlette's WebSocket. Each stream is a :class:`~artalk_core.live.stream.StreamRunner`.

What a stream is guaranteed (each one tested): at most ``max_streams`` at once (more get an
error line and close 1013); the token checked when one is set (1008); malformed, huge or deeply
nested messages get an error line and a close, never a traceback; a client that sends nothing for
``idle_seconds`` is closed (4000); one that stops reading cannot grow the server's memory (its
send queue is bounded: then an error line if it can still be sent, and close 4001); one that sends
faster than real time is not read from while ``max_ahead_seconds`` of its audio wait (TCP
backpressure); one that vanishes frees its session at once (after a computation under way);
:meth:`LiveService.shutdown` ends every stream with an error line and close 1001.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from artalk_core.constants import (
    LIVE_IDLE_SECONDS,
    LIVE_MAX_AHEAD_SECONDS,
    LIVE_MAX_STREAMS,
    LIVE_SEND_QUEUE_LINES,
)
from artalk_core.errors import InputError, StyleError
from artalk_core.live.protocol import CloseCode, StartMessage
from artalk_core.live.stream import Connection, ConnectionGone, StreamRunner, refuse
from artalk_core.options import ModelOptions, MotionOptions

if TYPE_CHECKING:
    from artalk_core.engines.base import MotionEngine
    from artalk_core.live.scheduler import Scheduler
    from artalk_core.live.session import LiveSession
    from artalk_core.styles import Style



@dataclass
class LiveConfig:
    """A live server's settings (``artalk serve``'s options)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    """The model files, device and precision every stream shares."""
    engine: str = "auto"
    """The engine of streams that name none: auto (artalk when its checkpoint is found, else energy)."""
    max_streams: int = LIVE_MAX_STREAMS
    token: str | None = None
    idle_seconds: float = LIVE_IDLE_SECONDS
    send_queue_lines: int = LIVE_SEND_QUEUE_LINES
    max_ahead_seconds: float = LIVE_MAX_AHEAD_SECONDS
    batch: int = 1
    """Model chunks encoded together across streams (1: the exact mode; see the scheduler)."""
    warm_up: bool = True
    """Run one silent chunk through the model at start (the energy engine is always warmed up)."""


class LiveService:
    """The streams of one server process (see the module docstring). Load with :meth:`start`
    (blocking: the model), serve with :meth:`handle`, stop with :meth:`shutdown` then :meth:`close`."""

    def __init__(self, config: LiveConfig, *, lock: Any = None) -> None:
        self.config = config
        self._lock = lock
        self.scheduler: Scheduler | None = None
        self.default_engine = "energy"
        self._artalk: MotionEngine | None = None
        self.model_note = ""
        self._engines: dict[tuple[str, int], MotionEngine] = {}
        self._styles: dict[str, tuple[int, Style]] = {}
        self._streams: set[StreamRunner] = set()
        self._reserved = 0
        self.closing = False
        self._started = threading.Event()

    # ---- set-up --------------------------------------------------------------------------------
    def start(self) -> LiveService:
        """Load the model (when its checkpoint is found, or required by ``engine``) and start the worker."""
        from artalk_core.engines import check_engine
        from artalk_core.live.scheduler import Scheduler

        cfg = self.config
        if cfg.max_streams < 1:
            raise InputError(f"--max-streams must be at least 1, got {cfg.max_streams}")
        if cfg.engine != "auto":
            check_engine(cfg.engine)
        hold = None
        if cfg.engine == "artalk" or (cfg.engine == "auto" and self._model_present()):
            self._artalk = self._create("artalk", 0)  # loaded once; every stream shares it
            # one precision cast for the server's life (a lock means the model is shared: no)
            hold = getattr(self._artalk, "hold_precision", None) if self._lock is None else None
        elif cfg.engine == "auto":
            self.model_note = "no ARTalk model checkpoint found: streams use the weight-free energy engine"
        self.default_engine = ("artalk" if self._artalk is not None else "energy") if cfg.engine == "auto" else cfg.engine
        self._warm_up()
        self.scheduler = Scheduler(batch=cfg.batch, lock=self._lock, hold=hold)
        self._started.set()
        return self

    def _warm_up(self) -> None:
        """One short silent stream through each engine streams may use (imports, the first call's
        kernel choices: seconds on a busy machine), so the first client's lag is its compute only."""
        import numpy as np

        names = {"energy"} | ({"artalk"} if self._artalk is not None and self.config.warm_up else set())
        for name in sorted(names):
            session = self.open_session(StartMessage(engine=name, sample_rate=16000), tool="artalk serve (warm-up)")
            try:
                silence = np.zeros(4000, "<i2").tobytes()
                for _ in range(8):  # 2 s in pieces: the interior steps of the smoothing too
                    session.feed(silence)
                    while session.ready and (work := session.take()) is not None:
                        session.compute(work)
                session.end()
                while session.ready:
                    work = session.take()
                    if work is None:
                        break
                    session.compute(work)
            finally:
                session.close()

    def _model_present(self) -> bool:
        from artalk_core.assets import checkpoint_path
        from artalk_core.errors import AssetError

        try:
            m = self.config.model
            checkpoint_path(m.checkpoint, m.assets, model_config=m.model_config)
        except AssetError:
            return False
        return True

    def _create(self, name: str, seed: int) -> MotionEngine:
        from artalk_core.engines import create_engine

        return create_engine(name, self.config.model, MotionOptions(engine=name, seed=seed))

    def engine(self, name: str | None, seed: int) -> MotionEngine:
        """The engine ``name`` (None: the default) for a stream; the model is shared by all streams."""
        from artalk_core.engines import motion_engines

        name = name or self.default_engine
        if name not in motion_engines():
            raise InputError(f"unknown engine '{name}': choose one of {', '.join(motion_engines())}")
        if name == "artalk":
            if self._artalk is None:
                raise InputError("this server has no ARTalk model (its checkpoint was not found): "
                                 "use the energy engine, or start the server with the model")
            return self._artalk
        key = (name, seed)
        if key not in self._engines:
            if len(self._engines) >= 64:
                self._engines.pop(next(iter(self._engines)))
            self._engines[key] = self._create(name, seed)
        return self._engines[key]

    def styles(self) -> list[str]:
        """The style names streams may ask for: ``default`` and the files of ``<assets>/style_motion``."""
        from artalk_core.assets import available_styles

        return ["default", *available_styles(self.config.model.assets)]

    def style(self, name: str) -> Style:
        """A style by name only (never a path: a client must not read the server's files)."""
        from artalk_core.assets import style_dir
        from artalk_core.formats.motion import read_style
        from artalk_core.styles import NO_STYLE_NAMES, Style, suggest

        if name.lower() in NO_STYLE_NAMES:
            return Style(motion=None, label="default", sha256="")
        path = style_dir(self.config.model.assets) / f"{name}.pt"
        names = self.styles()
        if name not in names or not path.is_file():
            raise StyleError(f"unknown style '{name}': {suggest(name, names)}available: {', '.join(names)}")
        mtime = path.stat().st_mtime_ns
        cached = self._styles.get(name)
        if cached is None or cached[0] != mtime:
            import numpy as np

            from artalk_core.fileio import sha256_file

            cached = (mtime, Style(motion=np.asarray(read_style(path), dtype=np.float32), label=name,
                                   sha256=sha256_file(path)))
            self._styles[name] = cached
        return cached[1]

    def info(self) -> dict[str, Any]:
        """What a page or client may ask the server: engines, styles, limits, whether a token is needed."""
        from artalk_core.engines import motion_engines

        engines = [e for e in motion_engines() if e != "artalk" or self._artalk is not None]
        return {"engine": self.default_engine, "engines": engines, "styles": self.styles(),
                "token_required": self.config.token is not None, "max_streams": self.config.max_streams,
                "streams": len(self._streams), "idle_seconds": self.config.idle_seconds}

    def open_session(self, start: StartMessage, *, tool: str = "artalk serve") -> LiveSession:
        """The session a start message asks for (InputError when its engine or style cannot be had)."""
        from artalk_core.audio.pcm import PcmLayout
        from artalk_core.generation import generation_options, motion_metadata, resolve_clip_length
        from artalk_core.live.session import LiveSession

        engine = self.engine(start.engine, start.seed)
        sty = self.style(start.style)
        clip = None if start.raw else resolve_clip_length(start.clip_length)
        motion = MotionOptions(style=sty, engine=engine.name, clip_length=start.clip_length, fix_pose=start.fix_pose,
                               seed=start.seed)
        options = generation_options(engine, sty, motion=motion, raw=start.raw, live=True,
                                     sample_rate=start.sample_rate, format=start.format, channels=start.channels)
        meta = motion_metadata(engine, sty, options=options, raw=start.raw, clip_length=clip, fix_pose=start.fix_pose,
                               audio=None, tool=tool)
        return LiveSession(engine, sty, PcmLayout(start.sample_format, start.channels, start.sample_rate),
                           meta=meta, raw=start.raw, clip_length=clip, fix_pose=start.fix_pose, name="the stream")

    # ---- streams -------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        """Streams connected now (started or not)."""
        return self._reserved

    async def handle(self, conn: Connection) -> None:
        """Serve one stream on ``conn`` until it ends, fails, goes away or the server stops."""
        if not self._started.is_set():
            raise RuntimeError("LiveService.start() was not called")
        if self.closing:
            await refuse(conn, "the server is shutting down", CloseCode.GOING_AWAY)
            return
        if self._reserved >= self.config.max_streams:
            await refuse(conn, f"the server is busy: it serves {self.config.max_streams} stream(s) at most "
                                "(--max-streams); try again later", CloseCode.BUSY)
            return
        self._reserved += 1
        stream = StreamRunner(self, conn)
        self._streams.add(stream)
        try:
            await stream.run()
        finally:
            self._streams.discard(stream)
            self._reserved -= 1

    async def shutdown(self, reason: str = "the server is shutting down", timeout: float = 3.0) -> None:
        """End every stream with an error line and close 1001 (within ``timeout`` seconds)."""
        self.closing = True
        streams = list(self._streams)
        for s in streams:
            s.terminate(reason, CloseCode.GOING_AWAY)
        if streams:
            await asyncio.wait([asyncio.ensure_future(s.finished.wait()) for s in streams], timeout=timeout)

    def close(self) -> None:
        """Stop the worker thread."""
        if self.scheduler is not None:
            self.scheduler.close()


__all__ = ["Connection", "ConnectionGone", "LiveConfig", "LiveService"]
