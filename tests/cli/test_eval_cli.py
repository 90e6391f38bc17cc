"""`artalk eval PRED GT [--json] [--masks FILE]`: the output formats and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error
from tests.core.test_eval import FIXTURES, write_h5, write_motion

FLAME_5023 = FIXTURES / "tiny_gaga" / "flame_synthetic_5023.pt"


@pytest.fixture(scope="module")
def cases() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURES / "metrics" / "metrics.safetensors"))


def test_json_is_exactly_metrics_and_frames(artalk, cases, tmp_path: Path) -> None:
    pred, gt = write_h5(tmp_path / "p.h5", cases["case0_pred"]), write_h5(tmp_path / "g.h5", cases["case0_gt"])
    res = artalk("eval", pred, gt, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert list(out) == ["metrics", "frames"] and list(out["metrics"]) == ["LVE", "MHD", "FDD"]
    assert out["frames"] == 4
    for key, want in zip(("LVE", "MHD", "FDD"), cases["case0_metrics"][:3]):
        assert out["metrics"][key] == pytest.approx(float(want), rel=1e-5)


def test_table_on_stdout(artalk, cases, tmp_path: Path) -> None:
    pred = write_h5(tmp_path / "[bold]p.h5", cases["case1_pred"])  # a name that looks like markup
    res = artalk("eval", pred, write_h5(tmp_path / "g.h5", cases["case1_gt"]))
    assert res.returncode == 0, res.stderr
    table = res.stdout.decode()
    for word in ("clip", "frames", "LVE (mm)", "MHD (mm)", "FDD (x100)", "[bold]p", "2.2352", "1.0373", "65.1665"):
        assert word in table, (word, table)


def test_folders_table_json_and_notes(artalk, cases, tmp_path: Path) -> None:
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        for k in (0, 1):
            write_h5(tmp_path / side / f"c{k}.h5", cases[f"case{k}_{side}"])
    write_h5(tmp_path / "gt" / "lonely.h5", cases["case2_gt"][:12])
    res = artalk("eval", tmp_path / "pred", tmp_path / "gt", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["frames"] == 14 and [c["name"] for c in out["clips"]] == ["c0", "c1"]
    want = np.mean([cases["case0_metrics"][0], cases["case1_metrics"][0]])
    assert out["metrics"]["LVE"] == pytest.approx(float(want), rel=1e-5)
    assert "note: 1 GT clip(s) without a partner, left out: lonely" in res.stderr
    res = artalk("eval", tmp_path / "pred", tmp_path / "gt")
    assert "mean of 2 clips" in res.stdout.decode()


def test_motion_inputs_and_frame_counts(artalk, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = write_motion(tmp_path / "a.motion.safetensors", rng.normal(0, 0.3, (9, 106)))
    b = write_motion(tmp_path / "b.motion.safetensors", rng.normal(0, 0.3, (7, 106)))
    res = artalk("eval", a, b, "--flame", FLAME_5023, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["frames"] == 7
    assert "PRED has 9 frames and GT 7: compared the first 7" in res.stderr
    one = write_motion(tmp_path / "one.motion.safetensors", rng.normal(0, 0.3, (1, 106)))
    res = artalk("eval", one, b, "--flame", FLAME_5023, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["metrics"]["FDD"] is None
    assert "FDD needs at least 2 frames" in res.stderr
    res = artalk("eval", one, b, "--flame", FLAME_5023)
    assert "n/a" in res.stdout.decode()


@pytest.mark.parametrize("make, words, code", [
    (lambda d, c: (write_h5(d / "p.h5", c["case0_pred"][:, :100]), write_h5(d / "g.h5", c["case0_gt"][:, :100])),
     ["5023", "--masks"], 2),
    (lambda d, c: (write_h5(d / "p.h5", c["case0_pred"]), write_h5(d / "g.h5", c["case0_gt"][:, :100])),
     ["vertices per frame", "not the same mesh"], 2),
    (lambda d, c: ((d / "e1").mkdir() or d / "e1", (d / "e2").mkdir() or d / "e2"), ["holds no vertex or motion"], 2),
    (lambda d, c: (d / "absent.h5", write_h5(d / "g.h5", c["case0_gt"])), ["not found"], 2),
    (lambda d, c: (write_motion(d / "a.motion.safetensors", np.zeros((2, 106))),) * 2, ["FLAME"], 3),
])
def test_errors_are_one_line(artalk, cases, tmp_path: Path, make, words, code) -> None:
    pred, gt = make(tmp_path, cases)
    res = artalk("eval", pred, gt, "--assets", tmp_path)
    assert res.returncode == code
    assert_clean_error(res, *words)


def test_the_table_shows_control_characters_escaped(artalk, cases, tmp_path: Path) -> None:
    """A clip's name comes from a file name: \\x1b[31m in it must not recolour the terminal (the notes
    escaped it; the table did not)."""
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        write_h5(tmp_path / side / "\x1b[31mred\u202e.h5", cases[f"case0_{side}"])
    res = artalk("eval", tmp_path / "pred", tmp_path / "gt")
    assert res.returncode == 0, res.stderr
    table = res.stdout.decode()
    assert "\\x1b[31mred\\u202e" in table and "\x1b" not in table and "\u202e" not in table


def test_a_folder_with_a_pipe_in_it_is_one_line_before_any_work(artalk, cases, tmp_path: Path) -> None:
    import os

    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        write_h5(tmp_path / side / "a.h5", cases[f"case0_{side}"])
    os.mkfifo(tmp_path / "pred" / "b.h5")
    write_h5(tmp_path / "gt" / "b.h5", cases["case0_gt"])
    res = artalk("eval", tmp_path / "pred", tmp_path / "gt")
    assert res.returncode == 2
    assert_clean_error(res, "b.h5 is a FIFO (named pipe), not a regular file")
    assert res.stdout == b""
