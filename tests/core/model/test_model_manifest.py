"""The full-size model from the released config has exactly the released checkpoint's state-dict layout."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from artalk_core.model.checkpoint import build_model
from artalk_core.model.config import ModelConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ASSETS = Path(__file__).resolve().parents[3] / "assets"


def test_released_model_matches_manifest() -> None:
    manifest = json.loads((FIXTURES / "checkpoint_manifest.json").read_text())
    model = build_model(ModelConfig.released(), device="meta")
    state = model.state_dict()
    assert all(t.device.type == "meta" for t in state.values())
    assert len(state) == manifest["n_keys"] == 814
    assert set(state) == set(manifest["keys"])
    for key, spec in manifest["keys"].items():
        assert list(state[key].shape) == spec["shape"], key
        assert state[key].dtype == getattr(torch, spec["dtype"]), key
    total = sum(t.numel() * t.element_size() for t in state.values())
    assert total == manifest["tensor_bytes_total"]


def test_released_config_matches_asset_file() -> None:
    assert ModelConfig.released() == ModelConfig.from_file(ASSETS / "config.json")
