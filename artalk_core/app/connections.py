"""Connection-level limits: uvicorn's h11 protocol with deadlines, and room made by closing stalled connections.

uvicorn bounds the number of connections (``limit_concurrency``: beyond it every request gets 503)
and closes idle keep-alive connections, but only after a first response, and it has no deadline for
a request's head or body nor any notion of who holds the connections. So a few hundred sockets held
open (saying nothing, trickling headers or a body and reconnecting before any deadline) locked every
visitor out for as long as they lasted; a per-address cap that refused the next connection (429)
then let 32 such sockets from 127.0.0.1 lock out every local user. :func:`limited_protocol` adds:

- a request's head (request line and headers) must be complete ``header_seconds`` after the
  connection opened or after its previous response, else the connection is closed;
- a request's body gets ``body_seconds`` plus one second per ``body_min_rate`` bytes received (the
  rate after a grace, as Apache's mod_reqtimeout), and never more than ``body_max_seconds`` in all:
  past that the client gets ``408`` and the connection is closed. Time while the server itself is
  not reading (flow control) does not count;
- room for a new connection is made, not refused: a connection *waits on its client* while it has
  no complete request (before a head is complete, in a request body, idle between requests), and
  is *served* from its complete request until the response ends. When a client address holds
  ``client_connections`` connections, or the server ``max_connections``, the waiting connection
  heard from least recently (of that address; at the server's cap, of the address holding the
  most) is closed for the new one (a body cut off that way gets ``503``). When every one is being
  served: at the address's share the new connection gets ``429``; at the server's cap the address
  holding the most gives up its longest-running response if it holds more than the newcomer's
  address will (so a few addresses holding event streams cannot keep others out), else ``503``.

So stalling costs a flood its own connections, never a newcomer's: a page load (whose head comes at
once) gets in, from any address, loopback included, while trickling clients evict each other. What
still bounds one address is the responses it keeps open (event streams it never ends, reading very
slowly): ``client_connections`` of them fill its share. Memory: at most ``max_connections``
connections, each buffering at most uvicorn's 64 KiB of head or unread body.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
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
    max_connections: int = 256
    exempt: frozenset[str] = frozenset()


class ConnectionTable:
    """Who holds which connection, and which connections wait on their client (no sockets here).

    A connection is any hashable token. :meth:`admit` takes a new one (waiting for its first head)
    and says which connection must go to make room for it, or why it may not stay. Memory and time:
    a dict entry per connection; :meth:`admit` at the server's cap scans the client addresses at
    most twice (at most ``max_connections`` of them).
    """

    def __init__(self, *, max_connections: int, client_connections: int, exempt: frozenset[str] = frozenset(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = max_connections
        self.client_connections = client_connections
        self.exempt = exempt
        self.clock = clock
        self.client_of: dict[Hashable, str] = {}
        self.held: Counter[str] = Counter()
        self.waiting: dict[str, OrderedDict[Hashable, float]] = {}
        """client -> {connection: when last heard from}, least recently heard first."""
        self.served: dict[str, OrderedDict[Hashable, float]] = {}
        """client -> {connection: since when its request is served}, longest first."""

    def __len__(self) -> int:
        return len(self.client_of)

    def admit(self, conn: Hashable, client: str) -> tuple[int | None, list[Hashable]]:
        """Take ``conn`` from ``client``: (None, connections to close for it), or (429 or 503, [])
        when it may not stay (see the module docstring). The connections returned are forgotten
        here already; the caller closes them."""
        victim: Hashable | None = None
        if client not in self.exempt and self.held[client] >= self.client_connections:
            victim = self._first(self.waiting, client)
            if victim is None:
                return 429, []
        elif len(self.client_of) >= self.max_connections:
            victim = self._first(self.waiting, self._greediest(self.waiting))
            if victim is None:
                # all served: the address holding the most gives up its longest response, if it
                # holds more than the newcomer's will (max-min fairness), else the newcomer waits
                greediest = self._greediest(self.served)
                if greediest is None or self.held[greediest] <= self.held[client] + 1:
                    return 503, []
                victim = self._first(self.served, greediest)
        if victim is not None:
            self.leave(victim)
        self.client_of[conn] = client
        self.held[client] += 1
        self.set_waiting(conn, True)
        return None, [] if victim is None else [victim]

    def _greediest(self, kind: dict[str, OrderedDict[Hashable, float]]) -> str | None:
        """The address holding the most connections among those with one of ``kind`` (ties: the
        one whose first of ``kind`` is the oldest)."""
        best: tuple[int, float] | None = None
        found = None
        for client, queue in kind.items():
            key = (self.held[client], -next(iter(queue.values())))
            if best is None or key > best:
                best, found = key, client
        return found

    @staticmethod
    def _first(kind: dict[str, OrderedDict[Hashable, float]], client: str | None) -> Hashable | None:
        queue = kind.get(client) if client is not None else None
        return next(iter(queue)) if queue else None

    @staticmethod
    def _drop(kind: dict[str, OrderedDict[Hashable, float]], client: str, conn: Hashable) -> None:
        queue = kind.get(client)
        if queue is not None and queue.pop(conn, None) is not None and not queue:
            del kind[client]

    def set_waiting(self, conn: Hashable, waiting: bool) -> None:
        """Mark ``conn`` as waiting on its client or as served (since now, if it was not already)."""
        client = self.client_of.get(conn)
        if client is None:
            return
        into, other = (self.waiting, self.served) if waiting else (self.served, self.waiting)
        self._drop(other, client, conn)
        queue = into.setdefault(client, OrderedDict())
        if conn not in queue:
            queue[conn] = self.clock()

    def heard(self, conn: Hashable) -> None:
        """``conn``'s client sent something: it goes to the back of the eviction order."""
        queue = self.waiting.get(self.client_of.get(conn, ""))
        if queue is not None and conn in queue:
            queue[conn] = self.clock()
            queue.move_to_end(conn)

    def leave(self, conn: Hashable) -> None:
        """Forget ``conn`` (closed, or chosen to be closed); a second call does nothing."""
        client = self.client_of.pop(conn, None)
        if client is None:
            return
        self._drop(self.waiting, client, conn)
        self._drop(self.served, client, conn)
        self.held[client] -= 1
        if self.held[client] <= 0:
            del self.held[client]


