"""A real `artalk app` process: one gradio_client generation end to end, then SIGTERM (or Ctrl+C)
removes every file it wrote."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")


def start_app(tmp: Path, assets: Path) -> tuple[subprocess.Popen, str, queue.Queue]:
    env = {**os.environ, "TMPDIR": str(tmp), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("GRADIO_TEMP_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "artalk_cli.main", "app", "--port", "0", "--assets", str(assets),
                             "--size", "64", "--max-seconds", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    def pump() -> None:
        assert proc.stderr is not None
        for ln in proc.stderr:
            lines.put(ln)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 180
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        seen.append(line)
        m = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
        if m:
            assert any("Preview mode" in ln for ln in seen) and not any("/" in ln for ln in seen if "note:" in ln)
            return proc, m.group(1), lines
    proc.kill()
    raise AssertionError("the app did not start: " + "".join(seen))


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_app_process_serves_the_api_and_cleans_up_on_signal(tmp_path, sig):
    """SIGTERM after a delivered job; Ctrl+C (SIGINT) while a job is running."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    assets = tmp_path / "assets"
    assets.mkdir()
    proc, url, lines = start_app(tmp, assets)
    try:
        roots = list(tmp.glob("artalk-app-*"))
        assert len(roots) == 1 and (roots[0] / "cache").is_dir()
        if sig == signal.SIGTERM:
            from gradio_client import Client

            client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
            video, files = client.predict(text="Hello from the test.", language="en", api_name="/generate")
            assert Path(video).stat().st_size > 1000 and Path(video).name == "text_default_mesh.mp4"
            names = {Path(f).name for f in files}
            assert names == {"text_default_mesh.h5", "text_default_mesh.motion.safetensors",
                             "text_default_mesh_motions.pt", "text_default_mesh.glb"}
            glb = next(Path(f) for f in files if f.endswith(".glb"))
            assert glb.read_bytes()[:4] == b"glTF"
            assert list((roots[0] / "cache" / "jobs").iterdir()), "the job's results are kept while they may be fetched"
            # served from the job's folder inside Gradio's cache: no copy (hashed on the event loop)
            assert not list(roots[0].glob("cache/*/text_default_mesh.*"))
        else:
            from gradio_client import Client, handle_file

            from artalk_core.audio import load_audio, write_wav
            from tests.conftest import FIXTURE

            speech = tmp_path / "long.wav"
            samples = load_audio(FIXTURE / "speech_16k.wav").samples
            write_wav(speech, np.tile(samples, int(19 * 16000 / len(samples)) + 1)[:19 * 16000])
            client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
            job = client.submit(audio=handle_file(str(speech)), api_name="/generate")
            deadline = time.monotonic() + 60
            while not list(roots[0].glob("cache/jobs/*/work/speech.wav")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert list(roots[0].glob("cache/jobs/*/work/speech.wav")), "the job did not start"
        proc.send_signal(sig)
        if sig == signal.SIGINT:  # the API client is told why its job ended
            from artalk_core.app.handlers import MSG_SHUTDOWN

            with pytest.raises(Exception) as err:
                job.result(timeout=30)
            assert str(err.value) == MSG_SHUTDOWN
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "Traceback" not in "".join(rest)
    assert not list(tmp.iterdir()), f"left behind: {list(tmp.rglob('*'))[:5]}"


def test_app_help_lists_the_serving_options(artalk):
    res = artalk("app", "--help")
    assert res.returncode == 0
    for flag in ("--port", "--host", "--share", "--max-upload-mb", "--max-seconds", "--queue-size",
                 "--client-connections"):
        assert flag in res.stderr + res.stdout.decode()
    assert "127.0.0.1" in res.stdout.decode()
