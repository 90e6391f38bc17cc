"""``basic_vae``: the bitwise motion VAE (transformer codec + multi-scale binary spherical quantiser).

Shapes: B batch, D code dim, H hidden, P patch scales (sum N), 100 frames per chunk.
Bits are bool tensors [B,N,D], scales concatenated coarse to fine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artalk_core.constants import CHUNK_FRAMES


def area_resample(x: Tensor, size: int) -> Tensor:
    """Average-pool resample along time: [B,T,C] -> [B,size,C]."""
    return F.interpolate(x.transpose(1, 2), size=size, mode="area").transpose(1, 2)


def linear_resample(x: Tensor, size: int) -> Tensor:
    """Linear resample along time (align_corners=False): [B,T,C] -> [B,size,C]."""
    return F.interpolate(x.transpose(1, 2), size=size, mode="linear", align_corners=False).transpose(1, 2)


class SimpleSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with scale H**-0.5 (the full hidden size, as trained)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim ** -0.5
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B,T,H], additive mask [1,1,T,T] -> [B,T,H]."""
        b, t, h = x.shape
        qkv = self.to_qkv(self.norm(x)).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask, scale=self.scale)
        return self.to_out(out.transpose(1, 2).reshape(b, t, h))


def _mlp(dim: int) -> nn.Sequential:
    hidden = dim * 3 // 2
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


def _run_blocks(blocks: nn.ModuleList, x: Tensor, mask: Tensor) -> Tensor:
    """Alternating (attention, MLP) residual blocks."""
    for attn, mlp in zip(blocks[0::2], blocks[1::2]):
        x = x + attn(x, mask)
        x = x + mlp(x)
    return x


class _Encoder(nn.Module):
    def __init__(self, motion_dim: int, code_dim: int, hidden: int, depth: int, heads: int) -> None:
        super().__init__()
        self.inp_mapping = nn.Sequential(nn.Linear(motion_dim, hidden), nn.LeakyReLU(0.2))
        blocks: list[nn.Module] = []
        for _ in range(depth):
            blocks += [SimpleSelfAttention(hidden, heads), _mlp(hidden)]
        self.encoder_transformer = nn.ModuleList(blocks)
        self.code_mapping = nn.Linear(hidden, code_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B,T,106] -> features [B,T,D]."""
        return self.code_mapping(_run_blocks(self.encoder_transformer, self.inp_mapping(x), mask))


class _Decoder(nn.Module):
    def __init__(self, motion_dim: int, code_dim: int, hidden: int, depth: int, heads: int) -> None:
        super().__init__()
        self.inp_mapping = nn.Sequential(nn.Linear(code_dim, hidden), nn.LeakyReLU(0.2))
        blocks: list[nn.Module] = []
        for _ in range(depth):
            blocks += [SimpleSelfAttention(hidden, heads), _mlp(hidden)]
        self.decoder_transformer = nn.ModuleList(blocks)
        self.out_mapping = nn.Linear(hidden, motion_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B,T,D] -> motion (normalised) [B,T,106]."""
        return self.out_mapping(_run_blocks(self.decoder_transformer, self.inp_mapping(x), mask))


