"""What only a real process shows: a shell pipe between two commands, the installed entry point's
exit status, a reader that goes away. (Every other CLI test runs in-process.)"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURE, process_env

WAV = FIXTURE / "speech_16k.wav"
ARTALK = f"{shlex.quote(sys.executable)} -m artalk_cli.main"

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@needs_bash
def test_shell_pipe_between_two_commands(artalk, tmp_path):
    from artalk_core.formats.motion import read_motion

    out = tmp_path / "final.safetensors"
    cmd = (f"set -o pipefail; {ARTALK} generate - -e energy --raw -o - -q < {shlex.quote(str(WAV))} "
           f"| {ARTALK} smooth - -o {shlex.quote(str(out))} -q")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, env=process_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"" and proc.stdout == b""
    raw = artalk("generate", WAV, "-e", "energy", "--raw", "-o", tmp_path / "raw.safetensors", "-q")
    assert raw.returncode == 0
    want = artalk("smooth", tmp_path / "raw.safetensors", "-o", tmp_path / "want.safetensors", "-q")
    assert want.returncode == 0
    np.testing.assert_array_equal(read_motion(out).data, read_motion(tmp_path / "want.safetensors").data)


@needs_bash
def test_stdin_redirected_from_the_output_file_is_refused(tmp_path):
    wav = tmp_path / "s.wav"
    shutil.copy(WAV, wav)
    q = shlex.quote(str(wav))
    proc = subprocess.run(["bash", "-c", f"{ARTALK} generate - -e energy -o {q} < {q}"], capture_output=True,
                          env=process_env(), timeout=300)
    assert proc.returncode == 2, proc.stderr.decode()
    assert b"error:" in proc.stderr and wav.read_bytes() == WAV.read_bytes()


@needs_bash
def test_entry_point_exit_status_and_a_reader_that_goes_away(tmp_path):
    script = Path(sys.executable).parent / "artalk"
    exe = shlex.quote(str(script)) if script.exists() else ARTALK
    proc = subprocess.run(["bash", "-c", f"{exe} generate {shlex.quote(str(tmp_path / 'nope.wav'))} -e energy"],
                          capture_output=True, env=process_env(), timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error: ") and b"nope.wav" in proc.stderr
    # `| head -c 4`: stdout closes early; no traceback, no "Exception ignored" from the exit
    cmd = f"{exe} generate - -e energy --raw -o - -q < {shlex.quote(str(WAV))} | head -c 4"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, env=process_env(), timeout=300)
    assert proc.returncode == 0 and len(proc.stdout) == 4
    assert b"Traceback" not in proc.stderr and b"Exception ignored" not in proc.stderr
