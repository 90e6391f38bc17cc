"""`artalk app` in a real browser: headless Chromium driven by Playwright against the app on 127.0.0.1.

Needs the Python ``playwright`` package and a Chromium binary (Debian's ``chromium`` package at
/usr/bin/chromium, or $ARTALK_CHROMIUM); skipped otherwise. ``ARTALK_SCREENSHOT=1`` saves the
README screenshot to docs/app_screenshot.png.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURE, REPO

CHROMIUM = Path(os.environ.get("ARTALK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 # a fake microphone (a beep) that needs no permission prompt, for the recording test
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ARTALK_CHROMIUM)")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except Error as e:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from artalk_core.audio import load_audio, write_wav

    path = tmp_path_factory.mktemp("wav") / "hello.wav"
    write_wav(path, load_audio(FIXTURE / "speech_16k.wav").samples[:32000])
    return path


def _server(assets: Path) -> Any:
    from artalk_core.webapp import AppConfig, AppServer

    return AppServer(AppConfig(assets=assets, size=256), host="127.0.0.1", port=0).start()


@pytest.fixture(scope="module")
def model_app(tiny_assets: Path) -> Iterator[Any]:
    server = _server(tiny_assets)
    yield server
    server.close()


@pytest.fixture(scope="module")
def energy_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = _server(tmp_path_factory.mktemp("no_model"))
    yield server
    server.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    ctx.close()


def wait_for_video(page: Any) -> dict[str, Any]:
    """Wait until the player holds a loaded video; returns its readyState, duration and size."""
    page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0; }", timeout=TIMEOUT_MS)
    return page.evaluate("() => { const v = document.getElementById('video');"
                         " return {ready: v.readyState, duration: v.duration, width: v.videoWidth}; }")


def fetch(server: Any, href: str) -> tuple[str, bytes]:
    url = href if href.startswith("http") else server.url + href
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.headers["Content-Type"], r.read()


def test_upload_style_generate_plays_video_and_offers_downloads(model_app, page, short_wav, tmp_path):
    import av
    import torch

    page.goto(model_app.url)
    page.wait_for_selector("#style option[value='tiny_0']", state="attached")
    assert page.locator("#notice").inner_text().startswith("FLAME_with_eye.pt not found")
    assert page.locator("#lang option").all_inner_texts() == ["English", "中文", "日本語", "Deutsch", "Français",
                                                             "Español"]
    page.set_input_files("#audio-file", str(short_wav))
    page.select_option("#style", "tiny_0")
    page.click("#generate")
    info = wait_for_video(page)
    assert info["duration"] == pytest.approx(2.0, abs=0.15) and info["width"] == 256
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')")
    assert page.locator("#progress").evaluate("p => p.value") == 1

    links = {a.get_attribute("data-file"): (a.get_attribute("href"), a.get_attribute("download"))
             for a in page.locator("#downloads a").all()}
    assert set(links) == {"video.mp4", "motion.safetensors", "motion.pt", "vertices.h5"}
    assert links["motion.pt"][1] == "hello_tiny_0_mesh_motions.pt"
    ctype, data = fetch(model_app, links["motion.pt"][0])
    (tmp_path / "m.pt").write_bytes(data)
    assert tuple(torch.load(tmp_path / "m.pt", weights_only=True).shape) == (50, 106)
    ctype, data = fetch(model_app, page.locator("#video").get_attribute("src"))
    assert ctype == "video/mp4"
    (tmp_path / "v.mp4").write_bytes(data)
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 50

    shot = tmp_path / "app_screenshot.png"
    page.evaluate("() => new Promise((done) => { const v = document.getElementById('video');"
                  " v.addEventListener('seeked', done, {once: true}); v.currentTime = 1.0; })")
    # headless Chromium paints a loading spinner over a paused frame: show the bare frame instead
    page.evaluate("() => document.getElementById('video').removeAttribute('controls')")
    page.wait_for_timeout(200)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ARTALK_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "app_screenshot.png")


def test_validation_messages_on_the_page(model_app, page, tmp_path):
    page.goto(model_app.url)
    page.wait_for_selector("#style option[value='tiny_0']", state="attached")
    page.click("#generate")
    page.wait_for_selector("#message:not([hidden])")
    assert page.locator("#message").inner_text() == "Please upload an audio file"

    page.check("#mode-text")
    assert page.locator("#text").is_visible() and not page.locator("#audio-file").is_visible()
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('message').textContent === 'Please input text content'")

    page.check("#mode-audio")
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"definitely not audio " * 50)
    page.set_input_files("#audio-file", str(bad))
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('message').textContent.startsWith('unsupported file')")
    assert page.locator("#generate").is_enabled()


def test_no_model_text_and_example_with_energy_engine(energy_app, page):
    page.goto(energy_app.url)
    page.wait_for_selector("#notice:not([hidden])")
    notice = page.locator("#notice").inner_text()
    assert "released model not found in" in notice
    assert "using the weight-free energy engine and the stand-in head" in notice
    assert page.locator("#style option").all_inner_texts() == ["default"]

    # text -> espeak-ng -> video
    page.check("#mode-text")
    page.fill("#text", "Hello from the web page.")
    page.select_option("#lang", "English")
    page.click("#generate")
    first = wait_for_video(page)
    assert first["duration"] > 0.5
    src_text = page.locator("#video").get_attribute("src")

    # a bundled example (the project's assets/*.wav) -> a new video
    examples = page.locator("#examples button")
    if examples.count() == 0:
        pytest.skip("no bundled example WAVs in the project's assets/")
    examples.first.click()
    assert page.locator("#mode-audio").is_checked() and page.locator("#audio-preview").is_visible()
    page.click("#generate")
    page.wait_for_function(f"() => document.getElementById('video').getAttribute('src') !== {json.dumps(src_text)}")
    assert wait_for_video(page)["duration"] > 1.0


def test_record_in_the_browser_then_generate(energy_app, page):
    page.goto(energy_app.url)
    page.wait_for_selector("#notice:not([hidden])")
    if not page.evaluate("() => !!(navigator.mediaDevices && window.MediaRecorder)"):
        pytest.skip("this Chromium has no MediaRecorder / mediaDevices")
    page.click("#record")
    page.wait_for_function("() => document.getElementById('record').classList.contains('recording')")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("() => document.getElementById('audio-name').textContent.includes('recording.')")
    page.click("#generate")
    info = wait_for_video(page)
    assert info["duration"] > 0.5
    assert page.locator("#message").is_hidden()