def _plain_response(status: int, reason: str, text: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection (written straight to the socket:
    these answers come when no request, or no whole request, was handed to the app)."""
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


TOO_MANY = _plain_response(429, "Too Many Requests",
                           "too many connections from your address are being served at once: try again shortly")
BUSY = _plain_response(503, "Service Unavailable", "the server is busy: try again shortly")
TOO_SLOW = _plain_response(408, "Request Timeout", "the request body came too slowly or not at all")
REFUSALS = {429: TOO_MANY, 503: BUSY}


def limited_protocol(limits: ConnectionLimits) -> type:
    """uvicorn's h11 protocol class with :class:`ConnectionLimits` (one class per server: its
    connections share one :class:`ConnectionTable`, kept as the class's ``table``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    table = ConnectionTable(max_connections=limits.max_connections, client_connections=limits.client_connections,
                            exempt=limits.exempt)

    class LimitedH11Protocol(H11Protocol):
        _timer: Any = None
        _body_start: float | None = None
        _body_bytes = 0

        # -- room for new connections -------------------------------------------------------------

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            refusal, victims = table.admit(self, self.client[0] if self.client else "")
            for victim in victims:
                victim.evict()  # type: ignore[attr-defined]
            if refusal is not None:
                transport.write(REFUSALS[refusal])
                transport.close()
                return
            self._arm(limits.header_seconds, self._head_expired)

        def evict(self) -> None:
            """Closed to make room: a body cut off is told why (a silent close reads as a lost
            keep-alive connection, which clients retry)."""
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.SEND_BODY and (self.cycle is None or not self.cycle.response_started):
                self.transport.write(BUSY)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            table.leave(self)
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
            table.heard(self)
            if self._body_start is not None:
                self._body_bytes += len(data)
            super().data_received(data)

        def handle_events(self) -> None:
            super().handle_events()
            state = self.conn.their_state
            table.set_waiting(self, state is h11.IDLE or state is h11.SEND_BODY)
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

    LimitedH11Protocol.table = table  # type: ignore[attr-defined]
    return LimitedH11Protocol


__all__ = ["ConnectionLimits", "ConnectionTable", "limited_protocol"]
