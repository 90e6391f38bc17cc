"""The README's Python example and examples/Makefile run as documented."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_readme_python_example_runs(tmp_path):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has a Python example"
    shutil.copytree(REPO / "assets", tmp_path / "assets")
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "talk.mp4").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_examples_makefile_caches_steps(tmp_path):
    work = tmp_path / "ex"
    (work / "speech").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "Makefile", work / "Makefile")
    shutil.copy(REPO / "tests" / "fixtures" / "tiny_en" / "speech_16k.wav", work / "speech" / "one.wav")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    args = ["make", "-j2", "ENGINE=energy", f"ARTALK={sys.executable} -m artalk_cli.main"]
    proc = subprocess.run(args, cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "out" / "one_default.mp4").stat().st_size > 10_000
    assert (work / "out" / "one_default.h5").exists()
    again = subprocess.run(args, cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert "Nothing to be done" in again.stdout
