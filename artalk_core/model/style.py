"""The style encoder: a short motion clip [B,50,106] -> a style vector [B,128]."""

from __future__ import annotations

import torch
from torch import Tensor, nn

STYLE_DIM: int = 128
STYLE_HEADS: int = 4
STYLE_FFN: int = 512
STYLE_DEPTH: int = 4
PE_ROWS: int = 600


class _PositionalEncoding(nn.Module):
    """Holds the ``pe`` buffer [1,600,128] (sinusoidal; the checkpoint's copy is loaded over it)."""

    pe: Tensor

    def __init__(self, dim: int = STYLE_DIM, rows: int = PE_ROWS) -> None:
        super().__init__()
        pos = torch.arange(rows, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
        pe = torch.zeros(rows, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe[None])


class _MotionTransformer(nn.Module):
    def __init__(self, motion_dim: int) -> None:
        super().__init__()
        self.motion_proj = nn.Linear(motion_dim, STYLE_DIM)
        layer = nn.TransformerEncoderLayer(STYLE_DIM, STYLE_HEADS, STYLE_FFN, dropout=0.1, activation="gelu",
                                           layer_norm_eps=1e-5, batch_first=True, norm_first=False)
        self.transformer = nn.TransformerEncoder(layer, STYLE_DEPTH, enable_nested_tensor=False)


class StyleEncoder(nn.Module):
    """``style_encoder.*``: normalise, project, add PE row L (quirk), 4 post-norm layers, mean over time."""

    def __init__(self, motion_dim: int) -> None:
        super().__init__()
        self.register_buffer("motion_mean", torch.zeros(motion_dim))
        self.register_buffer("motion_std", torch.ones(motion_dim))
        self.PE = _PositionalEncoding()
        self.encoder = _MotionTransformer(motion_dim)

    motion_mean: Tensor
    motion_std: Tensor

    def forward(self, motion: Tensor) -> Tensor:
        """motion [B,L,106] -> style [B,128]."""
        x = (motion - self.motion_mean) / self.motion_std
        x = self.encoder.motion_proj(x)
        length = x.shape[1]
        # The reference indexes the PE buffer with the length, so one row is added to every step.
        x = x + self.PE.pe[:, length][:, None]
        x = self.encoder.transformer(x)
        return x.mean(dim=1)


__all__ = ["STYLE_DIM", "StyleEncoder"]
