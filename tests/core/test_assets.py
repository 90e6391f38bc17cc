"""Asset folder resolution, the bundled released config, and style resolution."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from artalk_core.assets import assets_dir, available_styles, checkpoint_path, config_path
from artalk_core.errors import AssetError, StyleError
from artalk_core.fileio import sha256_file
from artalk_core.styles import resolve_style, style_from_array
from tests.conftest import FIXTURE, REPO


def test_bundled_config_is_the_released_file():
    from artalk_core.assets import load_manifest

    released = {f.local_path: f for f in load_manifest()}["config.json"]
    path = REPO / "assets" / "config.json"
    assert path.stat().st_size == released.size
    assert sha256_file(path) == released.sha256


def test_assets_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv("ARTALK_ASSETS", raising=False)
    assert str(assets_dir()) == "assets"
    monkeypatch.setenv("ARTALK_ASSETS", str(tmp_path))
    assert assets_dir() == tmp_path
    assert assets_dir(tmp_path / "x") == tmp_path / "x"


def test_missing_checkpoint_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTALK_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match=r"ARTALK_ASSETS.*artalk assets download"):
        checkpoint_path()
    with pytest.raises(AssetError, match="--checkpoint"):
        checkpoint_path(tmp_path / "nope.pt")
    assert config_path(assets=tmp_path) is None


def test_the_default_checkpoint_follows_the_model_config_given(tmp_path):
    """What a step reads (the outputs are checked against it): with --model-config naming the Mimi
    encoder and no --checkpoint, the asset folder's ARTalk_mimi.pt, as checkpoint_path finds it."""
    from artalk_core.assets import asset_inputs

    mimi = FIXTURE.parent / "tiny_mimi" / "model_config.json"
    files = asset_inputs(tmp_path, {"--checkpoint": None, "--model-config": mimi})
    assert files == {"--checkpoint": tmp_path / "ARTalk_mimi.pt", "--model-config": mimi}


def test_styles(tmp_path):
    (tmp_path / "style_motion").mkdir()
    for name in ("happy_1", "natural_0"):
        shutil.copy(FIXTURE / "style_motion.pt", tmp_path / "style_motion" / f"{name}.pt")
    assert available_styles(tmp_path) == ["happy_1", "natural_0"]
    assert resolve_style("default", assets=tmp_path).motion is None
    assert resolve_style(None).label == "default"
    sty = resolve_style("happy_1", assets=tmp_path)
    assert sty.motion.shape == (50, 106) and sty.sha256 == sha256_file(FIXTURE / "style_motion.pt")
    with pytest.raises(StyleError, match=r"did you mean happy_1.*available in"):
        resolve_style("hapy_1", assets=tmp_path)
    with pytest.raises(StyleError, match="only 'default' is available"):
        resolve_style("happy_1", assets=tmp_path / "empty")
    with pytest.raises(StyleError, match="not found"):
        resolve_style("some/dir/style.pt", assets=tmp_path)


def test_style_from_array():
    arr = np.zeros((50, 106), dtype=np.float32)
    assert resolve_style(arr).motion.shape == (50, 106)
    with pytest.raises(StyleError, match=r"\[50, 106\]"):
        style_from_array(np.zeros((40, 106)))
    arr[0, 0] = np.nan
    with pytest.raises(StyleError, match="NaN"):
        style_from_array(arr)
