"""`artalk app` in a real browser: headless Chromium driven by Playwright against the Gradio app.

One app (the tiny random model of the parity fixture, 128 px video) and one browser serve the whole
module. Needs the ``playwright`` package and Chromium (Debian's at /usr/bin/chromium, or
$ARTALK_CHROMIUM); skipped otherwise. scripts/app_screenshot.py remakes the README screenshot.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artalk_core.options import ModelOptions

pytest.importorskip("gradio")

from tests.conftest import FIXTURE  # noqa: E402

CHROMIUM = Path(os.environ.get("ARTALK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 # a fake microphone (a beep) that needs no permission prompt, for the recording test
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TIMEOUT_MS = 90_000
STAGE_WORDS = ("Checking the speech", "Listening to the speech", "Generating the motion", "Moving the head",
               "Drawing the video", "Speaking the text")
# Collects every text the progress trackers show, so a test can check the stage names seen.
WATCH_PROGRESS = """() => { window.__seen = new Set();
  new MutationObserver(() => document.querySelectorAll('[data-testid=status-tracker]').forEach(
      e => { if (e.innerText.trim()) window.__seen.add(e.innerText.trim()); }))
    .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


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


@pytest.fixture(scope="module")
def server(tiny_assets: Path) -> Iterator[Any]:
    from artalk_core.app import AppConfig
    from artalk_core.app.server import AppServer

    srv = AppServer(AppConfig(model=ModelOptions(assets=tiny_assets), size=128, max_seconds=20), port=0).start()
    yield srv
    srv.close()


@pytest.fixture()
def page(browser: Any, server: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server.url)
    pg.wait_for_selector("#generate")
    pg.evaluate(WATCH_PROGRESS)
    yield pg
    ctx.close()


def choose(page: Any, elem_id: str, label: str) -> None:
    """Pick ``label`` in a Gradio dropdown."""
    page.click(f"#{elem_id} input")
    page.locator("ul[role=listbox] li", has_text=label).first.click()


def video_src(page: Any) -> str:
    return page.evaluate("() => document.querySelector('#video video')?.src || ''")


def generate(page: Any, *, before: str = "") -> dict[str, Any]:
    """Click Generate, wait for a new video that plays; returns its facts."""
    page.click("#generate")
    page.wait_for_function("(old) => { const v = document.querySelector('#video video');"
                           " return v && v.src && v.src !== old && v.readyState >= 2 && v.duration > 0; }",
                           arg=before, timeout=TIMEOUT_MS)
    facts = page.evaluate("() => { const v = document.querySelector('#video video');"
                          " return {src: v.src, duration: v.duration, width: v.videoWidth, autoplay: v.autoplay,"
                          " time: v.currentTime}; }")
    page.wait_for_function("(t) => document.querySelector('#video video').currentTime > t", arg=facts["time"])
    return facts


def downloads(page: Any) -> dict[str, str]:
    page.wait_for_selector("#downloads a[download]")
    return {a.get_attribute("download"): a.get_attribute("href") for a in page.locator("#downloads a[download]").all()}


def status(page: Any) -> str:
    """The line under the video that says why there is no result ('' while hidden)."""
    return page.evaluate("() => { const s = document.querySelector('#status');"
                         " return s && s.offsetParent !== null ? s.innerText.trim() : ''; }")


def overlap(page: Any, a: str, b: str) -> bool:
    """Whether the boxes of the elements ``a`` and ``b`` (CSS selectors) intersect on screen."""
    return page.evaluate("([a, b]) => { const r = document.querySelector(a).getBoundingClientRect(),"
                         " q = document.querySelector(b).getBoundingClientRect();"
                         " return r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom; }",
                         [a, b])


def test_upload_style_generate_plays_and_downloads(page, short_wav, tmp_path):
    import torch

    from artalk_core.formats.motion import read_motion

    notice = page.locator("#notice").inner_text()
    assert "stand-in mesh" in notice and "/" not in notice
    page.set_input_files("#audio input[type=file]", str(short_wav))
    page.wait_for_selector("#audio audio", state="attached")
    choose(page, "style", "tiny_0")
    video = generate(page)
    assert video["duration"] == pytest.approx(2.0, abs=0.15) and video["width"] == 128 and video["autoplay"]
    seen = " ".join(page.evaluate("() => [...window.__seen]"))
    assert any(word in seen for word in STAGE_WORDS), seen
    files = downloads(page)
    assert set(files) == {"hello_tiny_0_mesh.motion.safetensors", "hello_tiny_0_mesh_motions.pt",
                          "hello_tiny_0_mesh.h5", "hello_tiny_0_mesh.glb"}
    page.wait_for_selector("#preview-3d canvas")  # the .glb also shows in the page's 3D viewer
    pt = page.request.get(files["hello_tiny_0_mesh_motions.pt"])
    assert pt.ok and torch.load(io.BytesIO(pt.body()), weights_only=True).shape == (50, 106)
    st = page.request.get(files["hello_tiny_0_mesh.motion.safetensors"])
    (tmp_path / "m.safetensors").write_bytes(st.body())
    assert read_motion(tmp_path / "m.safetensors").data.shape == (50, 106)
    assert "/tmp" not in page.locator("body").inner_text()

    # every download's name whole (Gradio cut them: '.motion.safetensors' and '_motions.pt' looked alike)
    cut = page.evaluate("() => [...document.querySelectorAll('#downloads td.filename')]"
                        ".filter(e => e.scrollWidth > e.clientWidth || [...e.children].some("
                        "c => c.scrollWidth > c.clientWidth)).map(e => e.innerText)")
    assert cut == []
    assert not overlap(page, "#style-file [data-testid=block-label]", "#style-file [data-testid=upload-icon]")

    # a validation refusal keeps the result; the page's Cancel is idle
    assert page.locator("#cancel").is_disabled()
    page.click("#mode label:has-text('Text')")
    page.wait_for_selector("#text textarea", state="visible")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#text').innerText.includes('Please type a text.')")
    assert video_src(page) == video["src"] and len(downloads(page)) == len(files)
    page.click("#mode label:has-text('Audio')")
    page.wait_for_selector("#audio", state="visible")

    # a failed run clears the previous result and says why in words under the video (no popup),
    # without server paths; the next run starts without it
    bad = tmp_path / "notes.wav"
    bad.write_text("these are notes, not speech")
    page.click("#audio button[aria-label='Clear']")
    page.set_input_files("#audio input[type=file]", str(bad))
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('could not be used')")
    message = status(page)
    assert message.startswith("The speech could not be used") and "/" not in message and "bytes>" not in message
    assert video_src(page) == "" and page.locator("#downloads a[download]").count() == 0
    assert page.locator("#preview-3d canvas").count() == 0 and page.locator(".toast-body").count() == 0
    assert page.locator("#cancel").is_disabled()
    page.click("#audio button[aria-label='Clear']")
    page.set_input_files("#audio input[type=file]", str(short_wav))
    page.wait_for_selector("#audio audio", state="attached")
    generate(page)
    assert status(page) == "" and page.locator(".toast-body").count() == 0


def test_validation_messages_on_the_inputs_before_queueing(page, server):
    jobs_before = len(server.jobs.jobs())
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#audio').innerText.includes('Please upload or record "
                           "speech.')")
    page.click("#mode label:has-text('Text')")
    page.wait_for_selector("#text textarea", state="visible")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#text').innerText.includes('Please type a text.')")
    page.fill("#text textarea", "x" * 600)  # 20 s limit: about 500 characters
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#text').innerText.includes('The text is too long (600 "
                           "characters)')")
    assert page.locator(".toast-body").count() == 0
    assert len(server.jobs.jobs()) == jobs_before  # refused before the queue: no job was made


