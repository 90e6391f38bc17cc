"""StyleUNet: GAGAvatar's 32-channel feature image -> RGB upsampler (spec GAGAVATAR.md §6).

A U-Net encoder produces a style code and per-level SFT conditions for a StyleGAN2 decoder
(GFPGAN's "clean" CSFT generator). The decoder's StyleConvs inject noise; ``noise`` chooses where it
comes from:

- ``stored``: the checkpoint's ``noises.noiseK`` buffers (the reference's ``randomize_noise=False``;
  what the parity fixture uses);
- ``seeded``: fresh N(0,1) noise per StyleConv and frame, as the reference's default
  ``randomize_noise=True`` draws it (same shapes, same order), but from a ``torch.Generator`` so a
  job is reproducible. Draws are made frame by frame (all layers of frame 0, then frame 1, ...)
  on the generator's device and moved to the input's, so a batch of frames gets the same noise as
  the same frames one at a time, and a CPU generator gives the same noise on any device;
- ``none``: no noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artalk_core.constants import AVATAR_NOISE_MODES
from artalk_core.errors import InputError
from artalk_core.render.avatar.backbone import channels_last
from artalk_core.render.avatar.config import AvatarConfig

NOISE_MODES = AVATAR_NOISE_MODES


def normal_tensor(*shape: int, std: float = 1.0) -> Tensor:
    """N(0, std^2) initial values on the current default device; left uninitialised on the meta device
    (random ops there load torch's Python meta kernels, seconds of import for nothing)."""
    t = torch.empty(*shape)
    if t.device.type != "meta":
        with torch.no_grad():
            t.normal_(0.0, std)
    return t


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _lrelu_(x: Tensor) -> Tensor:
    """In place, on intermediate tensors only (saves a pass over 512x512 activations per layer)."""
    return F.leaky_relu_(x, 0.2)


class ResBlock(nn.Module):
    """lrelu(conv1) -> resample -> lrelu(conv2), plus a bias-free 1x1 skip of the resampled input."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        out = _lrelu_(self.conv1(x))
        out = F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=False)
        out = _lrelu_(self.conv2(out))
        x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out.add_(self.skip(x))


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv: weight * style (per input channel), optional demodulation, x2 upsample first."""

    def __init__(self, cin: int, cout: int, k: int, num_style_feat: int, *, demodulate: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.cout, self.k = cout, k
        self.demodulate, self.upsample = demodulate, upsample
        self.weight = nn.Parameter(normal_tensor(1, cout, cin, k, k, std=1.0 / math.sqrt(cin * k * k)))
        self.modulation = nn.Linear(num_style_feat, cin, bias=True)

    def forward(self, x: Tensor, style: Tensor, *, gain: float = 1.0, bias: Tensor | None = None) -> Tensor:
        """conv(x, modulated weight) * gain + bias, x [B,cin,H,W], style [B,S] -> [B,cout,H',W'].

        For one image, gain and bias are folded into the conv's weight and bias (no extra passes over
        the activations)."""
        b, c = x.shape[:2]
        s = self.modulation(style)  # [B, cin]
        weight = self.weight * s.view(b, 1, c, 1, 1)  # [B, cout, cin, k, k]
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8) if self.demodulate else None  # [B, cout]
        bias_v = None if bias is None else bias.reshape(-1)
        if b == 1:  # one image: the modulated weight itself (as the reference)
            if demod is not None:
                weight = weight * demod.view(1, self.cout, 1, 1, 1)
            if gain != 1.0:
                weight = weight * gain
            if self.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            return F.conv2d(x, weight[0], bias_v, padding=self.k // 2)
        # a batch: modulate the activations instead, so one conv with the shared weight serves every
        # frame (the same maths as the reference's grouped conv, which batches badly on CPU and GPU)
        x = x * s.view(b, c, 1, 1)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        out = F.conv2d(x, self.weight[0], None, padding=self.k // 2)
        if demod is not None or gain != 1.0:
            scale = demod * gain if demod is not None else torch.full((b, self.cout), gain, device=x.device)
            out = out.mul_(scale.view(b, self.cout, 1, 1))
        return out if bias_v is None else out.add_(bias_v.view(1, -1, 1, 1))


class StyleConv(nn.Module):
    """ModConv * sqrt(2) + weight * noise + bias, LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, num_style_feat: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, num_style_feat, upsample=upsample)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None) -> Tensor:
        # reference order: conv * sqrt(2) + weight * noise + bias; here the bias is added by the conv
        out = self.modulated_conv(x, style, gain=2 ** 0.5, bias=self.bias)
        if noise is not None:
            out = out.add_(self.weight * noise)
        return _lrelu_(out)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) + bias, plus the x2-upsampled previous skip."""

    def __init__(self, cin: int, num_style_feat: int, *, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, num_style_feat, demodulate=False)

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.modulated_conv(x, style, bias=self.bias)
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2.0, mode="bilinear", align_corners=False)
            out = out.add_(skip)
        return out


class NormStyleCode(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class ConstantInput(nn.Module):
    def __init__(self, ch: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(normal_tensor(1, ch, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 decoder with spatial feature transform (out * scale + shift after each upsampling conv)."""

    def __init__(self, cfg: AvatarConfig) -> None:
        super().__init__()
        nsf = cfg.num_style_feat
        layers: list[nn.Module] = [NormStyleCode()]
        for _ in range(cfg.num_mlp):
            layers += [nn.Linear(nsf, nsf), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*layers)
        ch = cfg.decoder_ch
        self.log_size = int(math.log2(cfg.unet_out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.constant_input = ConstantInput(ch(4), 4)
        self.style_conv1 = StyleConv(ch(4), ch(4), nsf)
        self.to_rgb1 = ToRGB(ch(4), nsf, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", normal_tensor(1, 1, res, res))
        cin = ch(4)
        for i in range(3, self.log_size + 1):
            cout = ch(2 ** i)
            self.style_convs.append(StyleConv(cin, cout, nsf, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, nsf))
            self.to_rgbs.append(ToRGB(cout, nsf))
            cin = cout

    def noise_shapes(self) -> list[int]:
        """Side of the noise map of each StyleConv, in call order (4, 8, 8, 16, 16, ...)."""
        return [2 ** ((i + 5) // 2) for i in range(self.num_layers)]

    def forward(self, style_code: Tensor, conditions: list[Tensor], noises: list[Tensor | None]) -> Tensor:
        """style_code [B,S], conditions [scale_0, shift_0, ...], noises per StyleConv -> RGB logits [B,3,H,W]."""
        w = self.style_mlp(style_code)  # the same latent for every layer (num_latent copies in the reference)
        out = self.constant_input(w.shape[0])
        out = self.style_conv1(out, w, noises[0])
        skip = self.to_rgb1(out, w)
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.style_convs[2 * k](out, w, noises[2 * k + 1])
            if 2 * k + 1 < len(conditions):
                out = torch.addcmul(conditions[2 * k + 1], out, conditions[2 * k])  # SFT: raw scale, no "+1"
            out = self.style_convs[2 * k + 1](out, w, noises[2 * k + 2])
            skip = to_rgb(out, w, skip)
        return skip


class StyleUNet(nn.Module):
    """Feature image [B,32,S,S] -> RGB [B,3,S,S] in (0,1) (sigmoid; clamping is the caller's)."""

    def __init__(self, cfg: AvatarConfig) -> None:
        super().__init__()
        u = cfg.unet_ch
        size = cfg.unet_in_size
        self.log_size = int(math.log2(size))
        self.in_dim = cfg.unet_in_dim
        self.conv_body_first = nn.Conv2d(cfg.unet_in_dim, u(size), 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(u(2 ** i), u(2 ** (i - 1)), 0.5) for i in range(self.log_size, 2, -1))
        self.final_conv = nn.Conv2d(u(4), u(4), 3, 1, 1)
        self.conv_body_up = nn.ModuleList(
            ResBlock(u(2 ** (i - 1)), u(2 ** i), 2.0) for i in range(3, self.log_size + 1))
        # toRGB exists in the checkpoint but the reference forward never uses it
        self.toRGB = nn.ModuleList(nn.Conv2d(u(2 ** i), 3, 1) for i in range(3, self.log_size + 1))  # noqa: N815
        self.final_linear = nn.Linear(u(4) * 16, cfg.num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(cfg)
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            cu, cd = u(2 ** i), cfg.decoder_ch(2 ** i)
            for lst in (self.condition_scale, self.condition_shift):
                lst.append(nn.Sequential(nn.Conv2d(cu, cu, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(cu, cd, 3, 1, 1)))

    def make_noise(self, batch: int, mode: str, *, generator: torch.Generator | None = None,
                   device: torch.device | None = None) -> list[Tensor | None]:
        """Noise of each StyleConv for ``batch`` frames (see the module docstring for the modes)."""
        dec = self.stylegan_decoder
        if mode == "none":
            return [None] * dec.num_layers
        if mode == "stored":
            return [getattr(dec.noises, f"noise{i}") for i in range(dec.num_layers)]
        if mode != "seeded":
            raise InputError(f"unknown avatar noise mode {mode!r}: choose one of {', '.join(NOISE_MODES)}")
        dev = device if device is not None else dec.constant_input.weight.device
        gen_dev = generator.device if generator is not None else dev
        sides = dec.noise_shapes()
        frames = [[torch.randn(1, 1, s, s, generator=generator, device=gen_dev) for s in sides]
                  for _ in range(batch)]
        return [torch.cat([f[i] for f in frames]).to(dev) for i in range(len(sides))]

    def forward(self, x: Tensor, noises: list[Tensor | None]) -> Tensor:
        feat = _lrelu(self.conv_body_first(channels_last(x)))
        skips: list[Tensor] = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = _lrelu(self.final_conv(feat))
        style_code = self.final_linear(feat.reshape(feat.shape[0], -1))
        conditions: list[Tensor] = []
        for k, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[k])
            conditions.append(self.condition_scale[k](feat))
            conditions.append(self.condition_shift[k](feat))
        return torch.sigmoid(self.stylegan_decoder(style_code, conditions, noises)).contiguous()


__all__ = ["NOISE_MODES", "StyleUNet", "normal_tensor"]
