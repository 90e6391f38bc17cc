"""The per-avatar Gaussians that the source path builds once and every frame renders."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

FIELDS: tuple[str, ...] = ("xyz", "colors", "opacities", "scales", "rotations")


@dataclass(frozen=True)
class Gaussians:
    """N = n_global + 2 * plane_size^2 Gaussians (180,255 released), float32, one device.

    Order of rows: [n_global FLAME-bound | plane sheet l0 | plane sheet l1]. Rows 0..n_global-1
    of ``xyz`` are zeros at build time; the frame renderer puts that frame's FLAME points there
    (on a copy: never write into a cached instance).

    - xyz [N,3] world positions
    - colors [N,C] C = 32 feature channels (not RGB)
    - opacities [N,1] in (0,1)
    - scales [N,3] world units, in (0, 0.05)
    - rotations [N,4] quaternions (w,x,y,z); the first n_global are NOT unit (reference quirk)
    """

    xyz: Tensor
    colors: Tensor
    opacities: Tensor
    scales: Tensor
    rotations: Tensor
    n_global: int

    def __post_init__(self) -> None:
        n = self.xyz.shape[0]
        want = {"xyz": 3, "opacities": 1, "scales": 3, "rotations": 4}
        for name in FIELDS:
            t = getattr(self, name)
            if t.ndim != 2 or t.shape[0] != n or (name in want and t.shape[1] != want[name]):
                raise ValueError(f"Gaussians.{name} has shape {tuple(t.shape)} (N = {n})")
        if not 0 <= self.n_global <= n:
            raise ValueError(f"Gaussians.n_global {self.n_global} is outside 0..{n}")

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def device(self) -> torch.device:
        return self.xyz.device

    def to(self, device: str | torch.device) -> Gaussians:
        """A copy on ``device`` (self when already there)."""
        dev = torch.device(device)
        if self.xyz.device == dev:
            return self
        return Gaussians(**{f: getattr(self, f).to(dev) for f in FIELDS}, n_global=self.n_global)

    def with_global_xyz(self, points: Tensor) -> Gaussians:
        """A new instance whose first n_global positions are ``points`` [n_global,3] (others shared)."""
        if tuple(points.shape) != (self.n_global, 3):
            raise ValueError(f"expected {self.n_global} x 3 global points, got {tuple(points.shape)}")
        xyz = torch.cat([points.to(self.xyz), self.xyz[self.n_global:]])
        return Gaussians(xyz=xyz, colors=self.colors, opacities=self.opacities, scales=self.scales,
                         rotations=self.rotations, n_global=self.n_global)

    def tensors(self) -> dict[str, Tensor]:
        """The five fields by name (e.g. for safetensors)."""
        return {f: getattr(self, f) for f in FIELDS}


__all__ = ["FIELDS", "Gaussians"]
