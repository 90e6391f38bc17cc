"""examples/agent_loop.py runs against a live server: TTS speech in, a motion stream out."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from artalk_core.options import ModelOptions
from tests.conftest import REPO, process_env


def test_agent_loop_example(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/sysdeps.sh installs it)")
    from artalk_core.formats.motion import read_motion
    from artalk_core.live.service import LiveConfig
    from artalk_web.live.server import LiveServer

    srv = LiveServer(LiveConfig(engine="energy", model=ModelOptions(assets=tmp_path)), port=0).start()
    try:
        out = tmp_path / "talk.ndjson"
        proc = subprocess.run([sys.executable, str(REPO / "examples" / "agent_loop.py"), srv.ws_url, "-o", str(out),
                               "--fast"], capture_output=True, text=True, timeout=120,
                              env={**process_env(), "PYTHONPATH": str(REPO)})
    finally:
        srv.close()
    assert proc.returncode == 0, proc.stderr
    assert "agent says: Goodbye for now." in proc.stderr and "jaw" in proc.stderr
    motion = read_motion(out)
    assert motion.data.shape[0] > 100 and motion.meta["engine"] == "energy"
    assert motion.data[:, 103].max() > 0.05  # the jaw moved with the speech
