"""The autoregressive transformer blocks: AdaLN self-attention conditioned per token on audio.

Shapes: B batch, n current tokens, M = N*PREV_RATIO context tokens, E embed dim, C audio dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS: float = 1e-6
MAX_LOG_SCALE: float = math.log(100.0)


def _ln(x: Tensor) -> Tensor:
    """LayerNorm over E without affine parameters."""
    return F.layer_norm(x, x.shape[-1:], eps=LN_EPS)


class ContextSelfAttention(nn.Module):
    """Cosine attention of the current tokens over [context, current tokens] with a learnt per-head scale."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())

    def forward(self, x: Tensor, ctx: Tensor, bias: Tensor) -> Tensor:
        """x [B,n,E], ctx [B,M,E], bias [1,1,n,M+n] -> [B,n,E]."""
        b, n, e = x.shape
        hd = e // self.heads
        kv_in = torch.cat([ctx, x], dim=1)
        q = self.query(x).view(b, n, self.heads, hd).transpose(1, 2)
        k = self.key(kv_in).view(b, -1, self.heads, hd).transpose(1, 2)
        v = self.value(kv_in).view(b, -1, self.heads, hd).transpose(1, 2)
        q = F.normalize(q, dim=-1) * self.scale_mul_1H11.clamp(max=MAX_LOG_SCALE).exp()
        k = F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, e))


class AdaLNSelfAttnBlock(nn.Module):
    """``attn_blocks.i``: x += attn(modulated LN(x)) * gamma1; x += ffn(modulated LN(x)) * gamma2."""

    def __init__(self, dim: int, heads: int, cond_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        self.attn = ContextSelfAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, ctx: Tensor, cond: Tensor, bias: Tensor) -> Tensor:
        """x [B,n,E], ctx [B,M,E], cond [B,n,C], bias [1,1,n,M+n] -> [B,n,E]."""
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada_lin(cond).split(self.dim, dim=-1)
        x = x + self.attn(_ln(x) * (1 + scale1) + shift1, ctx, bias) * gamma1
        x = x + self.ffn(_ln(x) * (1 + scale2) + shift2) * gamma2
        return x


class AdaLNHead(nn.Module):
    """``cond_logits_head``: LN(x) * (1 + scale) + shift with per-token (scale, shift) from the audio."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x [B,n,E], cond [B,n,C] -> [B,n,E]."""
        scale, shift = self.ada_lin(cond).split(self.dim, dim=-1)
        return _ln(x) * (1 + scale) + shift


__all__ = ["AdaLNHead", "AdaLNSelfAttnBlock", "ContextSelfAttention"]
