"""Live streams over any message connection: the ``/live`` protocol's server side, without a web framework.

:class:`LiveService` holds what all streams share (the engines, loaded once; the styles; the
:class:`~artalk_core.live.scheduler.Scheduler` and its worker thread) and runs one stream per
connection (:meth:`LiveService.handle`). A connection is anything with ``receive`` / ``send`` /
``close`` coroutines (:class:`Connection`); :mod:`artalk_web.live` adapts starlette's WebSocket.

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
import contextlib
import hmac
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from artalk_core.constants import (
    LIVE_IDLE_SECONDS,
    LIVE_MAX_AHEAD_SECONDS,
    LIVE_MAX_STREAMS,
    LIVE_SEND_QUEUE_LINES,
)
from artalk_core.errors import ArtalkError, InputError, StyleError
from artalk_core.fileio import PathLike
from artalk_core.live.protocol import (
    MAX_BINARY_BYTES,
    CloseCode,
    ProtocolError,
    StartMessage,
    close_code,
    error_line,
    is_end,
    parse_start,
    parse_text,
)

if TYPE_CHECKING:
    from artalk_core.engines.base import MotionEngine
    from artalk_core.live.scheduler import LiveJob, Scheduler
    from artalk_core.live.session import LiveSession
    from artalk_core.styles import Style

log = logging.getLogger("artalk.live")


class Connection(Protocol):
    """One client's message channel (a WebSocket). ``receive`` returns text, bytes, or None once
    the client has gone; ``send`` raises :class:`ConnectionGone` when it cannot deliver."""

    async def receive(self) -> str | bytes | None: ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class ConnectionGone(Exception):
    """The client's connection is closed (raised by :meth:`Connection.send`)."""


@dataclass
class LiveConfig:
    """A live server's settings (``artalk serve``'s options)."""

    assets: PathLike | None = None
    checkpoint: PathLike | None = None
    model_config: PathLike | None = None
    device: str = "auto"
    precision: str = "fp32"
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
        self._streams: set[_Stream] = set()
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
            checkpoint_path(self.config.checkpoint, self.config.assets)
        except AssetError:
            return False
        return True

    def _create(self, name: str, seed: int) -> MotionEngine:
        from artalk_core.engines import EngineSettings, create_engine

        cfg = self.config
        return create_engine(name, EngineSettings(checkpoint=cfg.checkpoint, model_config=cfg.model_config,
                                                  assets=cfg.assets, device=cfg.device, precision=cfg.precision,
                                                  seed=seed))

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

        return ["default", *available_styles(self.config.assets)]

    def style(self, name: str) -> Style:
        """A style by name only (never a path: a client must not read the server's files)."""
        from artalk_core.assets import style_dir
        from artalk_core.formats.motion import read_style
        from artalk_core.styles import NO_STYLE_NAMES, Style, suggest

        if name.lower() in NO_STYLE_NAMES:
            return Style(motion=None, label="default", sha256="")
        path = style_dir(self.config.assets) / f"{name}.pt"
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
        options = generation_options(engine, sty, style_start=0, raw=start.raw, clip_length=start.clip_length,
                                     fix_pose=start.fix_pose, live=True, sample_rate=start.sample_rate,
                                     format=start.format, channels=start.channels)
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
            await _refuse(conn, "the server is shutting down", CloseCode.GOING_AWAY)
            return
        if self._reserved >= self.config.max_streams:
            await _refuse(conn, f"the server is busy: it serves {self.config.max_streams} stream(s) at most "
                                "(--max-streams); try again later", CloseCode.BUSY)
            return
        self._reserved += 1
        stream = _Stream(self, conn)
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


async def _refuse(conn: Connection, message: str, code: CloseCode) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.send(error_line(message)), 2.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(int(code), message[:120]), 2.0)


