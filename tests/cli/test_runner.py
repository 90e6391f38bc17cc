"""The in-process `artalk` runner leaves nothing behind: one run cannot change the next."""

from __future__ import annotations

import os
import signal
import sys
import warnings

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"


def _state() -> tuple:
    return (os.getcwd(), os.environ.get("ARTALK_ASSETS"), os.environ.get("NO_COLOR"), list(warnings.filters),
            warnings.showwarning, sys.unraisablehook, sys.stdin, sys.stdout, sys.stderr,
            *(signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)))


def test_runs_leave_no_state_behind(artalk, tmp_path):
    before = _state()
    res = artalk("generate", WAV, "-e", "energy", "-o", "m.safetensors", cwd=tmp_path,
                 env_extra={"ARTALK_ASSETS": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "m.safetensors").exists()  # cwd applied during the run ...
    assert _state() == before  # ... and everything restored after it
    assert_clean_error(artalk("generate", tmp_path / "nope.wav", "-e", "energy"), "nope.wav")
    assert _state() == before


def test_streams_are_separate_and_the_console_follows_them(artalk, tmp_path):
    res = artalk("generate", WAV, "-e", "energy", "--raw", "-o", "-", "-q")
    assert res.returncode == 0 and res.stdout[:8] and res.stderr == ""
    res = artalk("generate", WAV, "-e", "energy", "-o", tmp_path / "m.safetensors")
    assert res.stdout == b"" and "wrote" in res.stderr
    assert "\x1b[" not in res.stderr  # NO_COLOR: plain text
