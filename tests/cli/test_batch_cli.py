"""`artalk batch` on the command line: progress and summary on stderr, exit status, quiet mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import assert_clean_error


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
