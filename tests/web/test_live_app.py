"""`artalk app` serves the live endpoint and page beside its own (the same routes as `artalk serve`)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from artalk_core.options import ModelOptions

pytest.importorskip("gradio")
pytest.importorskip("websockets")


def test_app_mounts_the_live_endpoint_and_page(tmp_path: Path) -> None:
    import websockets

    from artalk_core.app import AppConfig
    from artalk_core.app.server import AppServer

    srv = AppServer(AppConfig(model=ModelOptions(assets=tmp_path), size=64, preload=False), port=0).start()
    try:
        with urllib.request.urlopen(srv.url + "/live", timeout=60) as r:
            assert r.status == 200 and b"artalk <span>live</span>" in r.read()
        with urllib.request.urlopen(srv.url + "/live/config.json", timeout=60) as r:
            config = json.loads(r.read())
        assert config["app"] is True and config["engine"] == "energy"
        with urllib.request.urlopen(srv.url + "/config", timeout=60) as r:
            assert b"(/live)" in r.read()  # the main page links to it
        ws_url = srv.url.replace("http://", "ws://") + "/live"
        pcm = np.round(np.sin(np.arange(20_000) / 9.0) * 9000).astype("<i2").tobytes()

        async def stream() -> list[str]:
            async with websockets.connect(ws_url) as ws:
                await ws.send(json.dumps({"type": "start"}))
                await ws.send(pcm)
                await ws.send(json.dumps({"type": "end"}))
                return [str(m) async for m in ws]

        lines = asyncio.run(stream())
        assert json.loads(lines[-1])["frames"] == 32 and len(lines) == 34
    finally:
        srv.close()
