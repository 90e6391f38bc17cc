"""The audio encoder: a ``transformers`` Wav2Vec2Model built from a config dict (never from the hub)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

NORM_EPS: float = 1e-6
"""Added to the std in the per-row input normalisation, as the reference does."""


def build_wav2vec2(config: dict[str, Any], attn_implementation: str = "sdpa") -> nn.Module:
    """A randomly initialised Wav2Vec2Model for ``config`` (the merged wav2vec2 config dict).

    Always has ``masked_spec_embed`` (it is in the checkpoint even though eval never masks).
    """
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(**config)
    cfg._attn_implementation = attn_implementation
    model = Wav2Vec2Model(cfg)
    # transformers makes this one with the legacy torch.Tensor constructor, which ignores a
    # torch.device context (e.g. "meta"); it is also absent when both mask probabilities are 0.
    here = torch.empty(0).device
    current = getattr(model, "masked_spec_embed", None)
    if current is None or current.device != here:
        model.masked_spec_embed = nn.Parameter(torch.empty(cfg.hidden_size).uniform_())
    return model


def normalize_rows(x: Tensor) -> Tensor:
    """Zero-mean, unit-(unbiased-)std per row, as the wav2vec2 feature extractor expects. [B,S] -> [B,S]."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True)
    return (x - mean) / (std + NORM_EPS)


def run_wav2vec2(model: nn.Module, chunks: Tensor) -> Tensor:
    """Audio chunks [B,S] -> features [B,F,C] (F = 199 for 64,000 samples). Eval, no masking."""
    x = normalize_rows(chunks)
    return model(x).last_hidden_state


# Key renames between the two weight-norm forms of the positional conv (old torch.nn.utils.weight_norm
# vs torch.nn.utils.parametrizations.weight_norm).
OLD_WEIGHT_NORM_SUFFIXES: dict[str, str] = {
    "pos_conv_embed.conv.weight_g": "pos_conv_embed.conv.parametrizations.weight.original0",
    "pos_conv_embed.conv.weight_v": "pos_conv_embed.conv.parametrizations.weight.original1",
}


def convert_weight_norm_keys(state_dict: dict[str, Tensor], expected_keys: set[str]) -> dict[str, Tensor]:
    """Rename pos-conv weight-norm keys to whichever form ``expected_keys`` uses (others untouched)."""
    out: dict[str, Tensor] = {}
    for key, val in state_dict.items():
        new = key
        if key not in expected_keys:
            for old, cur in OLD_WEIGHT_NORM_SUFFIXES.items():
                if key.endswith(old) and key[: -len(old)] + cur in expected_keys:
                    new = key[: -len(old)] + cur
                elif key.endswith(cur) and key[: -len(cur)] + old in expected_keys:
                    new = key[: -len(cur)] + old
        if new != key and new in state_dict:  # both forms given: leave it to the mismatch report
            new = key
        out[new] = val
    return out


__all__ = ["build_wav2vec2", "convert_weight_norm_keys", "normalize_rows", "run_wav2vec2"]
