"""ModelConfig parsing, validation and round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from artalk_core.errors import ConfigError
from artalk_core.model.config import ModelConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en"
MIMI_FIXTURE = FIXTURE.parent / "tiny_mimi"


def test_released_values() -> None:
    cfg = ModelConfig.released()
    assert (cfg.ar_depth, cfg.ar_heads, cfg.prev_ratio, cfg.embed_dim) == (12, 12, 1, 768)
    assert (cfg.motion_dim, cfg.code_dim, cfg.vae_depth, cfg.vae_heads, cfg.vae_hidden) == (106, 32, 8, 8, 512)
    assert cfg.patch_nums == (1, 5, 25, 50, 100)
    assert cfg.audio_dim == 1024 and cfg.wav2vec2["num_hidden_layers"] == 24


def test_fixture_overrides_wav2vec2() -> None:
    cfg = ModelConfig.from_file(FIXTURE / "model_config.json")
    assert cfg.embed_dim == 64 and cfg.audio_dim == 64
    assert cfg.wav2vec2["conv_kernel"] == [10, 3, 3, 3, 3, 2, 2]  # kept from the built-in config
    assert cfg.wav2vec2["num_conv_pos_embeddings"] == 16


@pytest.mark.parametrize("make", [ModelConfig.released,
                                  lambda: ModelConfig.from_file(FIXTURE / "model_config.json"),
                                  lambda: ModelConfig.from_file(MIMI_FIXTURE / "model_config.json")])
def test_round_trip(make) -> None:
    cfg = make()
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def _released_dict() -> dict:
    return copy.deepcopy(ModelConfig.released().to_dict())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("VAE_CONFIG"), "VAE_CONFIG"),
    (lambda d: d["AR_CONFIG"].pop("T_DEPTH"), "AR_CONFIG.T_DEPTH"),
    (lambda d: d["AR_CONFIG"].update(T_NUM_HEADS="12"), "AR_CONFIG.T_NUM_HEADS"),
    (lambda d: d["AR_CONFIG"].update(EMBED_DIM=100), "divisible"),
    (lambda d: d["AR_CONFIG"].update(AUDIO_ENCODER="hubert"), "AUDIO_ENCODER.*wav2vec or mimi"),
    (lambda d: d.update(MIMI_CONFIG={"hidden_size": -1}), "MIMI_CONFIG.hidden_size"),
    (lambda d: d.update(MIMI_CONFIG={"upsampling_ratios": [8, 0]}), "upsampling_ratios"),
    (lambda d: d.update(MIMI_CONFIG={"sampling_rate": 16000}), "24000"),
    (lambda d: d.update(MIMI_CONFIG="small"), "MIMI_CONFIG must be an object"),
    (lambda d: d["VAE_CONFIG"].update(MOTION_DIM=56), "MOTION_DIM"),
    (lambda d: d["VAE_CONFIG"].update(V_PATCH_NUMS=[1, 5, 50]), "V_PATCH_NUMS"),
    (lambda d: d["VAE_CONFIG"].update(V_PATCH_NUMS="1,5"), "V_PATCH_NUMS"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"hidden_size": 0}), "hidden_size"),
    (lambda d: d.update(WAV2VEC2_CONFIG=[1]), "WAV2VEC2_CONFIG"),
])
def test_invalid_fields(edit, message: str) -> None:
    d = _released_dict()
    edit(d)
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["AR_CONFIG"].update(EMBED_DIM=2**40, T_NUM_HEADS=1), "AR_CONFIG.EMBED_DIM' 1099511627776 is larger"),
    (lambda d: d["AR_CONFIG"].update(T_DEPTH=10**9), "AR_CONFIG.T_DEPTH' 1000000000 is larger .*at most 128"),
    (lambda d: d["AR_CONFIG"].update(PREV_RATIO=10**6), "PREV_RATIO"),
    (lambda d: d["VAE_CONFIG"].update(T_HIDDEN_DIM=2**40), "VAE_CONFIG.T_HIDDEN_DIM"),
    (lambda d: d["VAE_CONFIG"].update(T_DEPTH=10**9), "VAE_CONFIG.T_DEPTH"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"num_hidden_layers": 10**9}), "WAV2VEC2_CONFIG.num_hidden_layers"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"add_adapter": True, "num_adapter_layers": 10**9}), "num_adapter_layers"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"intermediate_size": 2**40}), "WAV2VEC2_CONFIG.intermediate_size"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"conv_dim": [512] * 6 + [2**40]}), "WAV2VEC2_CONFIG.conv_dim 1099511627776"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"conv_dim": [8] * 10**4, "conv_kernel": [2] * 10**4,
                                         "conv_stride": [1] * 10**4}), "lists 10000 values"),
    (lambda d: d.update(WAV2VEC2_CONFIG={"output_hidden_size": 2**40}), "output_hidden_size"),
    (lambda d: d.update(MIMI_CONFIG={"num_filters": 2**40}), "MIMI_CONFIG.num_filters"),
    (lambda d: d.update(MIMI_CONFIG={"num_quantizers": 10**9}), "MIMI_CONFIG.num_quantizers"),
    (lambda d: d.update(MIMI_CONFIG={"num_residual_layers": 10**9}), "MIMI_CONFIG.num_residual_layers"),
    (lambda d: d.update(MIMI_CONFIG={"rope_scaling": {"factor": {"x": [2**40]}}}), "rope_scaling.factor.x"),
])
def test_sizes_and_depths_are_bounded_before_anything_is_built(edit, message: str) -> None:
    """A 2**40 width overflowed torch's storage size (an unexpected RuntimeError), a 10**9 depth built for
    ever: ConfigError (exit 2) as the config is read, for the audio encoders' overrides too."""
    d = _released_dict()
    edit(d)
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(d)


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        ModelConfig.from_file(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.from_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        ModelConfig.from_file(wrong)


def test_audio_encoders() -> None:
    released = ModelConfig.released()
    assert (released.audio_encoder, released.audio_tokens, released.audio_dim) == ("wav2vec", 199, 1024)
    assert not released.audio_encoder_stated  # the released config.json does not name it
    mimi = released.with_audio_encoder("mimi")  # the kyutai/mimi sizes, built in
    assert (mimi.audio_encoder, mimi.audio_tokens, mimi.audio_dim) == ("mimi", 50, 512)
    assert mimi.mimi["num_quantizers"] == 32 and mimi.mimi["upsampling_ratios"] == [8, 6, 5, 4]
    assert mimi.to_dict()["AR_CONFIG"]["AUDIO_ENCODER"] == "mimi" and "MIMI_CONFIG" not in mimi.to_dict()
    tiny = ModelConfig.from_file(MIMI_FIXTURE / "model_config.json")
    assert tiny.audio_encoder_stated and tiny.mimi["num_quantizers"] == 4  # MIMI_CONFIG overrides
    assert tiny.mimi["upsampling_ratios"] == [8, 6, 5, 4]  # kept from the built-in config
    # only what differs from kyutai/mimi is written back (hidden_size 512 does not)
    assert set(tiny.to_dict()["MIMI_CONFIG"]) < set(json.loads(
        (MIMI_FIXTURE / "model_config.json").read_text())["MIMI_CONFIG"])
    assert "hidden_size" not in tiny.to_dict()["MIMI_CONFIG"]
    with pytest.raises(ConfigError, match="AUDIO_ENCODER"):
        released.with_audio_encoder("hubert")


@pytest.mark.parametrize("ratios, frames", [([8, 6, 5, 4], 50), ([4, 4], 3000), ([8, 5], 1200)])
def test_mimi_frames_formula(ratios: list[int], frames: int) -> None:
    from artalk_core.model.config import mimi_frames

    assert mimi_frames({"upsampling_ratios": ratios, "compress": 2}) == frames
