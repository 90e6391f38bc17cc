"""Number-for-number parity with the reference implementation on the tiny random-weight fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artalk_core.model.artalk import ARTalkModel
from artalk_core.model.checkpoint import load_model
from artalk_core.model.config import ModelConfig
from artalk_core.timing import num_frames

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en"
ATOL = 1e-4


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def model() -> ARTalkModel:
    config = ModelConfig.from_file(FIXTURE / "model_config.json")
    return load_model(FIXTURE / "weights.safetensors", config)


@pytest.fixture(scope="module")
def features(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.encode_audio(expected["audio"])


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_audio_features_chunk0(features: torch.Tensor, expected: dict[str, torch.Tensor]) -> None:
    n_frames = num_frames(expected["audio"].shape[0])
    assert features.shape == (3, 199, 64) and n_frames == expected["motion_raw_style"].shape[0]
    assert _max_err(features[0], expected["audio_features_chunk0"]) < ATOL  # seen: ~1.5e-6


def test_encode_audio_batching_is_exact(model: ARTalkModel, features: torch.Tensor,
                                        expected: dict[str, torch.Tensor]) -> None:
    one_by_one = model.encode_audio(expected["audio"], chunk_batch=1)
    assert _max_err(one_by_one, features) < 1e-5


def test_style_embedding(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> None:
    style = model.style_embedding(expected["style_motion"])
    assert style.shape == (128,)
    assert _max_err(style, expected["style_embedding"]) < ATOL


def test_style_file_matches_fixture_tensor(expected: dict[str, torch.Tensor]) -> None:
    style = torch.load(FIXTURE / "style_motion.pt", map_location="cpu", weights_only=True)
    assert torch.equal(style, expected["style_motion"])


@pytest.mark.parametrize("with_style", [True, False], ids=["style", "nostyle"])
def test_motion_raw(model: ARTalkModel, features: torch.Tensor, expected: dict[str, torch.Tensor],
                    with_style: bool) -> None:
    want = expected["motion_raw_style" if with_style else "motion_raw_nostyle"]
    calls: list[tuple[str, int, int]] = []
    got = model.generate(features, want.shape[0], expected["style_motion"] if with_style else None,
                         progress=lambda *a: calls.append(a))
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert _max_err(got, want) < ATOL  # seen: 0 on CPU
    assert calls[0] == ("generate", 0, 3) and calls[-1] == ("generate", 3, 3)


def test_generate_from_audio(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> None:
    calls: list[tuple[str, int, int]] = []
    got = model.generate_from_audio(expected["audio"], expected["style_motion"], progress=lambda *a: calls.append(a))
    assert _max_err(got, expected["motion_raw_style"]) < ATOL
    assert ("encode audio", 3, 3) in calls and calls[-1] == ("generate", 3, 3)


def test_styles_differ(expected: dict[str, torch.Tensor]) -> None:
    # Guards the two generation tests above against a fixture where the style has no effect.
    assert _max_err(expected["motion_raw_style"], expected["motion_raw_nostyle"]) > 1e-3


def test_vae_bits(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> None:
    bits = model.basic_vae.encode_prev(expected["motion_final"][None, :100])
    assert bits.shape == (1, 181, 32)
    assert torch.equal(bits[0].to(torch.int32), expected["vae_bits"])


def test_vae_decoded(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> None:
    bits = expected["vae_bits"][None]
    with torch.no_grad():
        out = model.basic_vae.decode(bits, bits)
    assert out.shape == (1, 100, 106)
    assert _max_err(out[0], expected["vae_decoded"]) < ATOL


def test_bad_inputs(model: ARTalkModel, features: torch.Tensor) -> None:
    from artalk_core.errors import AudioError, InputError, StyleError

    with pytest.raises(StyleError, match=r"\[50, 106\]"):
        model.style_embedding(torch.zeros(40, 106))
    with pytest.raises(AudioError):
        model.encode_audio(torch.zeros(0))
    with pytest.raises(AudioError):
        model.encode_audio(torch.zeros(2, 16000))
    with pytest.raises(InputError, match="n_frames"):
        model.generate(features, 301)
    with pytest.raises(InputError, match="features"):
        model.generate(features[..., :10], 10)
