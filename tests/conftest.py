"""Shared fixtures: the tiny parity fixture laid out as a reference asset folder, and CLI runners
(in-process for speed; a real process for the few tests that need one)."""

from __future__ import annotations

import contextlib
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


CLI_ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
"""What every CLI run sees, in-process or not: wide lines (tests grep whole sentences), no colour."""

_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def run_in_process(*args: object, input: bytes | None = None, cwd: Path | None = None,
                   env_extra: dict | None = None) -> Result:
    """``artalk *args`` inside this Python, isolated like a new process.

    Click's runner swaps stdin (``input`` as bytes), stdout and stderr (captured apart) and the
    environment (``CLI_ENV`` and ``env_extra``, ``ARTALK_ASSETS`` removed) for the run; the cwd,
    the warning filters (library warnings ignored, as ``PYTHONWARNINGS=ignore`` did), the signal
    handlers and the shared rich console (re-bound to the swapped stderr) are restored afterwards,
    so nothing of one run leaks into the next. An exception escaping the command is printed as a
    traceback with exit 1, as the interpreter would.
    """
    import signal
    import traceback
    import warnings

    import typer
    from typer.testing import CliRunner

    from artalk_cli import console
    from artalk_cli.main import app

    command = typer.main.get_command(app)
    env: dict[str, str | None] = {**CLI_ENV, "ARTALK_ASSETS": None, **(env_extra or {})}
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in _SIGNALS}
    old_cwd = os.getcwd()
    code: int = 0
    with CliRunner().isolation(input=input, env=env) as (out, err, _mixed):
        console.reset_consoles()  # bind the console to this run's stderr and environment
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if cwd is not None:
                    os.chdir(cwd)
                command.main(args=[str(a) for a in args], prog_name="artalk", standalone_mode=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - the interpreter's behaviour: a traceback, exit 1
            traceback.print_exc(file=sys.stderr)
            code = 1
        finally:
            os.chdir(old_cwd)
            for name, handler in handlers.items():
                signal.signal(getattr(signal, name), handler)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    console.reset_consoles()
    return Result(code, stdout, stderr.decode(errors="replace"))


@pytest.fixture(scope="session")
def artalk():
    """Run `artalk` in-process: artalk(*args, input=bytes, cwd=..., env_extra=...) -> Result.

    ``timeout`` is accepted for the real-process runner's signature and ignored here.
    """

    def run(*args: object, input: bytes | None = None, cwd: Path | None = None, env_extra: dict | None = None,
            timeout: float = 300) -> Result:
        return run_in_process(*args, input=input, cwd=cwd, env_extra=env_extra)

    return run


def process_env(env_extra: dict | None = None) -> dict[str, str]:
    """The environment of a real ``artalk`` process in tests (ARTALK_ASSETS removed)."""
    env = {**os.environ, **CLI_ENV, "PYTHONWARNINGS": "ignore"}
    env.pop("ARTALK_ASSETS", None)
    return {**env, **(env_extra or {})}


@pytest.fixture(scope="session")
def artalk_process():
    """Run the real `artalk` command in a new Python: the same signature and Result as ``artalk``.

    Only for what needs a real process: pipes between two processes, signals, exit statuses of the
    interpreter, stdin as a real pipe or FIFO. Each run costs seconds (torch is imported anew).
    """

    def run(*args: object, input: bytes | None = None, cwd: Path | None = None, env_extra: dict | None = None,
            timeout: float = 300) -> Result:
        cmd = [sys.executable, "-m", "artalk_cli.main", *[str(a) for a in args]]
        proc = subprocess.run(cmd, input=input, capture_output=True, cwd=cwd, timeout=timeout,
                              env=process_env(env_extra))
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
