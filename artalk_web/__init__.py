"""Front ends of artalk that use a web framework (beside ``artalk_cli``, over ``artalk_core``).

- :mod:`artalk_web.live`: the ``/live`` WebSocket endpoint and the live page (starlette, uvicorn),
  served by ``artalk serve`` and mounted by ``artalk app``.
"""