def test_text_in_three_languages(page):
    page.click("#mode label:has-text('Text')")
    page.wait_for_selector("#text textarea", state="visible")
    page.wait_for_selector("#audio", state="hidden")
    # a fixed menu of the six languages, each named in its own language (typing 'zh' chose nothing)
    assert page.locator("#language input").get_attribute("readonly") is not None
    page.click("#language input")
    offered = [li.inner_text().replace("✓", "").strip() for li in page.locator("ul[role=listbox] li").all()]
    assert offered == ["English", "中文", "日本語", "Deutsch", "Français", "Español"]
    page.keyboard.press("Escape")
    src = ""
    for label, text in (("English", "Hello there."), ("Deutsch", "Guten Tag, wie geht es?"), ("日本語", "こんにちは。")):
        page.fill("#text textarea", text)
        choose(page, "language", label)
        video = generate(page, before=src)
        src = video["src"]
        assert video["duration"] > 0.3 and "text_default_mesh" in src


def test_record_with_fake_microphone_and_uploaded_style(page):
    page.click("#audio button[aria-label='Record audio']")
    page.locator("#audio button", has_text="Record").first.click()
    time.sleep(1.5)
    page.locator("#audio button", has_text="Stop").first.click()
    page.wait_for_selector("#audio audio", state="attached")
    page.set_input_files("#style-file input[type=file]", str(FIXTURE / "style_motion.pt"))
    page.wait_for_selector("#style-file a[download]")
    video = generate(page)
    assert video["duration"] > 0.5
    assert any(name.endswith("_style_motion_mesh_motions.pt") for name in downloads(page))


