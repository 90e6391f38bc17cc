"""Checkpoint reading and strict loading: clear CheckpointError messages, both key forms, both file formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artalk_core.errors import CheckpointError
from artalk_core.model.checkpoint import load_model, load_state_dict
from artalk_core.model.config import ModelConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en"
POS_CONV = "audio_encoder.encoder.pos_conv_embed.conv."


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig.from_file(FIXTURE / "model_config.json")


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return load_state_dict(FIXTURE / "weights.safetensors")


def _same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(state)
    for key, val in state.items():
        assert torch.equal(got[key], val), key


def test_safetensors_loads(config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    model = load_model(FIXTURE / "weights.safetensors", config)
    assert not model.training
    _same_weights(model, state)


@pytest.mark.parametrize("wrap", [None, "model", "state_dict"])
def test_pt_loads(tmp_path: Path, config: ModelConfig, state: dict[str, torch.Tensor], wrap: str | None) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(state if wrap is None else {wrap: state, "epoch": 3}, path)
    _same_weights(load_model(path, config), state)


def test_old_weight_norm_keys_load(tmp_path: Path, config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    old = dict(state)
    old[POS_CONV + "weight_g"] = old.pop(POS_CONV + "parametrizations.weight.original0")
    old[POS_CONV + "weight_v"] = old.pop(POS_CONV + "parametrizations.weight.original1")
    path = tmp_path / "old.pt"
    torch.save(old, path)
    _same_weights(load_model(path, config), state)


def test_missing_key(config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    broken = dict(state)
    del broken["logits_head.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): logits_head\.bias.*--model-config"):
        load_model(broken, config)


def test_unexpected_key(config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    broken = {**state, "extra.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): extra\.weight"):
        load_model(broken, config)


def test_wrong_shape(config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    broken = {**state, "vqfeat_embed.bias": torch.zeros(65)}
    with pytest.raises(CheckpointError, match=r"wrong-shape key\(s\): vqfeat_embed\.bias \[65\] \(model wants \[64\]\)"):
        load_model(broken, config)


def test_wrong_config_lists_counts(state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(CheckpointError, match=r"\d+ missing key\(s\): .*\(\+\d+ more\)"):
        load_model(state, ModelConfig.released())


def test_a_mimi_config_unlike_its_checkpoint_is_found_before_the_encoder_is_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Mimi encoder is made on the CPU (its computed buffers must be real numbers), sized by the
    config: a config unlike the checkpoint must be refused before that, from shapes alone (a width of
    65536 allocated 17 GB, then failed)."""
    import json

    import artalk_core.model.mimi as mimi

    fixture = FIXTURE.parent / "tiny_mimi"
    state = load_state_dict(fixture / "weights.safetensors")
    cfg = json.loads((fixture / "model_config.json").read_text())
    cfg["MIMI_CONFIG"] = {**cfg["MIMI_CONFIG"], "intermediate_size": 4096, "num_filters": 16}
    made_on: list[str] = []
    real = mimi._mimi_classes

    def spying() -> tuple:
        config_cls, model_cls = real()

        def make(*args: object, **kwargs: object) -> object:
            made_on.append(torch.empty(0).device.type)
            return model_cls(*args, **kwargs)
        return config_cls, make

    monkeypatch.setattr(mimi, "_mimi_classes", spying)
    with pytest.raises(CheckpointError, match="wrong-shape key"):
        load_model(state, ModelConfig.from_dict(cfg))
    assert made_on == ["meta"]  # shapes only: never on the CPU
    model = load_model(state, ModelConfig.from_file(fixture / "model_config.json"))  # the matching config loads
    assert made_on == ["meta", "meta", "cpu"] and model is not None


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_state_dict(junk)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_state_dict(bad_st)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "absent.pt")


def test_pt_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="state dict"):
        load_state_dict(path)


def test_dtype_cast(config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    model = load_model(state, config, dtype=torch.bfloat16)
    assert model.pos_embed.dtype == torch.bfloat16
    assert model.lvl_idx.dtype == torch.int64
