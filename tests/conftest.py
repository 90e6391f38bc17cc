"""Shared fixtures: the tiny parity fixture laid out as a reference asset folder, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_en"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests (and the commands they run) never write the user's cache (``--precision`` decisions)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def expected() -> dict:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An asset folder in the reference layout holding the tiny random model of the parity fixture."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("assets")
    torch.save(load_file(str(FIXTURE / "weights.safetensors")), root / "ARTalk_wav2vec.pt")
    shutil.copy(FIXTURE / "model_config.json", root / "config.json")
    (root / "style_motion").mkdir()
    shutil.copy(FIXTURE / "style_motion.pt", root / "style_motion" / "tiny_0.pt")
    shutil.copy(FIXTURE / "style_motion.pt", root / "style_motion" / "happy_1.pt")
    return root


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str


@pytest.fixture(scope="session")
def artalk():
    """Run the real `artalk` command in a subprocess: artalk(*args, input=bytes, cwd=...) -> Result."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("ARTALK_ASSETS", None)

    def run(*args: object, input: bytes | None = None, cwd: Path | None = None, env_extra: dict | None = None,
            timeout: float = 300) -> Result:
        cmd = [sys.executable, "-m", "artalk_cli.main", *[str(a) for a in args]]
        proc = subprocess.run(cmd, input=input, capture_output=True, cwd=cwd, timeout=timeout,
                              env={**env, **(env_extra or {})})
        return Result(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))

    return run


def assert_clean_error(res: Result, *words: str) -> None:
    """A failed command: non-zero exit, one 'error:' line naming ``words``, no traceback, nothing on stdout."""
    assert res.returncode != 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout == b""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    err_lines = [ln for ln in lines if ln.startswith("error:")]
    assert len(err_lines) == 1, res.stderr
    text = " ".join(lines).lower()
    for w in words:
        assert w.lower() in text, f"{w!r} not in {res.stderr!r}"


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