class _Stream:
    """One connection's stream: a reader (the client's messages), a sender (lines out), the job."""

    def __init__(self, service: LiveService, conn: Connection) -> None:
        self.service = service
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.job: LiveJob | None = None
        self.session: LiveSession | None = None
        self.lines: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self.queued = 0  # frame lines queued, not yet sent
        self.over = False
        self.drained = asyncio.Event()
        self.finished = asyncio.Event()
        self.gone = False  # the client's connection is closed
        self._reader: asyncio.Task[None] | None = None

    # ---- the worker's side (called through the loop) ------------------------------------------
    def _deliver(self, lines: list[str], over: bool) -> None:
        """Called in the worker thread: hand the lines to the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to send to
            self.loop.call_soon_threadsafe(self._on_lines, lines, over)

    def _on_lines(self, lines: list[str], over: bool) -> None:
        self.drained.set()
        if self.over:
            return
        limit = self.service.config.send_queue_lines
        if self.queued + len(lines) > limit:
            self.terminate(f"the client did not read its frames: {limit} lines were waiting to be sent, "
                           "so the stream was dropped", CloseCode.TOO_SLOW, drop_queued=True)
            return
        for line in lines:
            self.lines.put_nowait(line)
        self.queued += len(lines)
        if over:
            self.over = True
            err = self.session.error if self.session is not None else None
            code = CloseCode.NORMAL if err is None else close_code(err)
            self.lines.put_nowait((int(code), "" if err is None else str(err)[:120]))
            self._stop_reader()

    # ---- ending ----------------------------------------------------------------------------------
    def terminate(self, message: str, code: CloseCode, *, drop_queued: bool = False) -> None:
        """End the stream now: an error line (after the lines already queued, unless ``drop_queued``)
        and a close with ``code``; the session is freed by the worker."""
        if self.over:
            return
        self.over = True
        if drop_queued:
            while not self.lines.empty():
                self.lines.get_nowait()
            self.queued = 0
        self.lines.put_nowait(error_line(message))
        self.lines.put_nowait((int(code), message[:120]))
        self._abandon()
        self._stop_reader()

    def _abandon(self) -> None:
        if self.job is not None and self.service.scheduler is not None:
            self.service.scheduler.abandon(self.job)

    def _stop_reader(self) -> None:
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    # ---- the tasks ---------------------------------------------------------------------------------
    async def run(self) -> None:
        sender = asyncio.ensure_future(self._send_loop())
        self._reader = asyncio.ensure_future(self._read_loop())
        try:
            await asyncio.wait({sender, self._reader}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():  # the client is gone, or the stream was closed
                self._stop_reader()
            else:  # the reader ended: the client said end, went away, or broke the protocol
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
                if self.gone:
                    pass
                elif not self.over and self.session is not None and self.session.ended:
                    await sender  # the last chunk, then the end line
                else:  # an error line and a close are queued; a client that does not read gets 2 s
                    await asyncio.wait_for(sender, timeout=2.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            for task in (sender, self._reader):
                if task is not None and not task.done():
                    task.cancel()
            if not self.over:
                self.over = True
                self._abandon()
            self.finished.set()

    async def _send_loop(self) -> None:
        """Send each queued line; a (code, reason) item closes the connection and ends the loop."""
        while True:
            item = await self.lines.get()
            if isinstance(item, tuple):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.conn.close(*item), 2.0)
                return
            try:
                await self.conn.send(item)
            except ConnectionGone:
                self.gone = self.over = True
                self._abandon()
                return
            if not item.startswith('{"error"'):
                self.queued -= 1

    async def _read_loop(self) -> None:
        try:
            await self._read()
        except ProtocolError as e:
            self.terminate(str(e), e.code)
        except ArtalkError as e:
            self.terminate(str(e), close_code(e))
        except asyncio.TimeoutError:
            self.terminate(f"no message from the client for {self.service.config.idle_seconds:g} s: the stream "
                           "was closed", CloseCode.IDLE)
        except ConnectionGone:
            self.gone = self.over = True
            self._abandon()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: say so without details, keep the server
            log.exception("live stream failed")
            self.terminate(f"internal error ({type(e).__name__}); the stream was stopped", CloseCode.SERVER_ERROR)

    async def _receive(self) -> str | bytes:
        msg = await asyncio.wait_for(self.conn.receive(), self.service.config.idle_seconds)
        if msg is None:
            raise ConnectionGone()
        return msg

    async def _read(self) -> None:
        svc = self.service
        first = await self._receive()
        if not isinstance(first, str):
            raise ProtocolError("the first message must be the start message (JSON text), not audio",
                                CloseCode.UNSUPPORTED)
        start = parse_start(parse_text(first))
        token = svc.config.token
        if token is not None and not hmac.compare_digest((start.token or "").encode(), token.encode()):
            raise ProtocolError("this server needs its token in the start message (\"token\"): missing or wrong",
                                CloseCode.POLICY)
        session = svc.open_session(start)
        from artalk_core.live.scheduler import LiveJob

        self.session = session
        self.job = LiveJob(session, self._deliver)
        self.lines.put_nowait(session.header)
        scheduler = svc.scheduler
        assert scheduler is not None
        max_ahead = svc.config.max_ahead_seconds
        while True:
            while session.backlog_seconds > max_ahead:  # a fast sender: stop reading until the worker catches up
                self.drained.clear()
                scheduler.submit(self.job)
                await self.drained.wait()
            msg = await self._receive()
            if isinstance(msg, str):
                if is_end(parse_text(msg)):
                    session.end()
                    scheduler.submit(self.job)
                    return
            else:
                if len(msg) > MAX_BINARY_BYTES:
                    raise ProtocolError(f"an audio message may hold at most {MAX_BINARY_BYTES} bytes, got {len(msg)}: "
                                        "send the audio in smaller pieces", CloseCode.TOO_BIG)
                session.feed(msg)
                if session.ready:
                    scheduler.submit(self.job)


__all__ = ["Connection", "ConnectionGone", "LiveConfig", "LiveService"]
