"""Serving the page: the Gradio app mounted on FastAPI behind a guard, run by uvicorn.

We run uvicorn ourselves (rather than ``Blocks.launch``) to put :class:`Guard` in front of every
route before the server starts, to choose the HTTP limits, and to clean up on SIGINT and SIGTERM
alike. The guard closes what Gradio leaves open by default (measured with Gradio 6):

- Gradio's CORS middleware only withholds CORS headers from a foreign ``Origin``; the request
  still runs, so any web page could queue jobs on this machine. The guard answers 403 to a foreign
  ``Origin`` (or ``Origin: null``), to a browser's cross-site POST without one (``Sec-Fetch-Site``),
  and, bound to loopback, to a ``Host`` other than a loopback name (DNS rebinding).
- ``max_file_size`` bounds each file, but one upload request may carry 1000 files: the guard bounds
  the whole body (413 on a larger ``Content-Length`` before reading, and while streaming a chunked
  body) and the number of multipart parts; a negative or malformed length is a 400. Any other body
  (JSON, which Gradio reads whole into memory) is bounded at 1 MB, so the connections a flood may
  hold cannot each hold a whole upload's worth of memory.
- With ``api_open`` (Gradio's default off Spaces) ``POST /gradio_api/run/...`` skips the queue and
  its concurrency limit; the queue is made the only way in.
- uvicorn has no deadline for a request's head or body, and its connection limit answers 503 to
  whoever comes next, so a few hundred slow sockets locked everyone out:
  :mod:`artalk_core.app.connections` adds deadlines and makes room for a newcomer by closing the
  stalled connection heard from least recently (of its own address, or of the address holding the most);
- Gradio checks that an input file was uploaded through it only under ``launch()``: the page's
  events refuse every other path first (:mod:`artalk_core.app.inputs`); ``show_error`` is off, so
  what a visitor reads is only our plain-words ``gr.Error`` messages, never an exception's text.

A client that goes away mid-upload is dropped quietly (Gradio's upload route would raise). On
shutdown the running job is told to stop first, so its progress stream can end within uvicorn's
grace; what still streams after it is ended cleanly, not reported as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from artalk_core.app.config import AppConfig, Catalog, build_catalog
from artalk_core.app.handlers import Generator
from artalk_core.app.jobs import JobStore
from artalk_core.errors import DependencyError, OutputError

log = logging.getLogger("artalk.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})
MAX_PARTS = 8
"""Multipart parts per request (the page uploads one file at a time)."""
BODY_SLACK = 1 << 20
"""Bytes a request body may exceed the largest upload by (multipart headers, JSON bodies)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


DEFAULT_PORTS = {"http": 80, "https": 443}


