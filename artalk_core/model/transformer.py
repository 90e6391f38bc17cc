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

    # ---- incremental (key/value cached) inference -------------------------------------------
    def _split_heads(self, t: Tensor) -> Tensor:
        """[B,n,E] -> [B,heads,n,E/heads]."""
        b, n, e = t.shape
        return t.view(b, n, self.heads, e // self.heads).transpose(1, 2)

    def new_cache(self, ctx: Tensor, capacity: int) -> KVCache:
        """A cache for ``capacity`` tokens after the context ctx [B,M,E], holding ctx's keys and values."""
        k = F.normalize(self._split_heads(self.key(ctx)), dim=-1)
        v = self._split_heads(self.value(ctx))
        return KVCache(k, v, capacity)

    def forward_cached(self, x: Tensor, cache: KVCache) -> Tensor:
        """New tokens x [B,p,E] attend to [context, cached tokens, x]; their keys/values join the cache.

        Equal to :meth:`forward` on all tokens so far when every earlier token sees none of the new
        ones and the new ones see all (the block-causal mask with x one whole level), so no mask here.
        """
        b, n, e = x.shape
        q = self._split_heads(self.query(x))
        q = F.normalize(q, dim=-1) * self.scale_mul_1H11.clamp(max=MAX_LOG_SCALE).exp()
        k, v = cache.append(F.normalize(self._split_heads(self.key(x)), dim=-1), self._split_heads(self.value(x)))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, e))


class KVCache:
    """Normalised keys and values [B,heads,L,hd] of the context and the tokens generated so far."""

    def __init__(self, k_ctx: Tensor, v_ctx: Tensor, capacity: int) -> None:
        b, h, m, hd = k_ctx.shape
        self.k = k_ctx.new_empty(b, h, m + capacity, hd)
        self.v = v_ctx.new_empty(b, h, m + capacity, v_ctx.shape[-1])
        self.k[:, :, :m] = k_ctx
        self.v[:, :, :m] = v_ctx
        self.length = m

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add p tokens' k, v [B,heads,p,hd]; return views of all keys and values so far."""
        end = self.length + k.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache overflow: {end} > {self.k.shape[2]} tokens")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


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

    def forward_cached(self, x: Tensor, mod: Tensor, cache: KVCache) -> Tensor:
        """New tokens x [B,p,E] with their precomputed ``ada_lin(cond)`` mod [B,p,6E] -> [B,p,E]."""
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod.split(self.dim, dim=-1)
        x = x + self.attn.forward_cached(_ln(x) * (1 + scale1) + shift1, cache) * gamma1
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
        return self.modulate(x, self.ada_lin(cond))

    def modulate(self, x: Tensor, mod: Tensor) -> Tensor:
        """x [B,n,E] with a precomputed ``ada_lin(cond)`` mod [B,n,2E] -> [B,n,E]."""
        scale, shift = mod.split(self.dim, dim=-1)
        return _ln(x) * (1 + scale) + shift


__all__ = ["AdaLNHead", "AdaLNSelfAttnBlock", "ContextSelfAttention", "KVCache"]
