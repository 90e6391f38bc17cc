"""DINOv2 ViT-B/14 and the DPT-style head of GAGAvatar's ``DINOBase`` (spec GAGAVATAR.md §2.2-2.3).

The ViT is written here (not transformers' ``Dinov2Model``) because it then carries the original
DINOv2 key names (``blocks.i.attn.qkv``, ``ls1.gamma``...) that ``GAGAvatar.pt`` uses, so the released
checkpoint loads strictly with no renaming, independently of the transformers version (whose
attention key names changed between 4.x and 5.x). Only the inference path used by GAGAvatar is
implemented: no registers, no masking, no position-embedding interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artalk_core.errors import InputError
from artalk_core.render.avatar.config import AvatarConfig


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: [B,3,H,W] -> [B, (H/p)*(W/p), D], token t = row * (W/p) + col."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection ([q | k | v] rows)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(d)) v, as DINOv2's plain attention
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)); x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT without registers, with the original parameter names."""

    def __init__(self, cfg: AvatarConfig) -> None:
        super().__init__()
        d = cfg.dino_embed_dim
        n_tokens = cfg.n_patches_side ** 2 + 1
        self.img_size = cfg.dino_img_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # in the checkpoint, unused at inference
        self.patch_embed = PatchEmbed(cfg.dino_patch_size, d)
        self.blocks = nn.ModuleList(
            Block(d, cfg.dino_heads, d * cfg.dino_mlp_ratio, cfg.dino_ln_eps) for _ in range(cfg.dino_depth))
        self.norm = nn.LayerNorm(d, eps=cfg.dino_ln_eps)

    def get_intermediate_layers(self, x: Tensor, blocks: tuple[int, ...]) -> list[Tensor]:
        """Outputs of ``blocks`` after the final norm, CLS removed: each [B, N_patches, D]."""
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise InputError(f"the ViT takes {self.img_size}x{self.img_size} images, got {tuple(x.shape[-2:])}")
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        outs = []
        last = max(blocks)
        for i, blk in enumerate(self.blocks):
            if i > last:
                break
            t = blk(t)
            if i in blocks:
                outs.append(self.norm(t)[:, 1:])
        return outs


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias (DPT, bn=False)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """DPT fusion: (a + rcu1(b)) -> rcu2 -> bilinear (align_corners=True) to ``size`` or x2 -> 1x1 conv."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(ch, ch, 1, 1, 0)
        self.resConfUnit1 = ResidualConvUnit(ch)  # noqa: N815 -- checkpoint key name
        self.resConfUnit2 = ResidualConvUnit(ch)  # noqa: N815

    def forward(self, a: Tensor, b: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        out = a if b is None else a + self.resConfUnit1(b)
        out = self.resConfUnit2(out)
        if size is None:
            out = F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(out)


def channels_last(x: Tensor) -> Tensor:
    """x [B,C,H,W] in channels-last memory layout: oneDNN (CPU) and cuDNN convolutions run it without
    per-call reorders (measured 10-30% faster on CPU for the 3x3 convs here); values are unchanged."""
    return x.contiguous(memory_format=torch.channels_last)


def resize_image(x: Tensor, size: int) -> Tensor:
    """torchvision's tensor resize: bilinear, antialias, align_corners=False. [B,C,H,W] -> [B,C,size,size]."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class DINOBase(nn.Module):
    """ViT + DPT head: image [B,3,S,S] in [0,1] -> f_feature0 [B,F,8p,8p], f_feature1 [B,D], layers.

    p = S / patch (37 released). ``layers`` are the four normed block outputs [B, p*p, D] (for tests).
    """

    def __init__(self, cfg: AvatarConfig) -> None:
        super().__init__()
        self.dino_model = DinoVisionTransformer(cfg)
        self.blocks_used = tuple(cfg.dino_blocks)
        self.patch = cfg.dino_patch_size
        d, od, h = cfg.dino_embed_dim, cfg.dpt_out_dims, cfg.dpt_hidden
        self.mean, self.std = cfg.imagenet_mean, cfg.imagenet_std
        self.projects = nn.ModuleList(nn.Conv2d(d, o, 1, 1, 0) for o in od)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(od[0], od[0], kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(od[1], od[1], kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(od[3], od[3], kernel_size=3, stride=2, padding=1),
        ])
        self.layer_rn = nn.ModuleList(nn.Conv2d(o + 3, h, 3, 1, 1, bias=False) for o in od)
        self.refinenet = nn.ModuleList(FeatureFusionBlock(h) for _ in range(4))
        self.output_conv = nn.Conv2d(h, cfg.feature_dim, 3, 1, 1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        images = (images - mean) / std
        ph, pw = images.shape[-2] // self.patch, images.shape[-1] // self.patch
        layers = self.dino_model.get_intermediate_layers(images, self.blocks_used)
        rn = []
        for i, feat in enumerate(layers):
            f = feat.permute(0, 2, 1).reshape(feat.shape[0], feat.shape[-1], ph, pw)
            f = self.resize_layers[i](self.projects[i](f))
            # the normalised image, resized to the level's size, goes first in the concatenation
            img = F.interpolate(images, size=tuple(f.shape[-2:]), mode="bilinear", align_corners=False,
                                antialias=True)
            rn.append(self.layer_rn[i](channels_last(torch.cat([img, f], dim=1))))
        path4 = self.refinenet[0](rn[3], size=tuple(rn[2].shape[-2:]))
        path3 = self.refinenet[1](path4, rn[2], size=tuple(rn[1].shape[-2:]))
        path2 = self.refinenet[2](path3, rn[1], size=tuple(rn[0].shape[-2:]))
        path1 = self.refinenet[3](path2, rn[0])
        out = self.output_conv(path1)
        # "global" feature: the FIRST PATCH token of the last layer (CLS is already stripped), as the reference
        return out, layers[-1][:, 0], layers


__all__ = ["DINOBase", "DinoVisionTransformer", "channels_last", "resize_image"]
