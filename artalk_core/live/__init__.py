"""Live use: speech in as it is spoken, motion out as it is made (the library side, no web framework).

- :mod:`artalk_core.live.session`: :class:`LiveSession`, one stream: PCM bytes in, motion-stream lines out.
- :mod:`artalk_core.live.scheduler`: the worker thread that computes every stream's chunks.
- :mod:`artalk_core.live.protocol`: the messages of the ``/live`` WebSocket protocol.
- :mod:`artalk_core.live.service`: streams over any connection (limits, tokens, timeouts, shutdown).
- :mod:`artalk_core.live.client`: :class:`LiveClient`, the async client for agents and scripts.

The web front end (the starlette app, the page) is :mod:`artalk_web.live`; the commands are
``artalk serve`` and ``artalk live``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LiveClient", "LiveSession"]


def __getattr__(name: str) -> Any:
    # Imported on use: the client needs the websockets package, the session numpy and the engines.
    if name == "LiveSession":
        from artalk_core.live.session import LiveSession

        return LiveSession
    if name == "LiveClient":
        from artalk_core.live.client import LiveClient

        return LiveClient
    raise AttributeError(name)