def test_example_click_fills_inputs_and_generates(page, server):
    examples = {e.label: e for e in server.parts.catalog.examples}
    assert "speech_sample.wav" in examples and "hello.txt" in examples
    page.locator("#examples button", has_text="hello.txt").click()
    page.wait_for_function("() => document.querySelector('#text textarea')?.value.startsWith('Hello from')")
    assert page.locator("#text").is_visible()
    page.locator("#examples button", has_text="speech_sample.wav").click()
    page.wait_for_selector("#audio audio", state="attached")
    assert page.locator("#style input").input_value() == examples["speech_sample.wav"].style == "happy_1"
    video = generate(page)
    assert video["duration"] == pytest.approx(8.76, abs=0.2)


def test_queue_position_and_cancel(browser, server, short_wav):
    """A slowed job runs in page A; page B waits in the queue; Cancel stops A and B runs."""
    gen = server.parts.generator
    real_report = gen._report

    def slow_report(job: Any, progress: Any) -> Any:
        inner = real_report(job, progress)

        def report(stage: str, done: int, total: int) -> None:
            time.sleep(0.3)  # checks the cancel flag after the pause
            inner(stage, done, total)

        return report

    pages = []
    for _ in range(2):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = ctx.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(server.url)
        pg.wait_for_selector("#generate")
        pg.set_input_files("#audio input[type=file]", str(short_wav))
        pg.wait_for_selector("#audio audio", state="attached")
        pages.append(pg)
    a, b = pages
    gen._report = slow_report
    try:
        a.click("#generate")
        a.wait_for_function("() => /Checking|Listening|Generating/.test(document.querySelector('#video').innerText)")
        assert a.locator("#cancel").is_enabled()
        # one progress display, on the video (it showed on every output panel)
        shown = a.evaluate("() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
                           ".filter(e => e.innerText.trim() && !e.classList.contains('hide'))"
                           ".map(e => e.closest('[id]')?.id)")
        assert shown == ["video"], shown
        b.click("#generate")
        b.wait_for_function("() => /queue/i.test(document.querySelector('#video').innerText)")
        gen._report = real_report
        t = time.monotonic()
        a.click("#cancel")
        # uncancelled, A's ~150 slowed progress reports alone would take 45 s before B could start
        b.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.duration > 0; }")
        assert time.monotonic() - t < 20
        assert video_src(a) == "" and status(a) == "Cancelled." and a.locator("#cancel").is_disabled()
        assert not [j for j in server.jobs.jobs() if j.finished is None]
    finally:
        gen._report = real_report
        for pg in pages:
            pg.context.close()



def test_avatar_picture_click_selects_the_appearance(browser, tmp_path):
    import shutil

    from artalk_core.app import AppConfig
    from artalk_core.app.server import AppServer

    (tmp_path / "GAGAvatar").mkdir()
    shutil.copy(FIXTURE.parent / "tiny_gaga" / "tracked.pt", tmp_path / "GAGAvatar" / "tracked.pt")
    srv = AppServer(AppConfig(model=ModelOptions(assets=tmp_path), size=32, preload=False), port=0).start()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(srv.url)
        pg.locator("#avatar-gallery img").first.click()
        pg.wait_for_function("() => document.querySelector('#appearance input').value === 'Photoreal: fix.jpg'")
        natural = pg.evaluate("() => document.querySelector('#avatar-gallery img').naturalWidth")
        assert natural == 128
    finally:
        ctx.close()
        srv.close()
