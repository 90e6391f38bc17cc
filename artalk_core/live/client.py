"""LiveClient: the async client of an ``artalk serve`` stream, for agents and scripts (``websockets``).

::

    async with LiveClient("ws://127.0.0.1:8961/live", style="default") as s:
        await s.send(pcm)            # 16-bit mono PCM at 16 kHz (bytes or an int16 array), any size
        await s.end()                # or leave the block: closing abandons the stream
        async for frame in s.frames():
            frame.t, frame.motion    # frame index, float32 [106], equal to `artalk generate`'s
    s.end_line                       # {"end": true, "frames": T, "audio_samples": ..., ...}

Sending and reading may run in two tasks at once (speech arrives while frames come back). A
stream the server refuses or ends with an error raises :class:`LiveError` (an InputError for a
refused request, exit 2; an OutputError when the server cannot be reached or fails, exit 4).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from artalk_core.errors import DependencyError, InputError, OutputError
from artalk_core.live.protocol import FORMATS, MAX_BINARY_BYTES, CloseCode

SEND_BYTES: int = 32 * 1024
"""Audio is sent in messages of at most this many bytes (the server reads up to 1 MiB)."""
_REFUSALS = frozenset({CloseCode.UNSUPPORTED, CloseCode.INVALID, CloseCode.POLICY, CloseCode.TOO_BIG})


class LiveError(OutputError):
    """The server could not be reached, failed, or ended the stream (``code``: its close code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LiveRefused(LiveError, InputError):
    """The server refused the request (bad option, unknown style, missing token): exit 2."""

    exit_code = 2


def live_error(message: str, code: int | None) -> LiveError:
    """The error for a stream ended with ``message`` and close ``code``."""
    return LiveRefused(message, code) if code in _REFUSALS else LiveError(message, code)


@dataclass(frozen=True)
class LiveFrame:
    """One motion frame: index ``t`` (25 fps) and ``motion`` float32 [106]; ``arrived``: its arrival
    time (``time.perf_counter``)."""

    t: int
    motion: np.ndarray
    arrived: float


def ws_url(url: str) -> str:
    """``ws://host:port/live`` from what a user may type: a ws(s):// or http(s):// URL, or host:port."""
    u = url.strip()
    if u.startswith(("http://", "https://")):
        u = "ws" + u[4:]
    elif not u.startswith(("ws://", "wss://")):
        u = "ws://" + u
    scheme, _, rest = u.partition("://")
    host, _, path = rest.partition("/")
    if not host:
        raise InputError(f"not a live server URL: {url!r} (expected ws://HOST:PORT/live)")
    return f"{scheme}://{host}/{path or 'live'}"


class LiveClient:
    """One live stream (see the module docstring). The start message's options are the keyword
    arguments; ``engine`` None takes the server's default, ``clip_length`` 0 keeps every frame."""

    def __init__(self, url: str, *, sample_rate: int = 16000, format: str = "s16le", channels: int = 1,
                 style: str = "default", engine: str | None = None, clip_length: int = 0, fix_pose: bool = False,
                 raw: bool = False, seed: int = 0, token: str | None = None, open_timeout: float = 30.0) -> None:
        if format not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.url = ws_url(url)
        self.format = format
        self.start: dict[str, Any] = {"type": "start", "sample_rate": int(sample_rate), "format": format,
                                      "channels": int(channels), "style": style, "clip_length": int(clip_length),
                                      "fix_pose": bool(fix_pose), "raw": bool(raw), "seed": int(seed)}
        if engine is not None:
            self.start["engine"] = engine
        if token is not None:
            self.start["token"] = token
        self.open_timeout = open_timeout
        self.header: dict[str, Any] = {}
        self.end_line: dict[str, Any] | None = None
        self._ws: Any = None
        self.bytes_sent = 0
        self.sent: list[tuple[int, float]] = []
        """(bytes sent in all, time.perf_counter()) after each message: when each sample left."""

    async def __aenter__(self) -> LiveClient:
        try:
            from websockets.asyncio.client import connect
        except ImportError:
            raise DependencyError("the live client needs the websockets package: pip install 'artalk[live]'") from None
        try:
            # no keepalive pings: a server busy with other streams stops reading a fast sender for a
            # while (backpressure) and so would miss its pongs; the server closes idle streams itself
            self._ws = await connect(self.url, open_timeout=self.open_timeout, max_size=None, compression="deflate",
                                     ping_interval=None)
        except (OSError, TimeoutError) as e:
            raise LiveError(f"cannot connect to {self.url}: {getattr(e, 'strerror', None) or e}") from None
        except Exception as e:  # websockets' handshake errors (403 for a refused Origin ...)
            raise LiveError(f"cannot open a stream at {self.url}: {e}") from None
        await self._ws.send(json.dumps(self.start))
        line = await self._recv_line()
        if line is None:
            raise self._closed_error("the server closed the stream before its header")
        obj = json.loads(line)
        if "error" in obj:
            await self._wait_close()
            raise live_error(f"the live server refused the stream: {obj['error']}", self._close_code())
        self.header = obj
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (before the end line: the server abandons the stream)."""
        if self._ws is not None:
            await self._ws.close()

    async def send(self, pcm: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Send audio: bytes in the stream's format, or an array (int16 for s16le, float32 for f32le)."""
        if isinstance(pcm, np.ndarray):
            want = np.dtype("<i2") if self.format == "s16le" else np.dtype("<f4")
            if pcm.dtype != want.newbyteorder("=") and pcm.dtype != want:
                raise InputError(f"a {self.format} stream takes {want.name} samples, got {pcm.dtype}")
            data = memoryview(np.ascontiguousarray(pcm, dtype=want).tobytes())
        else:
            data = memoryview(pcm).cast("B")
        step = min(SEND_BYTES, MAX_BINARY_BYTES)
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            await self._ws.send(bytes(piece))
            self.bytes_sent += len(piece)
            self.sent.append((self.bytes_sent, time.perf_counter()))

    async def end(self) -> None:
        """The speech is over: the server computes the rest and sends the end line."""
        await self._ws.send(json.dumps({"type": "end"}))

    async def lines(self) -> AsyncIterator[str]:
        """Every line after the header (frames, then the end line), as the server sends them;
        raises :class:`LiveError` on an error line or a close without the end line."""
        while True:
            line = await self._recv_line()
            if line is None:
                raise self._closed_error("the server closed the stream without its end line")
            if line.startswith('{"error"'):
                message = json.loads(line)["error"]
                await self._wait_close()
                raise live_error(f"the live server stopped the stream: {message}", self._close_code())
            yield line
            if line.startswith('{"end"'):
                self.end_line = json.loads(line)
                return

    async def frames(self) -> AsyncIterator[LiveFrame]:
        """Motion frames as they arrive, until the end line (see :meth:`lines`)."""
        async for line in self.lines():
            obj = json.loads(line)
            if "motion" in obj:
                yield LiveFrame(t=int(obj["t"]), motion=np.asarray(obj["motion"], dtype=np.float32),
                                arrived=time.perf_counter())

    # ---- internals -------------------------------------------------------------------------------
    async def _recv_line(self) -> str | None:
        from websockets.exceptions import ConnectionClosed

        try:
            msg = await self._ws.recv()
        except ConnectionClosed:
            return None
        return msg if isinstance(msg, str) else msg.decode("utf-8", "replace")

    async def _wait_close(self) -> None:
        import asyncio
        import contextlib

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.wait_closed(), 5.0)

    def _close_code(self) -> int | None:
        return getattr(self._ws, "close_code", None)

    def _closed_error(self, what: str) -> LiveError:
        code, reason = self._close_code(), getattr(self._ws, "close_reason", "") or ""
        return live_error(f"{what} (close {code}{': ' + reason if reason else ''})", code)


__all__ = ["LiveClient", "LiveError", "LiveFrame", "LiveRefused", "live_error", "ws_url"]
