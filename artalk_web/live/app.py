"""The ``/live`` routes on starlette: the WebSocket endpoint, the page, its head and its options.

- ``GET /live``: the page (static HTML); ``ws://HOST:PORT/live``: the stream (the same path);
- ``GET /live/config.json``: engines, styles, whether a token is needed (:meth:`LiveService.info`);
- ``GET /live/head.glb``: the head in its rest pose (:func:`artalk_core.live.head.head_glb`),
  built once on first use and sent gzip-compressed to browsers that accept it;
- ``GET /live/static/...``: the page's scripts and three.js (package data, no network needed).

:func:`live_routes` gives these routes to any starlette or FastAPI app (``artalk app`` mounts
them beside its page); :func:`build_live_app` is the stand-alone app of ``artalk serve``, behind
the web app's Origin/Host guard (a page on another origin is refused at the handshake).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterable
from importlib.resources import files
from typing import Any

from artalk_core.app.server import Guard
from artalk_core.fileio import PathLike
from artalk_core.live.service import ConnectionGone, LiveService

STATIC = "static"


class WebSocketConnection:
    """starlette's WebSocket as a :class:`artalk_core.live.service.Connection`."""

    def __init__(self, websocket: Any) -> None:
        self.ws = websocket

    async def receive(self) -> str | bytes | None:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("text") is not None:
            return str(message["text"])
        return bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except Exception as e:  # the socket is closed (starlette/uvicorn raise several kinds)
            raise ConnectionGone() from e

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


class HeadFile:
    """The page's ``.glb``, built once (in a thread: it takes seconds) and kept with its gzip form."""

    def __init__(self, *, flame: PathLike | None = None, assets: PathLike | None = None) -> None:
        self.flame, self.assets = flame, assets
        self._data: tuple[bytes, bytes] | None = None
        self._lock = threading.Lock()

    def _build(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._data is None:
                from artalk_core.live.head import head_glb

                raw = head_glb(flame=self.flame, assets=self.assets)
                self._data = (raw, gzip.compress(raw, 6))
            return self._data

    async def get(self) -> tuple[bytes, bytes]:
        """(the .glb, its gzip compression)."""
        return self._data if self._data is not None else await asyncio.to_thread(self._build)


def _static_bytes(name: str) -> bytes:
    return (files("artalk_web.live") / STATIC / name).read_bytes()


def live_routes(service: LiveService, head: HeadFile, *, in_app: bool = False) -> list[Any]:
    """The routes of the live endpoint and page (see the module docstring)."""
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles

    page = _static_bytes("index.html")

    async def page_route(request: Any) -> Any:
        return HTMLResponse(page, headers={"cache-control": "no-cache"})

    async def stream_route(websocket: Any) -> None:
        await websocket.accept()
        await service.handle(WebSocketConnection(websocket))

    async def config_route(request: Any) -> Any:
        return JSONResponse({**service.info(), "app": in_app, "note": service.model_note})

    async def head_route(request: Any) -> Any:
        from artalk_core.errors import ArtalkError

        try:
            raw, packed = await head.get()
        except ArtalkError as e:
            return Response(f"the head cannot be made: {e}", status_code=500, media_type="text/plain")
        headers = {"cache-control": "max-age=3600"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="model/gltf-binary", headers={**headers, "content-encoding": "gzip"})
        return Response(raw, media_type="model/gltf-binary", headers=headers)

    static = StaticFiles(packages=[("artalk_web.live", STATIC)])
    return [Route("/live", page_route, methods=["GET", "HEAD"]), WebSocketRoute("/live", stream_route),
            Route("/live/config.json", config_route), Route("/live/head.glb", head_route),
            Mount("/live/static", app=static, name="live-static")]


class LiveGuard(Guard):
    """The web app's guard (foreign Origin refused, Host checked on loopback) that also lets the
    origins given with ``--allowed-origin`` in (a page elsewhere that embeds the head)."""

    def __init__(self, app: Any, *, allowed_origins: Iterable[str] = (), **kw: Any) -> None:
        super().__init__(app, **kw)
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    def check_headers(self, scope: Any) -> tuple[int, str] | None:
        if self.allowed:
            origin = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"origin"), None)
            if origin is not None and origin.rstrip("/").lower() in self.allowed:
                # checked here: the base guard sees the request without its (allowed) Origin
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"origin"]}
        return super().check_headers(scope)


def build_live_app(service: LiveService, head: HeadFile, *, loopback_only: bool,
                   allowed_origins: Iterable[str] = ()) -> Any:
    """The stand-alone app of ``artalk serve``: the live routes, ``/`` redirecting to the page,
    behind :class:`LiveGuard`."""
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    async def root(request: Any) -> Any:
        return RedirectResponse("/live")

    app = Starlette(routes=[*live_routes(service, head), Route("/", root)])
    return LiveGuard(app, max_body=1 << 16, loopback_only=loopback_only, allowed_origins=allowed_origins)


__all__ = ["HeadFile", "LiveGuard", "WebSocketConnection", "build_live_app", "live_routes"]
