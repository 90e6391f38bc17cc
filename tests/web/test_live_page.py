"""The live page's mapping of a motion frame onto the glTF head: three.js with the page's rig.js
gives FLAME's vertices, so the page shows exactly what `artalk export` and `artalk render` show."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_export_cli import TOOLS, _head_with_four_influences

RIG_JS = Path(__file__).resolve().parents[2] / "artalk_web" / "live" / "static" / "rig.js"


def test_the_page_maps_frames_as_export_does(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "three").is_dir():
        pytest.skip("node or three.js is not installed: run `npm install --prefix tests/tools` (make test does)")
    from artalk_core.flame import load_flame
    from artalk_core.live.head import head_glb

    head_path = _head_with_four_influences(tmp_path / "head4.pt")  # three.js skins with 4 influences
    glb = tmp_path / "head.glb"
    glb.write_bytes(head_glb(flame=head_path))
    rng = np.random.default_rng(3)
    motion = np.zeros((4, 106), np.float32)
    motion[:, :100] = rng.uniform(-1.5, 1.5, (4, 100))
    motion[:, 100:103] = rng.uniform(-0.4, 0.4, (4, 3))
    motion[:, 103] = rng.uniform(0.0, 0.35, 4)
    motion[1:, 104:106] = rng.uniform(-0.1, 0.1, (3, 2))
    motion[0] = 0.0  # the rest pose too
    proc = subprocess.run([node, str(TOOLS / "live_rig_eval.mjs"), str(glb), str(RIG_JS),
                           json.dumps(motion.astype(float).tolist())], capture_output=True, timeout=120, cwd=TOOLS)
    assert proc.returncode == 0, proc.stderr.decode()
    got = np.array(json.loads(proc.stdout)["frames"])
    ref = load_flame(head_path).vertices(motion).numpy().astype(np.float64)
    size = float(np.linalg.norm(ref[0].max(0) - ref[0].min(0)))
    assert np.abs(got - ref).max() <= 1e-5 * size, (np.abs(got - ref).max(), size)


def test_the_page_ships_as_package_data() -> None:
    """Every file the page serves is package data of artalk_web (an installed wheel has it)."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = RIG_JS.parents[2]
    config = tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert any(fnmatch.fnmatch("artalk_web", p) for p in config["packages"]["find"]["include"])
    patterns = config["package-data"]["artalk_web"]
    files = [p.relative_to(root).as_posix() for p in (root / "live" / "static").rglob("*") if p.is_file()]
    assert len(files) >= 10
    for rel in files:
        assert any(fnmatch.fnmatch(rel, p) and "/" not in rel[len(p.rsplit("/", 1)[0]) + 1:] for p in patterns), rel
