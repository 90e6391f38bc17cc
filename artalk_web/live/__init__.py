"""The live endpoint and page on starlette: ``ws://HOST:PORT/live`` and ``GET /live``.

- :mod:`artalk_web.live.app`: the routes (:func:`live_routes`) and the app behind the Origin/Host guard.
- :mod:`artalk_web.live.server`: :class:`LiveServer`, the app on uvicorn (``artalk serve``).
- ``static/``: the page (HTML, JS, the capture AudioWorklet) and three.js, vendored.

The streams themselves are :mod:`artalk_core.live` (no web framework there).
"""
