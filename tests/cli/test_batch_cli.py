"""`artalk batch` on the command line: progress and summary on stderr, exit status, quiet mode."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, assert_clean_error, process_env

ENGINES = REPO / "tests" / "fixtures" / "batch_engines"


def _speech(path: Path) -> None:
    from artalk_core.audio import write_wav

    t = np.arange(9600) / 16000
    write_wav(path, (0.3 * np.sin(2 * np.pi * 200 * t) * (0.5 + 0.5 * np.sin(6 * np.pi * t))).astype(np.float32))


def test_batch_cli_reports_each_clip_and_fails_at_the_end(artalk, tmp_path: Path) -> None:
    _speech(tmp_path / "a[bold].wav")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"audio": "a[bold].wav", "size": 64}) + "\n"
                    + json.dumps({"audio": "missing.wav"}) + "\n")
    res = artalk("batch", jobs, "-o", tmp_path / "out", "-e", "energy", "--outputs", "motion")
    assert res.returncode == 1 and res.stdout == b""
    assert "a_bold_default" in res.stderr and "missing.wav" in res.stderr
    assert "1 of 2 clips failed" in res.stderr and "results.jsonl" in res.stderr
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["done", "failed"]
    assert lines[0]["options"]["audio"].endswith("a[bold].wav")  # user text kept literally
    again = artalk("batch", jobs, "-o", tmp_path / "out", "-e", "energy", "--outputs", "motion", "-q")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == ["error: 1 of 2 clips failed (see " f"{tmp_path / 'out' / 'results.jsonl'})"]


def test_batch_cli_bad_backend_is_one_line(artalk, tmp_path: Path) -> None:
    _speech(tmp_path / "a.wav")
    assert_clean_error(artalk("batch", tmp_path, "-o", tmp_path / "out", "--backend", "slurm"), "backend")


# --- refusals before any work ----------------------------------------------------------------


@pytest.mark.parametrize("option, words", [
    (["--outputs", "bogus"], "unknown bogus"), (["-e", "bogus"], "unknown engine 'bogus'"),
    (["-s", "nosuch"], "unknown style 'nosuch'"), (["--device", "bogus"], "device 'bogus'"),
])
def test_a_bad_batch_option_exits_2_before_any_work(artalk, tmp_path: Path, option: list[str], words: str) -> None:
    _speech(tmp_path / "a.wav")
    res = artalk("batch", tmp_path, "-o", tmp_path / "out", *option)
    assert_clean_error(res, words)
    assert res.returncode == 2 and not (tmp_path / "out").exists()


def test_the_jobs_file_as_the_results_file_is_refused(artalk, tmp_path: Path) -> None:
    _speech(tmp_path / "a.wav")
    jobs = tmp_path / "out" / "results.jsonl"
    jobs.parent.mkdir()
    jobs.write_text(json.dumps({"audio": str(tmp_path / "a.wav")}) + "\n")
    res = artalk("batch", jobs, "-o", tmp_path / "out", "-e", "energy")
    assert_clean_error(res, "JOBS", "destroy")
    assert res.returncode == 2 and jobs.read_text() == json.dumps({"audio": str(tmp_path / "a.wav")}) + "\n"


def test_jobs_from_stdin(artalk, tmp_path: Path) -> None:
    _speech(tmp_path / "a.wav")
    rows = json.dumps({"audio": "a.wav", "name": "piped", "size": 64}) + "\n"
    res = artalk("batch", "-", "-o", tmp_path / "out", "-e", "energy", "--outputs", "motion", "-q",
                 input=rows.encode(), cwd=tmp_path)  # relative paths: from the current folder
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "piped.motion.safetensors").is_file()


def test_the_summary_of_a_big_batch_lists_its_failures(artalk, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import artalk_cli.commands.batch

    # where the summary reads it (imported by name: patching artalk_core.constants worked only when
    # this test happened to be the first to import the CLI)
    monkeypatch.setattr(artalk_cli.commands.batch, "BATCH_SUMMARY_ROWS", 3)
    _speech(tmp_path / "a.wav")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"audio": "a.wav", "size": 64}) + "\n"
                    + "".join(json.dumps({"audio": f"missing{i}.wav"}) + "\n" for i in range(4)))
    res = artalk("batch", jobs, "-o", tmp_path / "out", "-e", "energy", "--outputs", "motion")
    assert res.returncode == 1
    listed = [ln for ln in res.stderr.splitlines() if "missing" in ln and "not found" in ln]
    assert len(listed) == 3 and "a_default" not in res.stderr
    assert "not listed here: 1 more failed or interrupted clips and 1 made or current clips" in res.stderr
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 5


def test_a_ray_address_that_does_not_answer(artalk, tmp_path: Path) -> None:
    _speech(tmp_path / "a.wav")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = artalk("batch", tmp_path, "-o", tmp_path / "out", "-e", "energy", "--backend", "ray",
                 "--ray-address", f"127.0.0.1:{port}", "--ray-timeout", "1")
    assert_clean_error(res, "cannot reach the Ray cluster")
    assert res.returncode == 2 and not (tmp_path / "out").exists()


# --- signals (real processes) ----------------------------------------------------------------


@pytest.mark.parametrize("signo, to_group, code", [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)])
def test_a_signal_stops_a_pool_batch_at_once_and_writes_the_results(tmp_path: Path, signo: int, to_group: bool,
                                                                    code: int) -> None:
    """SIGTERM to the parent (a service manager), or Ctrl-C to the whole process group (a terminal):
    the workers stop, the results file marks the unfinished clips, nothing is left behind."""
    _speech(tmp_path / "a.wav")
    _speech(tmp_path / "b.wav")
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"audio": "a.wav", "engine": "hang"}) + "\n"
                    + json.dumps({"audio": "b.wav", "engine": "hang"}) + "\n")
    env = process_env({"PYTHONPATH": os.pathsep.join([str(ENGINES), str(REPO), os.environ.get("PYTHONPATH", "")]),
                       "ARTALK_TEST_HANG_MARK": str(marks)})
    proc = subprocess.Popen([sys.executable, "-m", "artalk_cli.main", "batch", str(jobs), "-o", str(tmp_path / "out"),
                             "-w", "2", "--outputs", "motion", "-q"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(marks.iterdir())) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(marks.iterdir())) == 2, proc.communicate(timeout=5)
        if to_group:
            os.killpg(proc.pid, signo)
        else:
            proc.send_signal(signo)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = stderr.decode()
    assert proc.returncode == code, text
    assert "Traceback" not in text and "leaked" not in text, text
    assert [ln for ln in text.splitlines() if ln.strip()] == \
        ["error: " + ("interrupted" if signo == signal.SIGINT else "stopped by SIGTERM")]
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["interrupted", "interrupted"]
    out = tmp_path / "out"
    assert not [p for p in out.rglob(".*") if ".part" in p.name]
    for mark in marks.iterdir():  # the workers are gone too
        with pytest.raises(ProcessLookupError):
            os.kill(int(mark.name), 0)
