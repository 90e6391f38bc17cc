"""LiveService over an in-memory connection: what each stream is guaranteed (limits, token,
malformed input, idle, slow readers, vanishing clients, shutdown), without a web server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.audio import load_audio
from artalk_core.formats.motion import read_motion
from artalk_core.live.protocol import CloseCode
from artalk_core.live.service import ConnectionGone, LiveConfig, LiveService
from artalk_core.options import ModelOptions, MotionOptions
from tests.conftest import FIXTURE

WAV = FIXTURE / "speech_16k.wav"
PCM = np.round(load_audio(WAV).samples * 32768).astype("<i2").tobytes()


class FakeConnection:
    """A client: ``inbox`` holds what it sends (None: it went away); ``lines`` what it received."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.lines: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.reading = asyncio.Event()
        self.reading.set()
        self.got_line = asyncio.Event()

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    async def send(self, text: str) -> None:
        if self.closed is not None:
            raise ConnectionGone()
        await self.reading.wait()  # a client that stops reading blocks the server's sends
        self.lines.append(text)
        self.got_line.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def put(self, *messages: str | bytes | dict | None) -> None:
        for m in messages:
            self.inbox.put_nowait(json.dumps(m) if isinstance(m, dict) else m)

    @property
    def error(self) -> str:
        return json.loads(self.lines[-1]).get("error", "") if self.lines else ""


def serve(config: LiveConfig, body: Callable[[LiveService], Awaitable[None]], *, lock: Any = None) -> LiveService:
    """Start a service (energy engine unless configured) and run ``body`` in an event loop."""
    service = LiveService(config, lock=lock).start()
    try:
        asyncio.run(asyncio.wait_for(body(service), 60))
    finally:
        service.close()
    return service


def energy(**kw: Any) -> LiveConfig:
    return LiveConfig(engine="energy", model=ModelOptions(assets="/nonexistent-assets"), **kw)


def test_a_stream_gives_the_offline_frames(tiny_assets: Path) -> None:
    from artalk_core.pipeline import generate

    async def body(service: LiveService) -> None:
        conn = FakeConnection()
        conn.put({"type": "start", "style": "tiny_0"}, *[PCM[i:i + 5000] for i in range(0, len(PCM), 5000)],
                 {"type": "end"})
        await service.handle(conn)
        assert conn.closed == (1000, "")
        got = read_motion(("\n".join(conn.lines) + "\n").encode()).data
        np.testing.assert_array_equal(got, generate(WAV, motion=MotionOptions(style="tiny_0", clip_length=0), model=ModelOptions(assets=tiny_assets)).data)
        assert json.loads(conn.lines[0])["meta"]["created_by"] == "artalk serve"

    serve(LiveConfig(model=ModelOptions(assets=tiny_assets, device="cpu")), body)


def test_max_streams_token_and_bad_requests() -> None:
    async def body(service: LiveService) -> None:
        a, b = FakeConnection(), FakeConnection()
        a.put({"type": "start", "token": "t0ken"})
        b.put({"type": "start", "token": "t0ken"})
        tasks = [asyncio.ensure_future(service.handle(c)) for c in (a, b)]
        await a.got_line.wait()
        await b.got_line.wait()
        third = FakeConnection()
        await service.handle(third)  # refused at once: two streams is the limit
        assert third.closed is not None and third.closed[0] == CloseCode.BUSY and "busy" in third.error
        assert service.info()["streams"] == 2
        a.put(None)
        b.put({"type": "end"})
        await asyncio.gather(*tasks)
        assert "empty" in b.error and b.closed[0] == CloseCode.INVALID  # type: ignore[index]
        assert service.active == 0

        cases: list[tuple[list[Any], str, int]] = [
            ([{"type": "start"}], "token", CloseCode.POLICY),
            ([{"type": "start", "token": "wrong"}], "token", CloseCode.POLICY),
            ([b"\x00\x01"], "start message", CloseCode.UNSUPPORTED),
            (["{oops"], "not valid JSON", CloseCode.INVALID),
            (["[" * 30_000 + "]" * 30_000], "nested too deep", CloseCode.INVALID),
            (["x" * 70_000], "at most", CloseCode.TOO_BIG),
            ([{"type": "start", "token": "t0ken", "style": "nope"}], "unknown style 'nope'", CloseCode.INVALID),
            ([{"type": "start", "token": "t0ken", "engine": "artalk"}], "no ARTalk model", CloseCode.INVALID),
            ([{"type": "start", "token": "t0ken"}, bytes(2 << 20)], "at most 1048576 bytes", CloseCode.TOO_BIG),
            ([{"type": "start", "token": "t0ken"}, {"type": "start"}], "already started", CloseCode.UNSUPPORTED),
            ([{"type": "start", "token": "t0ken"}, {"type": "pause"}], "unknown message type", CloseCode.UNSUPPORTED),
        ]
        for messages, words, code in cases:
            conn = FakeConnection()
            conn.put(*messages)
            await service.handle(conn)
            assert conn.closed is not None and conn.closed[0] == code, (messages, conn.closed)
            assert words in conn.error, (words, conn.lines)
            assert "Traceback" not in "".join(conn.lines) and "/" not in conn.error
        assert service.active == 0

    serve(energy(max_streams=2, token="t0ken"), body)


