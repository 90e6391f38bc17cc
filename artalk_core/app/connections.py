"""Connection-level limits: uvicorn's h11 protocol with deadlines and a per-client connection cap.

uvicorn bounds the number of connections (``limit_concurrency``: beyond it every request gets 503)
and closes idle keep-alive connections, but only after a first response, and it has no deadline for
a request's head or body nor any notion of who holds the connections. So a few hundred sockets held
open (saying nothing, trickling headers and reconnecting, or trickling a body one byte every two
seconds, or announcing a longer ``Content-Length`` than they send) locked every visitor out, for as
long as they lasted. :func:`limited_protocol` adds what uvicorn lacks:

- a request's head (request line and headers) must be complete ``header_seconds`` after the
  connection opened or after its previous response, else the connection is closed;
- a request's body gets ``body_seconds`` plus one second per ``body_min_rate`` bytes received (the
  rate after a grace, as Apache's mod_reqtimeout), and never more than ``body_max_seconds`` in all:
  past that the client gets ``408`` and the connection is closed. Time while the server itself is
  not reading (flow control) does not count;
- one client address may hold at most ``client_connections`` connections; one more is answered
  ``429`` and closed at once, so one client cannot take the whole ``limit_concurrency``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectionLimits:
    """The numbers of :func:`limited_protocol` (see the module docstring; the defaults are
    :class:`~artalk_core.app.config.AppConfig`'s); ``body_min_rate`` in bytes per second; ``exempt``:
    client addresses without a per-client cap (the ``--share`` tunnel, through which every visitor comes)."""

    header_seconds: float
    body_seconds: float
    body_min_rate: float
    body_max_seconds: float
    client_connections: int
    exempt: frozenset[str] = frozenset()


def _plain_response(status: int, reason: str, text: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection (written straight to the socket:
    these answers come when no request, or no whole request, was handed to the app)."""
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


TOO_MANY = _plain_response(429, "Too Many Requests",
                           "too many connections from your address at once: close some and try again")
TOO_SLOW = _plain_response(408, "Request Timeout", "the request body came too slowly or not at all")


def limited_protocol(limits: ConnectionLimits) -> type:
    """uvicorn's h11 protocol class with :class:`ConnectionLimits` (one class per server: the
    per-client counts are shared by its connections)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_per_client: Counter[str] = Counter()

    class LimitedH11Protocol(H11Protocol):
        _timer: Any = None
        _counted: str | None = None
        _body_start: float | None = None
        _body_bytes = 0

        # -- per-client cap -------------------------------------------------------------------

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            host = self.client[0] if self.client else ""
            if host and host not in limits.exempt:
                if open_per_client[host] >= limits.client_connections:
                    transport.write(TOO_MANY)
                    transport.close()
                    return
                open_per_client[host] += 1
                self._counted = host
            self._arm(limits.header_seconds, self._head_expired)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted is not None:
                open_per_client[self._counted] -= 1
                if open_per_client[self._counted] <= 0:
                    del open_per_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        # -- deadlines ------------------------------------------------------------------------

        def _arm(self, seconds: float, callback: Any) -> None:
            self._disarm()
            self._timer = self.loop.call_later(max(seconds, 0.0), callback)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_expired(self) -> None:
            self._timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def _body_deadline(self) -> float:
            assert self._body_start is not None
            paced = limits.body_seconds + self._body_bytes / limits.body_min_rate
            return self._body_start + min(paced, limits.body_max_seconds)

        def _body_check(self) -> None:
            self._timer = None
            if self._body_start is None or self.transport.is_closing():
                return
            now = time.monotonic()
            if self.flow.read_paused:  # the app is not reading: the client is not the slow one
                self._body_start += limits.body_seconds
                self._arm(limits.body_seconds, self._body_check)
                return
            deadline = self._body_deadline()
            if now < deadline:
                self._arm(deadline - now, self._body_check)
                return
            self._body_start = None
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(TOO_SLOW)
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._body_start is not None:
                self._body_bytes += len(data)
            super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                if self._body_start is None:  # the head just arrived: now the body's clock runs
                    self._body_start, self._body_bytes = time.monotonic(), 0
                    self._arm(limits.body_seconds, self._body_check)
            elif state is not h11.IDLE:
                self._body_start = None
                if self._timer is not None:
                    self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm(limits.header_seconds, self._head_expired)

    return LimitedH11Protocol


__all__ = ["ConnectionLimits", "limited_protocol"]
