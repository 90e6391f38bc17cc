"""GAGAvatarNet: every learned part of GAGAvatar, with the checkpoint's module names, and its loader.

The per-avatar "source" path (spec GAGAVATAR.md §2: DINOv2 + DPT head, direction encoding, plane,
three Gaussian generators) runs once per avatar in :meth:`GAGAvatarNet.build_gaussians`; the
StyleUNet runs every frame in :meth:`GAGAvatarNet.upsample`. Camera, FLAME driving and the
rasterizer live elsewhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from artalk_core.errors import CheckpointError, InputError
from artalk_core.fileio import PathLike
from artalk_core.render.avatar.backbone import DINOBase, resize_image
from artalk_core.render.avatar.config import AvatarConfig
from artalk_core.render.avatar.gaussians import Gaussians
from artalk_core.render.avatar.generators import ConvGSGenerator, HarmonicEmbedding, LinearGSGenerator, plane_points
from artalk_core.render.avatar.upsampler import StyleUNet, normal_tensor

DROPPED_PREFIXES: tuple[str, ...] = ("percep_loss.",)
"""Training-only keys of GAGAvatar.pt (the perceptual loss's VGG/AlexNet), dropped as the reference does."""


@dataclass
class SourceOutputs:
    """Every intermediate of the source path for one avatar (batch dimension removed).

    P = plane_size, p = ViT patches per side, D = ViT width, F = feature_dim.
    """

    f_image: Tensor
    """[3,S,S] the image resized to the ViT size, in [0,1] (before ImageNet normalisation)."""
    dino_layers: list[Tensor]
    """4 x [p*p, D] normed block outputs, CLS removed."""
    f_feature0: Tensor
    """[F,P,P] DPT head output."""
    f_feature1: Tensor
    """[D] the global feature (first patch token of the last layer)."""
    plane_points: Tensor
    """[P*P,3]"""
    plane_dirs: Tensor
    """[3] source camera axis."""
    dir_encoding: Tensor
    """[27] harmonic encoding of plane_dirs."""
    gen: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    """``g``, ``l0``, ``l1`` -> generator outputs (colors, opacities, scales, rotations[, positions])."""
    gaussians: Gaussians | None = None


class GAGAvatarNet(nn.Module):
    """The learned GAGAvatar modules. ``state_dict()`` has exactly the checkpoint's keys (561 released)."""

    def __init__(self, config: AvatarConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.head_base = nn.Parameter(normal_tensor(c.n_global, c.head_base_dim))
        self.base_model = DINOBase(c)
        self.harmo_encoder = HarmonicEmbedding(c.n_harmonic)
        self.gs_generator_g = LinearGSGenerator(c.linear_in_dim, c.linear_hidden, c.linear_head_hidden, c.dir_dim,
                                                c.color_channels)
        self.gs_generator_l0 = ConvGSGenerator(c.feature_dim, c.conv_hidden, c.dir_dim, c.color_channels)
        self.gs_generator_l1 = ConvGSGenerator(c.feature_dim, c.conv_hidden, c.dir_dim, c.color_channels)
        self.upsampler = StyleUNet(c)

    @property
    def device(self) -> torch.device:
        return self.head_base.device

    # ---------------------------------------------------------------- per avatar
    def source(self, image: Tensor, transform_matrix: Tensor) -> SourceOutputs:
        """The whole source path with its intermediates (under inference_mode).

        ``image`` [3,H,W] in [0,1] (512x512 tracked crops), ``transform_matrix`` [3,4] = [R | T] of
        the source camera (PyTorch3D convention).
        """
        c = self.config
        image, transform_matrix = _check_source(image, transform_matrix, self.device)
        with torch.inference_mode():
            f_image = resize_image(image[None], c.f_image_size)
            f0, f1, layers = self.base_model(f_image)
            points, dirs = plane_points(c.plane_size, transform_matrix, c.plane_focal)
            dir_enc = self.harmo_encoder(dirs[None])
            head_in = torch.cat([self.head_base[None], f1[:, None].expand(-1, c.n_global, -1)], dim=-1)
            gen_g = self.gs_generator_g(head_in, dir_enc)
            gen_l0 = self.gs_generator_l0(f0, dir_enc)
            gen_l1 = self.gs_generator_l1(f0, dir_enc)
            xyz = torch.cat([
                torch.zeros(c.n_global, 3, dtype=points.dtype, device=points.device),
                points + gen_l0["positions"][0] * dirs,  # sheet l0 pushed away from the camera
                points - gen_l1["positions"][0] * dirs,  # sheet l1 pulled towards it
            ])
            fields = {k: torch.cat([gen_g[k][0], gen_l0[k][0], gen_l1[k][0]])
                      for k in ("colors", "opacities", "scales", "rotations")}
        # plain (not inference-mode) tensors, so callers may use them freely outside inference_mode
        gaussians = Gaussians(xyz=xyz.clone(), **{k: v.clone() for k, v in fields.items()}, n_global=c.n_global)
        return SourceOutputs(
            f_image=f_image[0], dino_layers=[t[0] for t in layers], f_feature0=f0[0], f_feature1=f1[0],
            plane_points=points, plane_dirs=dirs, dir_encoding=dir_enc[0],
            gen={"g": {k: v[0] for k, v in gen_g.items()}, "l0": {k: v[0] for k, v in gen_l0.items()},
                 "l1": {k: v[0] for k, v in gen_l1.items()}},
            gaussians=gaussians)

    def build_gaussians(self, image: Tensor, transform_matrix: Tensor) -> Gaussians:
        """The avatar's Gaussians from its tracked image [3,512,512] in [0,1] and camera [3,4].

        Rows 0..n_global-1 of ``xyz`` are zeros (the frame renderer fills them with FLAME points).
        """
        out = self.source(image, transform_matrix)
        assert out.gaussians is not None
        return out.gaussians

    # ---------------------------------------------------------------- per frame
    def upsample(self, features: Tensor, *, noise: str, generator: torch.Generator | None = None,
                 precision: str = "fp32") -> Tensor:
        """StyleUNet: feature images [B,32,S,S] -> RGB [B,3,S,S] float32 in (0,1) (sigmoid, not clamped).

        ``noise``: ``seeded`` (fresh draws from ``generator``, frame by frame; ``None`` = torch's
        global RNG, unseeded like the reference), ``stored`` (the checkpoint's buffers, as the
        parity fixture) or ``none``. ``precision``: ``fp32`` (exact), ``bf16`` or ``fp16`` (a copy
        of the upsampler's weights in that dtype, made on first use; the noise is drawn as for
        fp32 and cast). Runs under inference_mode on the net's device; the result is an inference
        tensor on that device.
        """
        from artalk_core.render.avatar.precision import upsampler_dtype

        c = self.config
        s = c.unet_in_size
        if features.ndim != 4 or tuple(features.shape[1:]) != (c.unet_in_dim, s, s):
            raise InputError(f"the upsampler takes feature images [B,{c.unet_in_dim},{s},{s}], "
                             f"got {tuple(features.shape)}")
        dtype = upsampler_dtype(precision)
        with torch.inference_mode():
            x = features.to(device=self.device, dtype=torch.float32)
            noises = self.upsampler.make_noise(x.shape[0], noise, generator=generator, device=x.device)
            if dtype == torch.float32:
                return self.upsampler(x, noises)
            x = x.to(dtype, memory_format=torch.channels_last)  # one pass (the upsampler wants channels-last)
            out = self._upsampler_in(dtype)(x, [None if n is None else n.to(dtype) for n in noises])
            return out.float()

    def _upsampler_in(self, dtype: torch.dtype) -> StyleUNet:
        """The upsampler with its weights in ``dtype``: made once per net and dtype (a cast of 49 M
        weights at every frame would cost more than it saves), then kept; not a submodule (the
        state dict keeps the checkpoint's keys)."""
        with _REDUCED_LOCK:
            copies: dict[torch.dtype, StyleUNet] = self.__dict__.setdefault("_reduced_upsamplers", {})
            if dtype not in copies:
                import copy

                copies[dtype] = copy.deepcopy(self.upsampler).to(dtype)
            return copies[dtype]


_REDUCED_LOCK = threading.Lock()


def _check_source(image: Tensor, transform_matrix: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
        raise InputError(f"avatar source image must be a [3,H,W] tensor, got "
                         f"{tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__}")
    if not isinstance(transform_matrix, Tensor) or tuple(transform_matrix.shape) != (3, 4):
        raise InputError("avatar transform_matrix must be a [3,4] tensor [R | T], got "
                         f"{tuple(transform_matrix.shape) if isinstance(transform_matrix, Tensor) else transform_matrix!r}")
    image = image.to(device=device, dtype=torch.float32)
    transform_matrix = transform_matrix.to(device=device, dtype=torch.float32)
    if device.type == "meta":  # shape checks only (tests of the full-size shape flow)
        return image, transform_matrix
    if not bool(torch.isfinite(image).all()) or not bool(torch.isfinite(transform_matrix).all()):
        raise InputError("avatar source image or transform_matrix contains NaN or infinite values")
    return image, transform_matrix


def build_avatar_net(config: AvatarConfig, device: str | torch.device = "cpu") -> GAGAvatarNet:
    """A randomly initialised net in eval mode (no grad). ``device="meta"`` allocates nothing."""
    with torch.device(device):
        net = GAGAvatarNet(config)
    return net.requires_grad_(False).eval()


def load_avatar_net(checkpoint: PathLike | dict[str, Tensor], *, config: AvatarConfig,
                    device: str | torch.device = "cpu") -> GAGAvatarNet:
    """GAGAvatarNet with every weight from ``checkpoint`` (GAGAvatar.pt, a .safetensors, or a state dict).

    A ``.pt`` is read with ``torch.load(weights_only=True)`` and unwrapped from ``{"model": ...}``;
    ``percep_loss.*`` keys are dropped; loading is strict: any missing, unexpected or mis-shaped
    key raises CheckpointError naming them.
    """
    from artalk_core.model.checkpoint import check_state_dict, load_state_dict

    if isinstance(checkpoint, dict):
        state, source = dict(checkpoint), "state dict"
    else:
        state, source = load_state_dict(checkpoint), f"avatar checkpoint '{Path(checkpoint)}'"
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    net = build_avatar_net(config, device="meta")
    expected = net.state_dict()
    check_state_dict(state, expected, source, hint="wrong --avatar-config for this checkpoint?")
    bad = [k for k, v in state.items() if not v.is_floating_point()]
    if bad:
        raise CheckpointError(f"{source}: non-float tensors where weights are expected: {', '.join(bad[:5])}")
    cast = {k: v.to(device=device, dtype=torch.float32) for k, v in state.items()}
    # meta parameters are replaced by the checkpoint's tensors: no second copy of 680 MB of weights
    net.load_state_dict(cast, strict=True, assign=True)
    return net.requires_grad_(False).eval()


__all__ = ["DROPPED_PREFIXES", "GAGAvatarNet", "SourceOutputs", "build_avatar_net", "load_avatar_net"]
