"""The command suite as a whole: help, version, shared flags, import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from artalk_cli.main import app

COMMANDS = ["tts", "encode-audio", "generate", "smooth", "render", "export", "mux", "animate", "info", "frame", "app",
            "assets download", "assets verify", "assets list"]
COMMANDS += ["serve", "live"]


def test_root_help_lists_every_command():
    res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name in ("tts", "encode-audio", "generate", "smooth", "render", "mux", "animate", "info", "assets", "app"):
        assert name in res.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet_and_debug(command):
    res = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "--quiet" in res.output and "-q" in res.output and "--debug" in res.output


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("artalk ")


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from artalk_cli.main import app; "
            "heavy = [m for m in ('torch', 'transformers', 'av', 'h5py', 'moderngl', 'scipy') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_core_never_imports_the_cli_stack():
    code = ("import sys, importlib, pkgutil, artalk_core; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(artalk_core.__path__, 'artalk_core.')]; "
            "print(','.join(m for m in ('typer', 'rich', 'artalk_cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
