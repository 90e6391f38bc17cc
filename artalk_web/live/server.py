"""``artalk serve``: the live endpoint and page on uvicorn, headless (no Gradio).

Like the web app (:class:`artalk_core.app.server.AppServer`) the socket is bound first (port 0
picks a free one), requests have the web app's deadlines and per-client cap (:mod:`artalk_core.app.connections`)
and the app sits behind the Origin/Host guard. On SIGTERM or Ctrl+C every stream gets an error
line and close 1001 before uvicorn closes the connections, and the process exits at once (a chunk
under computation is not waited for).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from artalk_core.app.config import AppConfig
from artalk_core.app.connections import ConnectionLimits, limited_protocol
from artalk_core.app.server import LOOPBACK_NAMES
from artalk_core.errors import DependencyError, InputError, OutputError
from artalk_core.fileio import PathLike
from artalk_core.live.protocol import MAX_FRAME_BYTES
from artalk_core.live.service import LiveConfig, LiveService
from artalk_web.live.app import HeadFile, build_live_app


def require_live() -> None:
    """DependencyError (exit 6) unless the ``artalk[live]`` extra is installed."""
    from importlib.util import find_spec

    for name in ("starlette", "uvicorn", "websockets"):
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise DependencyError(f"artalk serve needs {name}: pip install 'artalk[live]'")


class LiveServer:
    """The live app on uvicorn; ``url`` is where it listens. ``start()`` serves from a background
    thread (tests), ``run()`` in the calling main thread until SIGINT/SIGTERM."""

    def __init__(self, config: LiveConfig, *, host: str = "127.0.0.1", port: int = 8961,
                 allowed_origins: Iterable[str] = (), flame: PathLike | None = None,
                 header_seconds: float | None = None) -> None:
        require_live()
        import uvicorn

        loopback = host in LOOPBACK_NAMES
        if not loopback and config.token is None:
            raise InputError(f"listening on {host} lets other machines in: give --token SECRET (clients send it "
                             "as \"token\" in their start message), or listen on 127.0.0.1")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OutputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        bound = self.sock.getsockname()[1]
        name = f"[{host}]" if ":" in host else host
        self.url = f"http://{name}:{bound}"
        self.ws_url = f"ws://{name}:{bound}/live"
        try:
            self.service = LiveService(config).start()  # loads the model once
        except BaseException:
            self.sock.close()
            raise
        self.head = HeadFile(flame=flame, assets=config.model.assets)
        app = build_live_app(self.service, self.head, loopback_only=loopback, allowed_origins=allowed_origins)
        service = self.service

        class Server(uvicorn.Server):
            async def shutdown(self, sockets: Any = None) -> None:
                await service.shutdown()  # every stream: an error line and close 1001, first
                await super().shutdown(sockets)

        web = AppConfig()  # the web app's connection limits (request heads and bodies, per client)
        limits = ConnectionLimits(header_seconds=web.header_seconds if header_seconds is None else header_seconds,
                                  body_seconds=web.body_seconds, body_min_rate=web.body_min_rate,
                                  body_max_seconds=web.body_max_seconds, client_connections=web.client_connections)
        self.server = Server(uvicorn.Config(
            app, log_level="warning", http=limited_protocol(limits), lifespan="off", server_header=False,
            ws_max_size=MAX_FRAME_BYTES, limit_concurrency=max(64, 4 * config.max_streams), backlog=2048,
            # no keepalive pings: uvicorn reads a socket only as the app takes its messages, so a stream
            # held back by backpressure (a sender faster than the model) would miss its pongs and be
            # failed; idle streams are closed by the service's own timeout instead
            ws_ping_interval=None,
            timeout_keep_alive=5, timeout_graceful_shutdown=3))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> LiveServer:
        """Serve from a background thread; returns once it listens."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="artalk-live-server", daemon=True)
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self.server.started or not self._thread.is_alive():
                break
            waited.wait(0.02)
        if not self.server.started:
            self.close()
            raise OutputError("the live server did not start")
        return self

    def run(self, ready: Callable[[LiveServer], None] | None = None) -> None:
        """Serve in this (main) thread until Ctrl+C or SIGTERM."""

        from artalk_core.interrupt import stop_signals

        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal it caught again:
        # stop_signals turns that into an Interrupted, which ends serving here.
        try:
            with stop_signals():
                if ready is not None:
                    threading.Thread(target=self._announce, args=(ready,), daemon=True).start()
                self.server.run(sockets=[self.sock])
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def _announce(self, ready: Callable[[LiveServer], None]) -> None:
        while not self.server.started and not self.server.should_exit:
            threading.Event().wait(0.02)
        if self.server.started:
            ready(self)

    def close(self) -> None:
        """Stop serving and the worker."""
        self.server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self.service.close()
        with contextlib.suppress(OSError):
            self.sock.close()


__all__ = ["LiveServer", "require_live"]
