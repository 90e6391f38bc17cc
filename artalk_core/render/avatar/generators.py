"""Direction encoding, the source-camera plane, and the Gaussian generators (spec GAGAVATAR.md §2.4-2.6).

The reference's quirks are reproduced on purpose (spec §11): the LinearGS quaternions are
normalised across the points, not per quaternion; the ConvGS colour sigmoid hits grid columns 0..2
in all 32 channels, not the RGB channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artalk_core.render.avatar.backbone import channels_last


class HarmonicEmbedding(nn.Module):
    """PyTorch3D's HarmonicEmbedding (omega_0 = 1, log-spaced, input appended).

    [..., 3] -> [..., 3 * (2 n + 1)]: [sin(x_i f_k) for i, k | cos(x_i f_k) | x], f_k = 2^k. cos is
    computed as sin(x + pi/2) in the same call, as PyTorch3D does, for bit parity.
    """

    def __init__(self, n_harmonic_functions: int = 4) -> None:
        super().__init__()
        self.n = n_harmonic_functions

    def forward(self, x: Tensor) -> Tensor:
        # made here rather than held as buffers: the module has no state to load (as the checkpoint)
        freqs = 2.0 ** torch.arange(self.n, dtype=x.dtype, device=x.device)
        embed = (x[..., None] * freqs).reshape(*x.shape[:-1], -1)
        embed = torch.cat([embed, embed + 0.5 * math.pi], dim=-1).sin()
        return torch.cat([embed, x], dim=-1)


def plane_points(plane_size: int, transform_matrix: Tensor, focal: float) -> tuple[Tensor, Tensor]:
    """The source camera's plane of Gaussians (``build_points_planes``).

    ``transform_matrix`` [3,4] = [R | T] (PyTorch3D world->view, row vectors). Returns points
    [n*n, 3] (index = row * n + col; row 0 at the top, column 0 at the left of the image) on the
    plane through depth |T_z| perpendicular to the camera axis, covering its field of view, and
    the camera axis direction [3] = R (0,0,1)^T.
    """
    r, t = transform_matrix[:, :3], transform_matrix[:, 3]
    xs = torch.linspace(1.0, -1.0, plane_size, dtype=transform_matrix.dtype, device=transform_matrix.device)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")  # x varies along columns, y along rows ("xy" grid)
    rays_cam = torch.stack([gx / focal, gy / focal, torch.ones_like(gx)], dim=-1).reshape(-1, 3)
    cam_dir = r @ torch.tensor([0.0, 0.0, 1.0], dtype=r.dtype, device=r.device)
    rays_world = rays_cam @ r.T
    origin = -(r @ t)
    distance = (origin * cam_dir).sum().abs()
    return origin[None] + distance * rays_world, cam_dir


class LinearGSGenerator(nn.Module):
    """Per-FLAME-vertex Gaussians from [head_base | global token] (``gs_generator_g``).

    forward(features [B,N,in_dim], dir_enc [B,27]) -> colors [B,N,32], opacities [B,N,1],
    scales [B,N,3], rotations [B,N,4] (normalised over the N points, the reference quirk).
    """

    def __init__(self, in_dim: int, hidden: int, head_hidden: int, dir_dim: int, color_channels: int) -> None:
        super().__init__()
        self.feature_layers = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden))
        d = hidden + dir_dim

        def head(k: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, k))

        self.color_layers = head(color_channels)
        self.opacity_layers = head(1)
        self.scale_layers = head(3)
        self.rotation_layers = head(4)

    def forward(self, features: Tensor, dir_enc: Tensor) -> dict[str, Tensor]:
        h = self.feature_layers(features)
        h = torch.cat([h, dir_enc[:, None].expand(-1, h.shape[1], -1)], dim=-1)
        colors = self.color_layers(h)
        colors = torch.cat([torch.sigmoid(colors[..., :3]), colors[..., 3:]], dim=-1)
        return {
            "colors": colors,
            "opacities": torch.sigmoid(self.opacity_layers(h)),
            "scales": torch.sigmoid(self.scale_layers(h)) * 0.05,
            # F.normalize's default dim=1 on [B,N,4] normalises each component over the N points (quirk)
            "rotations": F.normalize(self.rotation_layers(h), dim=1),
        }


class ConvGSGenerator(nn.Module):
    """Per-pixel Gaussians of one plane sheet (``gs_generator_l0`` / ``_l1``).

    forward(f_feature0 [B,C,P,P], dir_enc [B,27]) -> colors [B,P*P,32], opacities [B,P*P,1],
    scales [B,P*P,3], rotations [B,P*P,4] (unit), positions [B,P*P,1] in (0,1); index = row*P + col.
    """

    def __init__(self, in_dim: int, hidden: int, dir_dim: int, color_channels: int) -> None:
        super().__init__()
        self.color_channels = color_channels
        self.gaussian_conv = nn.Sequential(
            nn.Conv2d(in_dim + dir_dim, hidden, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(hidden, color_channels + 9, 1, 1, 0))

    def forward(self, features: Tensor, dir_enc: Tensor) -> dict[str, Tensor]:
        b, _, hh, ww = features.shape
        x = channels_last(torch.cat([features, dir_enc[:, :, None, None].expand(-1, -1, hh, ww)], dim=1))
        p = self.gaussian_conv(x)
        c = self.color_channels
        colors = p[:, :c]
        # the reference's colors[..., :3] on a [B,C,H,W] tensor: grid COLUMNS 0..2, every channel (quirk)
        colors = torch.cat([torch.sigmoid(colors[..., :3]), colors[..., 3:]], dim=-1)
        out = {
            "colors": colors,
            "opacities": torch.sigmoid(p[:, c:c + 1]),
            "scales": torch.sigmoid(p[:, c + 1:c + 4]) * 0.05,
            "rotations": F.normalize(p[:, c + 4:c + 8], dim=1),
            "positions": torch.sigmoid(p[:, c + 8:c + 9]),
        }
        return {k: v.permute(0, 2, 3, 1).reshape(b, hh * ww, v.shape[1]) for k, v in out.items()}


__all__ = ["ConvGSGenerator", "HarmonicEmbedding", "LinearGSGenerator", "plane_points"]
