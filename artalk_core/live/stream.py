"""One live stream on one connection: a reader (the client's messages), a sender (lines out) and
the stream's job in the scheduler, with the guarantees :mod:`artalk_core.live.service` lists."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import TYPE_CHECKING, Protocol

from artalk_core.errors import ArtalkError
from artalk_core.live.protocol import (
    MAX_BINARY_BYTES,
    CloseCode,
    ProtocolError,
    close_code,
    error_line,
    is_end,
    parse_start,
    parse_text,
)

if TYPE_CHECKING:
    from artalk_core.live.scheduler import LiveJob
    from artalk_core.live.service import LiveService
    from artalk_core.live.session import LiveSession

log = logging.getLogger("artalk.live")


class Connection(Protocol):
    """One client's message channel (a WebSocket). ``receive`` returns text, bytes, or None once
    the client has gone; ``send`` raises :class:`ConnectionGone` when it cannot deliver."""

    async def receive(self) -> str | bytes | None: ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class ConnectionGone(Exception):
    """The client's connection is closed (raised by :meth:`Connection.send`)."""


async def refuse(conn: Connection, message: str, code: CloseCode) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.send(error_line(message)), 2.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(int(code), message[:120]), 2.0)


class StreamRunner:
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


__all__ = ["Connection", "ConnectionGone", "StreamRunner", "refuse"]
