"""The key/value-cached generation path equals the straightforward per-level reference path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artalk_core.errors import InputError
from artalk_core.model.artalk import ARTalkModel, linear_weights_cast
from artalk_core.model.checkpoint import build_model, load_model
from artalk_core.model.config import ModelConfig

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en"


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def model() -> ARTalkModel:
    return load_model(FIXTURE / "weights.safetensors", ModelConfig.from_file(FIXTURE / "model_config.json"))


@pytest.fixture(scope="module")
def features(model: ARTalkModel, expected: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.encode_audio(expected["audio"])


@pytest.fixture(scope="module")
def random_model() -> ARTalkModel:
    """A small random model unlike the fixture: 4 scales, 2 previous chunks of context, 3 blocks."""
    config = ModelConfig.from_dict({
        "AR_CONFIG": {"T_DEPTH": 3, "T_NUM_HEADS": 2, "PREV_RATIO": 2, "EMBED_DIM": 48},
        "VAE_CONFIG": {"MOTION_DIM": 106, "V_CODE_DIM": 16, "T_DEPTH": 1, "T_NUM_HEADS": 2,
                       "T_HIDDEN_DIM": 32, "V_PATCH_NUMS": [1, 4, 20, 100]},
        "WAV2VEC2_CONFIG": {"hidden_size": 40, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 64, "conv_dim": [16] * 7, "num_conv_pos_embeddings": 8,
                            "num_conv_pos_embedding_groups": 2},
    })
    torch.manual_seed(7)
    model = build_model(config)
    with torch.no_grad():  # non-zero everywhere (the default init leaves embeddings at zero)
        for name, param in model.named_parameters():
            if not name.startswith("audio_encoder."):
                param.normal_(0.0, 0.3)
    return model.requires_grad_(False)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("with_style", [True, False], ids=["style", "nostyle"])
def test_fast_equals_reference_on_fixture(model: ARTalkModel, features: torch.Tensor,
                                          expected: dict[str, torch.Tensor], with_style: bool) -> None:
    style = expected["style_motion"] if with_style else None
    n_frames = expected["motion_raw_style"].shape[0]
    ref = model.generate_detailed(features, n_frames, style, fast=False)
    fast = model.generate_detailed(features, n_frames, style, fast=True)
    assert features.shape[0] == 3 and fast.bits.shape == (3, 181, 32) and fast.bits.dtype == torch.bool
    assert torch.equal(fast.bits, ref.bits)
    assert _max_err(fast.motion, ref.motion) < 1e-5
    assert set(fast.seconds) == {"ar", "vae"} and all(v >= 0 for v in fast.seconds.values())
    # generate() defaults to the fast path; generate_reference() is the slow one.
    assert torch.equal(model.generate(features, n_frames, style), fast.motion)
    assert torch.equal(model.generate_reference(features, n_frames, style), ref.motion)


@pytest.mark.parametrize("n_chunks", [1, 5])
def test_fast_equals_reference_random_config(random_model: ARTalkModel, n_chunks: int) -> None:
    torch.manual_seed(n_chunks)
    feats = torch.randn(n_chunks, 37, random_model.config.audio_dim)
    style = torch.randn(50, 106)
    n_frames = n_chunks * 100 - 13
    for sty in (style, None):
        ref = random_model.generate_detailed(feats, n_frames, sty, fast=False)
        fast = random_model.generate_detailed(feats, n_frames, sty, fast=True)
        assert fast.bits.shape == (n_chunks, 125, 16)
        assert torch.equal(fast.bits, ref.bits)
        assert _max_err(fast.motion, ref.motion) < 1e-5
        assert fast.motion.shape == (n_frames, 106)
        # Audio modulations computed for groups of chunks (default 4) or chunk by chunk: same bits.
        assert torch.equal(random_model.generate_detailed(feats, n_frames, sty, cond_batch=1).bits, ref.bits)
        assert torch.equal(random_model.generate_detailed(feats, n_frames, sty, cond_batch=3).bits, ref.bits)
    # Guards against a degenerate model where the chunks' bits would not depend on anything.
    if n_chunks > 1:
        assert not torch.equal(fast.bits[0], fast.bits[1])


def test_ar_feat_step_builds_ar_feat(random_model: ARTalkModel) -> None:
    """Appending a level keeps the earlier next-scale inputs: ar_feat(k) starts with ar_feat(k-1)."""
    vae = random_model.basic_vae
    pn = vae.patch_nums
    bits = torch.rand(2, sum(pn), vae.code_dim) > 0.5
    acc, pieces, start = None, [], 0
    for k in range(len(pn) - 1):
        acc, piece = vae.ar_feat_step(acc, k, bits[:, start:start + pn[k]])
        pieces.append(piece)
        start += pn[k]
        full = vae.ar_feat(k, bits)
        assert torch.equal(torch.cat(pieces, dim=1), full)
        if k > 0:
            prev = vae.ar_feat(k - 1, bits)
            assert torch.equal(full[:, :prev.shape[1]], prev)
    assert torch.equal(torch.cat(pieces, dim=1), vae.ms_feat(bits))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_precision_runs_and_stays_finite(model: ARTalkModel, expected: dict[str, torch.Tensor],
                                         precision: str) -> None:
    audio = expected["audio"][:100_000]  # 2 chunks
    feats = model.encode_audio(audio, precision=precision)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    for fast in (True, False):
        out = model.generate_detailed(feats, 157, expected["style_motion"], fast=fast, precision=precision)
        assert out.motion.shape == (157, 106) and out.motion.dtype == torch.float32
        assert torch.isfinite(out.motion).all()
    # The weights are the model's float32 ones again afterwards.
    assert all(p.dtype == torch.float32 for p in model.parameters())
    motion = model.generate_from_audio(audio, precision=precision)
    assert motion.shape == (157, 106) and torch.isfinite(motion).all()


def test_bad_precision(model: ARTalkModel, features: torch.Tensor) -> None:
    with pytest.raises(InputError, match="precision"):
        model.generate(features, 10, precision="int8")
    with pytest.raises(InputError, match="precision"):
        model.encode_audio(torch.zeros(16000), precision="fp64")


def test_weights_restored_after_error(model: ARTalkModel) -> None:
    before = {name: p for name, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"):
        with linear_weights_cast([model.attn_blocks], torch.bfloat16):
            assert model.attn_blocks[0].ffn[0].weight.dtype == torch.bfloat16
            raise RuntimeError("boom")
    after = dict(model.named_parameters())
    assert all(after[name] is p for name, p in before.items())
