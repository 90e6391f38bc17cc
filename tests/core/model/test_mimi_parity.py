"""The Mimi audio encoder (AUDIO_ENCODER mimi): number-for-number parity with the reference on the
tiny random-weight fixture (tests/fixtures/tiny_mimi), and its loading rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from artalk_core.errors import CheckpointError
from artalk_core.model.artalk import ARTalkModel
from artalk_core.model.checkpoint import load_model, load_state_dict
from artalk_core.model.config import ModelConfig
from artalk_core.model.mimi import LAYOUT_PREFIXES, PREFIX, resample_chunks
from artalk_core.timing import num_frames

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_mimi"
ATOL = 1e-5


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig.from_file(FIXTURE / "model_config.json")


@pytest.fixture(scope="module")
def model(config: ModelConfig) -> ARTalkModel:
    return load_model(FIXTURE / "weights.safetensors", config)


@pytest.fixture(scope="module")
def features(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.encode_audio(expected["audio"])


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_resampled_chunk_is_torchaudios_bit_for_bit(expected: dict[str, torch.Tensor]) -> None:
    got = resample_chunks(expected["audio"][None, :64000])
    assert got.shape == (1, 96000) and got.dtype == torch.float32
    assert torch.equal(got[0], expected["audio_resampled_24k_chunk0"])


def test_features_chunk0(model: ARTalkModel, features: torch.Tensor, expected: dict[str, torch.Tensor]) -> None:
    assert model.config.audio_encoder == "mimi"
    assert features.shape == (3, 50, 512) == (3, model.config.audio_tokens, model.config.audio_dim)
    assert _max_err(features[0], expected["audio_features_chunk0"]) < ATOL  # seen: 0


def test_batching_is_exact(model: ARTalkModel, features: torch.Tensor, expected: dict[str, torch.Tensor]) -> None:
    assert _max_err(model.encode_audio(expected["audio"], chunk_batch=1), features) < ATOL


@pytest.mark.parametrize("with_style", [True, False], ids=["style", "nostyle"])
def test_motion_raw(model: ARTalkModel, features: torch.Tensor, expected: dict[str, torch.Tensor],
                    with_style: bool) -> None:
    want = expected["motion_raw_style" if with_style else "motion_raw_nostyle"]
    assert want.shape[0] == num_frames(expected["audio"].shape[0])
    got = model.generate(features, want.shape[0], expected["style_motion"] if with_style else None)
    assert _max_err(got, want) < ATOL  # seen: 1.2e-7


def test_generate_from_audio_and_post_processing(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> None:
    from artalk_core.postprocess import postprocess

    raw = model.generate_from_audio(expected["audio"], expected["style_motion"])
    assert _max_err(raw, expected["motion_raw_style"]) < ATOL
    final = postprocess(raw.numpy(), clip_length=None)
    assert _max_err(torch.from_numpy(final), expected["motion_final"]) < ATOL


def test_styles_differ(expected: dict[str, torch.Tensor]) -> None:
    # Guards the generation tests against a fixture where the style has no effect.
    assert _max_err(expected["motion_raw_style"], expected["motion_raw_nostyle"]) > 1e-3


def test_unstated_encoder_follows_the_checkpoint(config: ModelConfig, expected: dict[str, torch.Tensor]) -> None:
    # The released config.json names no encoder: the checkpoint's keys choose, as the reference's
    # ARTalk_<encoder>.pt file name does.
    d = config.to_dict()
    del d["AR_CONFIG"]["AUDIO_ENCODER"]
    unstated = ModelConfig.from_dict(d)
    assert unstated.audio_encoder == "wav2vec" and not unstated.audio_encoder_stated
    model = load_model(FIXTURE / "weights.safetensors", unstated)
    assert model.config.audio_encoder == "mimi" and model.config.mimi == config.mimi
    # Stated but wrong: a mismatch that says what to change.
    stated = ModelConfig.from_dict({**d, "AR_CONFIG": {**d["AR_CONFIG"], "AUDIO_ENCODER": "wav2vec"}})
    with pytest.raises(CheckpointError, match="holds a mimi audio encoder but the model config says"):
        load_model(FIXTURE / "weights.safetensors", stated)


def test_flat_key_layout_loads(config: ModelConfig, features: torch.Tensor, expected: dict[str, torch.Tensor]) -> None:
    # kyutai/mimi files and transformers 4.x use the flat layout (encoder.layers..., encoder_transformer...):
    # a checkpoint saved that way loads into the nested layout of newer versions, and back.
    state = load_state_dict(FIXTURE / "weights.safetensors")
    flat = {}
    for key, val in state.items():
        for flat_prefix, nested_prefix in LAYOUT_PREFIXES:
            if key.startswith(PREFIX + nested_prefix):
                key = PREFIX + flat_prefix + key[len(PREFIX + nested_prefix):]
                break
        flat[key] = val
    assert flat.keys() != state.keys() and PREFIX + "encoder_transformer.layers.0.mlp.fc1.weight" in flat
    model = load_model(flat, config)
    assert _max_err(model.encode_audio(expected["audio"][:64000]), features[:1]) < ATOL


def test_weights_and_buffers_come_from_the_checkpoint(model: ARTalkModel) -> None:
    state = load_state_dict(FIXTURE / "weights.safetensors")
    mine = model.state_dict()
    books = [k for k in state if k.endswith("embed_sum")]
    assert books and all(torch.equal(mine[k], state[k]) for k in books)  # the filled codebooks, not zeros
    assert all(v.device.type == "cpu" for v in model.audio_encoder.buffers())  # none left on "meta"


def test_frames_formula_matches_the_encoder() -> None:
    # F for another frame rate: the config's formula and what MimiModel really makes agree.
    cfg = json.loads((FIXTURE / "model_config.json").read_text())
    cfg["MIMI_CONFIG"] = {**cfg["MIMI_CONFIG"], "upsampling_ratios": [8, 5], "upsample_groups": 8}
    config = ModelConfig.from_dict(cfg)
    from artalk_core.model.checkpoint import build_model

    torch.manual_seed(0)
    model = build_model(config)
    feats = model.encode_chunks(torch.randn(1, 64000) * 0.1)
    assert feats.shape == (1, config.audio_tokens, 512) and config.audio_tokens == 1200