def _hostport(value: str) -> tuple[str, int | None]:
    """``host[:port]`` or an origin URL -> (lowercase host without brackets, port; an origin without
    one gets its scheme's default, a Host header without one None)."""
    parts = urlsplit(value if "//" in value else f"//{value}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None and parts.scheme:
        port = DEFAULT_PORTS.get(parts.scheme, -1)
    return (parts.hostname or "").lower(), port


def same_origin(origin: str, host_header: str) -> bool:
    """Whether a browser's ``Origin`` names this server as the request's ``Host`` does.

    A Host without a port matches either default port: behind a TLS-terminating proxy (the
    ``--share`` tunnel) the page is https while the server sees plain http.
    """
    if origin == "null":
        return False
    o_host, o_port = _hostport(origin)
    h_host, h_port = _hostport(host_header)
    if not o_host or o_host != h_host:
        return False
    return o_port in DEFAULT_PORTS.values() if h_port is None else o_port == h_port


class Guard:
    """ASGI middleware: Origin/Host checks and request-body bounds (see the module docstring)."""

    def __init__(self, app: Any, *, max_body: int, loopback_only: bool, max_parts: int = MAX_PARTS,
                 max_other_body: int = BODY_SLACK, stopping: threading.Event | None = None) -> None:
        self.app = app
        self.max_body = max_body
        """The bound of a multipart body (uploads: Gradio streams their files to disk)."""
        self.max_other_body = min(max_other_body, max_body)
        """The bound of every other body (JSON: Gradio reads it whole into memory)."""
        self.loopback_only = loopback_only
        self.max_parts = max_parts
        self.stopping = stopping
        """Set when the server shuts down: a stream it then cancels is not an error to report."""

    @staticmethod
    async def refuse(send: Send, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def check_headers(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host_header = headers.get("host", "")
        host, _ = _hostport(host_header)
        if self.loopback_only and host not in LOOPBACK_NAMES:
            return 403, "unknown Host: this server answers only to its loopback address"
        origin = headers.get("origin")
        if origin is not None:
            if not same_origin(origin, host_header):
                return 403, "requests from other origins are refused"
        elif scope.get("method", "GET") not in SAFE_METHODS and headers.get("sec-fetch-site") in ("cross-site",
                                                                                                  "same-site"):
            return 403, "requests from other origins are refused"
        if scope["type"] == "http" and scope.get("method") not in SAFE_METHODS:
            length = headers.get("content-length")
            if length is not None:
                if not length.strip().isdigit():
                    return 400, "bad Content-Length"
                limit = self.body_limit(headers.get("content-type", "").encode("latin-1"))
                if int(length) > limit:
                    return 413, self.too_large(limit)
        return None

    def body_limit(self, content_type: bytes) -> int:
        return self.max_body if content_type.lower().startswith(b"multipart/") else self.max_other_body

    @staticmethod
    def too_large(limit: int) -> str:
        return f"the request is too large (at most {limit / 2**20:g} MB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = {"started": False, "done": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["done"] = True
            await send(message)

        try:
            await self._guarded(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if self.stopping is None or not self.stopping.is_set():
                raise
            # Shutting down: uvicorn cancels what still streams (a job's progress) after its grace;
            # end that response properly rather than have it reported as a broken one.
            if scope["type"] == "http" and state["started"] and not state["done"]:
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self.check_headers(scope)
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.refuse(send, *problem)
            return
        if scope["type"] == "websocket" or scope.get("method") in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctype = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-type"), b"")
        boundary = b""
        if ctype.lower().startswith(b"multipart/"):
            for piece in ctype.split(b";")[1:]:
                key, _, value = piece.strip().partition(b"=")
                if key.lower() == b"boundary":
                    boundary = b"--" + value.strip(b'"')
        limit = self.body_limit(ctype)
        state: dict[str, Any] = {"seen": 0, "parts": 0, "tail": b"", "refused": None, "started": False}

        async def bounded_receive() -> Message:
            if state["refused"] is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                state["seen"] += len(chunk)
                if state["seen"] > limit:
                    state["refused"] = (413, self.too_large(limit))
                elif boundary:
                    window = state["tail"] + chunk
                    state["parts"] += window.count(boundary) - state["tail"].count(boundary)
                    state["tail"] = window[-(len(boundary) - 1):]
                    if state["parts"] > self.max_parts + 1:  # +1: the closing delimiter
                        state["refused"] = (413, f"too many parts in one upload (at most {self.max_parts})")
                if state["refused"] is not None:
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"] is not None and not state["started"]:
                return  # the app's answer to the cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        from starlette.requests import ClientDisconnect

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except ClientDisconnect:
            if state["refused"] is None:
                return  # the client went away mid-body: nobody to answer, nothing to report
        except Exception:
            if state["refused"] is None:
                raise
        if state["refused"] is not None and not state["started"]:
            await self.refuse(send, *state["refused"])


async def plain_validation_error(request: Any, exc: Any) -> Any:
    """A malformed API request (``queue/join`` body and the like) -> 422 with one line in words,
    instead of pydantic's list of error objects (types, inputs echoed, links to its docs)."""
    from fastapi.responses import JSONResponse

    problems = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body" and not isinstance(part, int))
        problems.append(f"{where or 'the body'}: {str(error.get('msg', 'not valid')).lower()}")
    return JSONResponse({"detail": "The request is not valid (" + "; ".join(problems) + ")."}, status_code=422)


def require_gradio() -> None:
    """DependencyError (one line, exit 6) unless the ``artalk[app]`` extra is installed.

    Looked up without importing: Gradio must first be imported after ``GRADIO_TEMP_DIR`` points
    into our folder (some of its modules create folders under it at import).
    """
    from importlib.util import find_spec

    for name in ("gradio", "fastapi", "uvicorn"):
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: a module without a spec (None in sys.modules)
            found = False
        if not found:
            raise DependencyError(f"the web app needs Gradio ({name} is missing): pip install 'artalk[app]'")


@dataclass
class AppParts:
    """A built app: the ASGI app to serve and what it needs cleaned up."""

    asgi: Any
    blocks: Any
    catalog: Catalog
    generator: Generator
    jobs: JobStore
    previous_temp_dir: str | None = None
    """``GRADIO_TEMP_DIR`` before this app pointed it at its own cache (restored on close)."""
    live: Any = None
    """The /live streams (:class:`artalk_core.live.service.LiveService`) served beside the page."""

    def close(self) -> None:
        """Remove every file and give ``GRADIO_TEMP_DIR`` back."""
        if self.live is not None:
            self.live.close()
        _close_store(self.jobs, self.previous_temp_dir)


def _close_store(jobs: JobStore, previous_temp_dir: str | None) -> None:
    jobs.close()
    if os.environ.get("GRADIO_TEMP_DIR") == str(jobs.cache):
        if previous_temp_dir is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous_temp_dir


def build_app(config: AppConfig, *, host: str = "127.0.0.1", port: int = 8960, share: bool = False) -> AppParts:
    """The FastAPI app serving the page at ``/`` behind :class:`Guard`; nothing listens yet."""
    catalog = build_catalog(config)
    # results (served from the job folders, inside Gradio's cache) and uploads go keep_seconds after they were made
    jobs = JobStore(keep_seconds=config.keep_seconds, cache_seconds=config.keep_seconds)
    previous = os.environ.get("GRADIO_TEMP_DIR")
    try:
        # Gradio's uploads (and our job folders) go under our root, removed with it (read when Blocks is built).
        os.environ["GRADIO_TEMP_DIR"] = str(jobs.cache)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        require_gradio()
        import fastapi
        import gradio as gr
        from fastapi.exceptions import RequestValidationError
        from starlette.routing import Mount

        from artalk_core.app.layout import CSS, build_blocks
        from artalk_core.app.thumbs import avatar_thumbnails

        generator = Generator(config, catalog, jobs)
        pictures = avatar_thumbnails(catalog, jobs.root / "avatars")  # before Blocks: Gradio copies them in
        every = int(min(max(config.keep_seconds / 4, 1), 600))
        blocks = build_blocks(catalog, generator, jobs, max_seconds=config.max_seconds,
                              max_upload_bytes=config.max_upload_bytes,
                              delete_cache=(every, max(int(config.keep_seconds), 1)), pictures=pictures)
        blocks.queue(max_size=config.queue_size, default_concurrency_limit=4, api_open=False)
        root = fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app = gr.mount_gradio_app(root, blocks, path="", server_name=host, server_port=port,
                                  footer_links=["api"], run_history=False,
                                  show_error=False, max_file_size=config.max_upload_bytes, ssr_mode=False,
                                  mcp_server=False, css=CSS)
        for route in app.routes:  # Gradio's own app, mounted at "/": its routes raise the validation errors
            if isinstance(route, Mount) and isinstance(route.app, fastapi.FastAPI):
                route.app.add_exception_handler(RequestValidationError, plain_validation_error)
        # the live endpoint and page (artalk serve's) at /live, sharing the model under the generator's lock
        from artalk_core.live.service import LiveConfig, LiveService
        from artalk_web.live.app import HeadFile, live_routes

        live = LiveService(LiveConfig(model=config.model, engine=config.engine,
                                      warm_up=False), lock=generator.model_lock).start()
        app.router.routes[0:0] = live_routes(live, HeadFile(assets=config.model.assets), in_app=True)
        app.add_middleware(Guard, max_body=config.max_upload_bytes + BODY_SLACK,
                           loopback_only=host in LOOPBACK_NAMES and not share, stopping=jobs.closing)
    except BaseException:
        _close_store(jobs, previous)
        raise
    return AppParts(asgi=app, blocks=blocks, catalog=catalog, generator=generator, jobs=jobs,
                    previous_temp_dir=previous, live=live)


class AppServer:
    """The app on uvicorn; ``url`` is where it listens (port 0 picks a free one).

    ``start()`` serves from a background thread (tests); ``run()`` serves in the calling (main)
    thread until SIGINT or SIGTERM. Either way :meth:`close` (called by ``run``) removes every file.
    """

    def __init__(self, config: AppConfig, *, host: str = "127.0.0.1", port: int = 8960, share: bool = False) -> None:
        require_gradio()
        import uvicorn

        from artalk_core.app.connections import ConnectionLimits, limited_protocol

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OutputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        bound = self.sock.getsockname()[1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
        try:
            self.parts = build_app(config, host=host, port=bound, share=share)
        except BaseException:
            self.sock.close()
            raise
        self.share_url: str | None = None
        self.share_error: str | None = None
        self._share = share
        jobs, live = self.parts.jobs, self.parts.live

        class Server(uvicorn.Server):
            async def shutdown(self, sockets: Any = None) -> None:
                jobs.stop()  # a running job stops at its next step, so its stream can end in the grace
                await live.shutdown()  # every /live stream: an error line and close 1001
                await super().shutdown(sockets)

        limits = ConnectionLimits(header_seconds=config.header_seconds, body_seconds=config.body_seconds,
                                  body_min_rate=config.body_min_rate, body_max_seconds=config.body_max_seconds,
                                  client_connections=config.client_connections,
                                  max_connections=config.max_connections,
                                  # every visitor of the share link comes through the local tunnel client
                                  exempt=LOOPBACK_ADDRESSES if share else frozenset())
        # No limit_concurrency: it answers 503 to whoever comes next, while the protocol makes room by
        # closing a stalled connection; it bounds the connections (each runs at most one request).
        self.server = Server(uvicorn.Config(
            self.parts.asgi, log_level="warning", http=limited_protocol(limits), lifespan="on",
            server_header=False, backlog=2048, timeout_keep_alive=5,
            timeout_graceful_shutdown=10, h11_max_incomplete_event_size=64 * 1024))
        self._thread: threading.Thread | None = None

    @property
    def jobs(self) -> JobStore:
        return self.parts.jobs

    def _open_share(self) -> None:
        if not self._share:
            return
        import secrets

        from gradio import networking

        host, port = self.sock.getsockname()[:2]
        try:
            self.share_url = networking.setup_tunnel(host, port, secrets.token_urlsafe(32), None, None)
        except Exception as e:
            raise DependencyError(f"could not open a public share link (it needs internet access to "
                                  f"Gradio's share server): {e}") from e

    def start(self, timeout: float = 60.0) -> AppServer:
        """Serve from a background thread; returns once the app answers."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="artalk-app-server", daemon=True)
        self._thread.start()
        ready = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self.server.started or not self._thread.is_alive():
                ready.set()
                break
            threading.Event().wait(0.05)
        if not self.server.started:
            self.close()
            raise OutputError("the app server did not start")
        self._open_share()
        return self

    def run(self, ready: Callable[[AppServer], None] | None = None) -> None:
        """Serve in this (main) thread until Ctrl+C or SIGTERM, then remove every job's files."""

        from artalk_core.interrupt import stop_signals

        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal it caught again:
        # stop_signals turns that into an Interrupted, which ends serving here.
        try:
            with stop_signals():
                if ready is not None or self._share:
                    threading.Thread(target=self._announce, args=(ready,), daemon=True).start()
                self.server.run(sockets=[self.sock])
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def _announce(self, ready: Callable[[AppServer], None] | None) -> None:
        while not self.server.started and not self.server.should_exit:
            threading.Event().wait(0.05)
        if self.server.started:
            try:
                self._open_share()
            except DependencyError as e:
                self.share_error = str(e)
            if ready is not None:
                ready(self)

    def close(self) -> None:
        """Stop serving, stop a running job at its next progress report, remove every file."""
        self.server.should_exit = True
        self.parts.jobs.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(15)
        # a running generation unwinds at its next progress report; wait for it so that nothing
        # is written into the folders after they are removed
        if self.parts.generator.model_lock.acquire(timeout=30):
            self.parts.generator.model_lock.release()
        self.parts.close()
        with contextlib.suppress(OSError):
            self.sock.close()


__all__ = ["AppParts", "AppServer", "Guard", "build_app"]