def test_idle_stream_is_closed() -> None:
    async def body(service: LiveService) -> None:
        silent, started = FakeConnection(), FakeConnection()
        started.put({"type": "start"}, PCM[:32000])
        await asyncio.gather(service.handle(silent), service.handle(started))
        for conn in (silent, started):
            assert conn.closed is not None and conn.closed[0] == CloseCode.IDLE and "0.3 s" in conn.error

    serve(energy(idle_seconds=0.3), body)


def test_a_client_that_stops_reading_is_dropped() -> None:
    """Its sends block, its lines queue up to the bound, then the stream is dropped and freed."""

    async def body(service: LiveService) -> None:
        conn = FakeConnection()
        conn.reading.clear()
        conn.put({"type": "start"}, PCM[:160_000])  # 5 s: 125 frame lines for a queue of 20
        task = asyncio.ensure_future(service.handle(conn))
        await asyncio.wait_for(task, 20)
        assert conn.closed is None  # the close could not be sent either: the connection was dropped
        assert service.active == 0 and conn.lines == []
        (stream_job,) = jobs
        assert stream_job.freed.is_set()

    jobs: list[Any] = []
    from artalk_core.live import scheduler as sched

    real_init = sched.LiveJob.__init__

    def tracking(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        jobs.append(self)

    sched.LiveJob.__init__ = tracking  # type: ignore[method-assign]
    try:
        serve(energy(send_queue_lines=20), body)
    finally:
        sched.LiveJob.__init__ = real_init  # type: ignore[method-assign]


def test_a_vanishing_client_frees_its_stream_and_shutdown_ends_the_others() -> None:
    async def body(service: LiveService) -> None:
        gone, staying = FakeConnection(), FakeConnection()
        gone.put({"type": "start"}, PCM[:50_000], None)  # goes away mid-stream
        staying.put({"type": "start"}, PCM[:50_000])
        first = asyncio.ensure_future(service.handle(gone))
        second = asyncio.ensure_future(service.handle(staying))
        await asyncio.wait_for(first, 10)
        assert gone.closed is None and service.active == 1
        while len(staying.lines) < 10:
            await asyncio.sleep(0.01)
        await service.shutdown()
        await asyncio.wait_for(second, 5)
        assert staying.closed is not None and staying.closed[0] == CloseCode.GOING_AWAY
        assert "shutting down" in staying.error
        late = FakeConnection()
        await service.handle(late)
        assert late.closed is not None and late.closed[0] == CloseCode.GOING_AWAY

    serve(energy(), body)


def test_a_fast_sender_is_not_read_ahead_of_the_worker() -> None:
    """While the worker is busy, the service stops reading a stream's messages once
    max_ahead_seconds of its audio wait (TCP backpressure then slows the sender)."""
    gate = threading.Lock()

    async def body(service: LiveService) -> None:
        conn = FakeConnection()
        pieces = [PCM[i:i + 16_000] for i in range(0, 320_000, 16_000)]  # 20 pieces of 0.5 s
        conn.put({"type": "start"}, *pieces, {"type": "end"})
        gate.acquire()
        task = asyncio.ensure_future(service.handle(conn))
        await asyncio.sleep(0.5)
        assert 8 <= conn.inbox.qsize() <= 19  # about 1 s of audio read (2 pieces), the rest waits unread
        gate.release()
        await asyncio.wait_for(task, 20)
        assert conn.closed == (1000, "") and json.loads(conn.lines[-1])["frames"] == 250

    serve(energy(max_ahead_seconds=1.0), body, lock=gate)
