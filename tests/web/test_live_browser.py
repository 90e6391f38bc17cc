"""The live page in headless Chromium with a fake microphone (a WAV file): frames arrive, the head
moves (its morph weights and jaw change, shown by the audio clock), and nothing errors.

One browser session; the server runs in-process (the energy engine: frames a few 40-ms frames
after the speech). Needs playwright and Chromium (as tests/cli/test_app_browser.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artalk_core.options import ModelOptions
from tests.conftest import FIXTURE

CHROMIUM = Path(os.environ.get("ARTALK_CHROMIUM", "/usr/bin/chromium"))
SHOTS = os.environ.get("ARTALK_LIVE_SCREENSHOTS")  # a folder to keep the screenshots in (for the docs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("uvicorn")
    from artalk_core.live.service import LiveConfig
    from artalk_web.live.server import LiveServer

    assets = tmp_path_factory.mktemp("no_assets")
    srv = LiveServer(LiveConfig(engine="energy", model=ModelOptions(assets=assets)), port=0).start()
    yield srv
    srv.close()


def test_fake_microphone_drives_the_head(server: Any, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ARTALK_CHROMIUM)")
    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={FIXTURE / 'speech_16k.wav'}",
            "--autoplay-policy=no-user-gesture-required", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        except Error as e:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console.append(str(e)))
        page.set_default_timeout(60_000)
        page.goto(server.url + "/live")
        page.wait_for_function("() => !document.querySelector('#start').disabled")  # the head is loaded
        assert page.evaluate("() => window.artalkLive.head.targetIndex.length") == 136
        page.click("#start")
        page.wait_for_function("() => window.artalkLive.received > 100 && window.artalkLive.shown > 40")
        # what the head shows, recorded at every drawn frame until it has moved through many values
        page.evaluate("""() => { const seen = window.__seen = {shown: new Set(), exp0: new Set(), jaw: new Set(), head: new Set()};
            const h = window.artalkLive.head;
            const look = () => { seen.shown.add(window.artalkLive.shown);
                seen.exp0.add(h.mesh.morphTargetInfluences[h.targetIndex[0]].toFixed(6));
                seen.jaw.add(h.bones.jaw.quaternion.x.toFixed(6));
                seen.head.add(h.bones.global.quaternion.toArray().map((v) => v.toFixed(6)).join());
                requestAnimationFrame(look); };
            look(); }""")
        page.wait_for_function("() => Object.values(window.__seen).every((s) => s.size > 5)")
        state = page.evaluate("""() => { const s = window.artalkLive;
            return {lags: s.lags, delay: s.delay, errors: s.errors, header: s.header, late: s.late}; }""")
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / "live_page.png"))
        page.screenshot(path=str(tmp_path / "live.png"))
        page.click("#stop")
        page.wait_for_function("() => window.artalkLive.ended && window.artalkLive.closed === 1000")
        final = page.evaluate("() => ({errors: window.artalkLive.errors, text: document.body.innerText})")
        browser.close()
    assert state["header"]["meta"]["engine"] == "energy" and state["header"]["block_frames"] == 1
    assert 0.24 < state["delay"] < 2.0 and state["lags"] and max(state["lags"]) < 1.0
    assert state["errors"] == [] and final["errors"] == [] and console == []
    assert "Done:" in final["text"] and "Real-time factor" in final["text"]
    assert (tmp_path / "live.png").stat().st_size > 10_000