class BitwiseMotionVAE(nn.Module):
    """``basic_vae.*``: motion chunk <-> multi-scale bits."""

    motion_mean: Tensor
    motion_std: Tensor
    attn_mask: Tensor

    def __init__(self, motion_dim: int, code_dim: int, hidden: int, depth: int, heads: int,
                 patch_nums: tuple[int, ...]) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.patch_nums = tuple(patch_nums)
        span = 2 * CHUNK_FRAMES
        self.register_buffer("motion_mean", torch.zeros(motion_dim))
        self.register_buffer("motion_std", torch.ones(motion_dim))
        self.enc_pos_embed = nn.Parameter(torch.zeros(1, span, motion_dim))
        self.dec_pos_embed = nn.Parameter(torch.zeros(1, span, code_dim))
        # Previous chunk (first half) sees only itself; the current chunk (second half) sees both.
        mask = torch.zeros(span, span)
        mask[:CHUNK_FRAMES, CHUNK_FRAMES:] = float("-inf")
        self.register_buffer("attn_mask", mask[None, None])
        self.encoder = _Encoder(motion_dim, code_dim, hidden, depth, heads)
        self.decoder = _Decoder(motion_dim, code_dim, hidden, depth, heads)

    # ---- bits <-> features -------------------------------------------------------------------
    def _signed(self, bits: Tensor) -> Tensor:
        """bits [B,n,D] -> signed codes (2*bits-1)/sqrt(D)."""
        return (2 * bits.to(self.dec_pos_embed.dtype) - 1) / math.sqrt(self.code_dim)

    def _split_bits(self, bits: Tensor) -> list[Tensor]:
        """bits [B,n,D] -> per-scale signed codes h_p [B,p,D] = (2*bits-1)/sqrt(D) (as many scales as fit)."""
        h = self._signed(bits)
        out, start = [], 0
        for p in self.patch_nums:
            if start + p > h.shape[1]:
                break
            out.append(h[:, start:start + p])
            start += p
        return out

    def quantize(self, f: Tensor) -> Tensor:
        """Multi-scale binary spherical quantisation: features [B,100,D] -> bits [B,N,D] (bool)."""
        residual = f
        bits = []
        scale = 1.0 / math.sqrt(self.code_dim)
        for p in self.patch_nums:
            r = residual if p == CHUNK_FRAMES else area_resample(residual, p)
            q = torch.where(F.normalize(r, dim=-1) > 0, scale, -scale).to(r.dtype)
            bits.append(q > 0)
            residual = residual - (q if p == CHUNK_FRAMES else linear_resample(q, CHUNK_FRAMES))
        return torch.cat(bits, dim=1)

    def feat(self, bits: Tensor) -> Tensor:
        """All-scale bits [B,N,D] -> summed features [B,100,D]."""
        total = None
        for h in self._split_bits(bits):
            up = h if h.shape[1] == CHUNK_FRAMES else linear_resample(h, CHUNK_FRAMES)
            total = up if total is None else total + up
        assert total is not None
        return total

    def ar_feat(self, k: int, bits: Tensor) -> Tensor:
        """Next-scale inputs after step ``k``: bits of scales 0..k -> [B, sum(P[1:k+2]), D]."""
        hs = self._split_bits(bits)
        acc: Tensor | None = None
        pieces = []
        for i in range(k + 1):
            acc, piece = self._ar_feat_step(acc, i, hs[i])
            pieces.append(piece)
        return torch.cat(pieces, dim=1)

    def _ar_feat_step(self, acc: Tensor | None, i: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step of :meth:`ar_feat`: add scale i's codes h [B,P[i],D] to the running sum acc [B,100,D]
        (None before step 0); return it and the next scale's input piece [B,P[i+1],D]."""
        if acc is None:
            acc = torch.zeros_like(h[:, :1]).expand(-1, CHUNK_FRAMES, -1)
        acc = acc + linear_resample(h, CHUNK_FRAMES)
        return acc, area_resample(acc, self.patch_nums[i + 1])

    def ar_feat_step(self, acc: Tensor | None, i: int, bits_i: Tensor) -> tuple[Tensor, Tensor]:
        """Incremental :meth:`ar_feat`: the bits of scale i only, bits_i [B,P[i],D], and the running sum
        from step i-1 (None for i = 0) -> (running sum [B,100,D], piece i of ar_feat [B,P[i+1],D]).

        The pieces of steps 0..k concatenated equal ``ar_feat(k, bits)`` (same operations, same order).
        """
        return self._ar_feat_step(acc, i, self._signed(bits_i))

    def ms_feat(self, bits: Tensor) -> Tensor:
        """Teacher-forced multi-scale inputs of a full bit set: [B,N,D] -> [B,N-1,D]."""
        return self.ar_feat(len(self.patch_nums) - 2, bits)

    # ---- motion <-> bits ---------------------------------------------------------------------
    def encode_prev(self, motion: Tensor) -> Tensor:
        """motion [B,100,106] -> bits [B,N,D] (bool)."""
        x = (motion - self.motion_mean) / self.motion_std + self.enc_pos_embed[:, :CHUNK_FRAMES]
        mask = self.attn_mask[:, :, :CHUNK_FRAMES, :CHUNK_FRAMES]
        return self.quantize(self.encoder(x, mask))

    def decode(self, prev_bits: Tensor, this_bits: Tensor) -> Tensor:
        """Bits of the previous and the current chunk [B,N,D] -> current chunk motion [B,100,106]."""
        x = torch.cat([self.feat(prev_bits), self.feat(this_bits)], dim=1) + self.dec_pos_embed
        out = self.decoder(x, self.attn_mask)[:, CHUNK_FRAMES:]
        return out * self.motion_std + self.motion_mean


__all__ = ["BitwiseMotionVAE", "area_resample", "linear_resample"]
