"""Remake docs/app_screenshot.png: start `artalk app` on a free port, click the first example,
generate, pause the video at 2 s and screenshot the page in headless Chromium.

    python scripts/app_screenshot.py [--assets DIR] [--out docs/app_screenshot.png]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from artalk_core.options import ModelOptions

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("ARTALK_CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO / "assets")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "app_screenshot.png")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from artalk_core.app import AppConfig
    from artalk_core.app.server import AppServer

    server = AppServer(AppConfig(model=ModelOptions(assets=args.assets), size=512), port=0).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(server.url)
            page.locator("#examples button").first.click()
            page.wait_for_selector("#audio audio", state="attached")
            page.click("#generate")
            page.wait_for_function("() => { const v = document.querySelector('#video video');"
                                   " return v && v.readyState >= 2 && v.duration > 2; }")
            page.evaluate("() => { const v = document.querySelector('#video video'); v.pause(); v.currentTime = 2.0; }")
            page.wait_for_selector("#preview-3d canvas")
            time.sleep(8.0)  # the 3D viewer loads the .glb (software GL in headless Chromium)
            text = page.locator("body").inner_text()
            assert "/tmp" not in text and str(REPO) not in text, "a machine path is visible on the page"
            args.out.write_bytes(page.screenshot(full_page=True))
            browser.close()
    finally:
        server.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
