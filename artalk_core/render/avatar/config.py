"""Sizes of the GAGAvatar network: the released defaults, or a JSON file such as the parity fixture's.

``AvatarConfig.from_json(path)`` reads the sectioned format of ``tiny_gaga/model_config.json`` as it
is (``DINO``, ``DPT_HEAD``, ``GAUSSIANS``, ``SOURCE``, ``RENDER``, ``STYLE_UNET``, ``FLAME``); a
missing section or field keeps the released value, descriptive fields (``arch``, ``tokens``...) are
ignored, and fields that are derived from others (``linear_gs_in_dim``, ``feature_sizes``...) are
checked against them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artalk_core.constants import AVATAR_MAX_REPEATS, AVATAR_MAX_SIZE
from artalk_core.errors import ConfigError
from artalk_core.model.config import read_config_file

RELEASED_UNET_CHANNELS: tuple[tuple[int, int], ...] = (
    (4, 256), (8, 256), (16, 256), (32, 256), (64, 128), (128, 64), (256, 32), (512, 16), (1024, 8))
RELEASED_DECODER_CHANNELS: tuple[tuple[int, int], ...] = (
    (4, 512), (8, 512), (16, 512), (32, 512), (64, 256), (128, 128), (256, 64), (512, 32), (1024, 16))


@dataclass(frozen=True)
class AvatarConfig:
    """Every size of the GAGAvatar network (defaults: the released ``GAGAvatar.pt``)."""

    # DINOv2 ViT (no registers, LayerScale, qkv bias)
    dino_img_size: int = 518
    dino_patch_size: int = 14
    dino_embed_dim: int = 768
    dino_depth: int = 12
    dino_heads: int = 12
    dino_mlp_ratio: int = 4
    dino_ln_eps: float = 1e-6
    dino_blocks: tuple[int, ...] = (8, 9, 10, 11)
    # DPT-style head
    dpt_out_dims: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dpt_hidden: int = 256
    feature_dim: int = 256
    """Channels of f_feature0 (the head's output_dim), the ConvGS generators' input."""
    # Gaussian generators
    n_global: int = 5023
    head_base_dim: int = 256
    linear_hidden: int = 256
    linear_head_hidden: int = 128
    conv_hidden: int = 128
    n_harmonic: int = 4
    plane_size: int = 296
    color_channels: int = 32
    # source image
    source_image_size: int = 512
    f_image_size: int = 518
    imagenet_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    imagenet_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    plane_focal: float = 12.0
    # rendering of the 32-channel feature image (A2's camera and rasterizer)
    render_size: tuple[int, int] = (512, 512)
    render_focal: float = 12.0
    render_znear: float = 0.01
    render_zfar: float = 100.0
    render_bg: float = 0.0
    # StyleUNet upsampler
    unet_in_size: int = 512
    unet_out_size: int = 512
    unet_in_dim: int = 32
    unet_out_dim: int = 3
    num_style_feat: int = 512
    num_mlp: int = 8
    unet_channels: tuple[tuple[int, int], ...] = RELEASED_UNET_CHANNELS
    decoder_channels: tuple[tuple[int, int], ...] = RELEASED_DECODER_CHANNELS
    # FLAME driving (A2)
    flame_scale: float = 5.0
    forehead_ema: tuple[float, float] = (0.98, 0.02)

    def __post_init__(self) -> None:
        _validate(self)

    # derived sizes ------------------------------------------------------------------------
    @property
    def n_patches_side(self) -> int:
        """Patches per side of the ViT grid (37 released)."""
        return self.dino_img_size // self.dino_patch_size

    @property
    def dir_dim(self) -> int:
        """Length of the harmonic direction encoding: 3 * (2 * n_harmonic + 1) = 27."""
        return 3 * (2 * self.n_harmonic + 1)

    @property
    def linear_in_dim(self) -> int:
        """LinearGSGenerator input: head_base channels + the global DINO token (1024 released)."""
        return self.head_base_dim + self.dino_embed_dim

    @property
    def n_plane(self) -> int:
        """Gaussians per plane sheet (87,616 released)."""
        return self.plane_size * self.plane_size

    @property
    def n_gaussians(self) -> int:
        """All Gaussians: global + two plane sheets (180,255 released)."""
        return self.n_global + 2 * self.n_plane

    def unet_ch(self, res: int) -> int:
        """U-Net channels at resolution ``res``."""
        return dict(self.unet_channels)[res]

    def decoder_ch(self, res: int) -> int:
        """StyleGAN decoder channels at resolution ``res``."""
        return dict(self.decoder_channels)[res]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (a stable identity of the sizes, e.g. for cache keys)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def released(cls) -> AvatarConfig:
        """The sizes of the released ``GAGAvatar.pt``."""
        return cls()

    @classmethod
    def from_dict(cls, d: Any) -> AvatarConfig:
        """Parse the sectioned format (see the module docstring); ConfigError names the bad field."""
        if not isinstance(d, dict):
            raise ConfigError(f"avatar config must be a JSON object, got {type(d).__name__}")
        kw: dict[str, Any] = {}
        r = _Reader(d)
        r.integer("DINO", "img_size", kw, "dino_img_size")
        r.integer("DINO", "patch_size", kw, "dino_patch_size")
        r.integer("DINO", "embed_dim", kw, "dino_embed_dim")
        r.integer("DINO", "depth", kw, "dino_depth")
        r.integer("DINO", "num_heads", kw, "dino_heads")
        r.integer("DINO", "mlp_ratio", kw, "dino_mlp_ratio")
        r.number("DINO", "layer_norm_eps", kw, "dino_ln_eps")
        r.integers("DINO", "intermediate_blocks", kw, "dino_blocks", length=4, allow_zero=True)
        r.integers("DPT_HEAD", "out_dims", kw, "dpt_out_dims", length=4)
        r.integer("DPT_HEAD", "hidden_dims", kw, "dpt_hidden")
        r.integer("DPT_HEAD", "output_dim", kw, "feature_dim")
        hb = r.integers("GAUSSIANS", "head_base", None, None, length=2)
        if hb is not None:
            kw["n_global"], kw["head_base_dim"] = hb
        r.integer("GAUSSIANS", "n_global", kw, "n_global")
        r.integer("GAUSSIANS", "linear_gs_hidden", kw, "linear_hidden")
        r.integer("GAUSSIANS", "linear_gs_head_hidden", kw, "linear_head_hidden")
        r.integer("GAUSSIANS", "conv_gs_hidden", kw, "conv_hidden")
        r.integer("GAUSSIANS", "n_harmonic", kw, "n_harmonic")
        r.integer("GAUSSIANS", "plane_size", kw, "plane_size")
        r.integer("GAUSSIANS", "feature_channels", kw, "color_channels")
        img = r.integers("SOURCE", "tracked_image", None, None, length=3)
        if img is not None:
            if img[0] != 3 or img[1] != img[2]:
                raise ConfigError(f"avatar config: 'SOURCE.tracked_image' must be [3, S, S], got {img}")
            kw["source_image_size"] = img[1]
        r.integer("SOURCE", "f_image_size", kw, "f_image_size")
        r.numbers("SOURCE", "imagenet_mean", kw, "imagenet_mean", length=3)
        r.numbers("SOURCE", "imagenet_std", kw, "imagenet_std", length=3)
        r.number("SOURCE", "plane_focal", kw, "plane_focal")
        r.integers("RENDER", "size", kw, "render_size", length=2)
        r.number("RENDER", "focal", kw, "render_focal")
        r.number("RENDER", "znear", kw, "render_znear")
        r.number("RENDER", "zfar", kw, "render_zfar")
        r.number("RENDER", "bg", kw, "render_bg", allow_zero=True)
        r.integer("STYLE_UNET", "in_size", kw, "unet_in_size")
        r.integer("STYLE_UNET", "out_size", kw, "unet_out_size")
        r.integer("STYLE_UNET", "in_dim", kw, "unet_in_dim")
        r.integer("STYLE_UNET", "out_dim", kw, "unet_out_dim")
        r.integer("STYLE_UNET", "num_style_feat", kw, "num_style_feat")
        r.integer("STYLE_UNET", "num_mlp", kw, "num_mlp")
        r.channels("STYLE_UNET", "unet_channels", kw, "unet_channels")
        r.channels("STYLE_UNET", "decoder_channels", kw, "decoder_channels")
        r.number("FLAME", "scale", kw, "flame_scale")
        r.numbers("FLAME", "forehead_ema", kw, "forehead_ema", length=2)
        cfg = cls(**kw)
        _check_derived(d, cfg)
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> AvatarConfig:
        """Read an avatar config JSON file (ConfigError if unreadable, not JSON, or invalid)."""
        return read_config_file(path, "avatar config", cls.from_dict)


class _Reader:
    """Typed access to ``d[SECTION][key]``; a missing section or key leaves the default."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    def _get(self, section: str, key: str) -> Any:
        sec = self.d.get(section)
        if sec is None:
            return None
        if not isinstance(sec, dict):
            raise ConfigError(f"avatar config: '{section}' must be an object, got {type(sec).__name__}")
        return sec.get(key)

    @staticmethod
    def _is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    @staticmethod
    def _is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def integer(self, section: str, key: str, kw: dict[str, Any], name: str) -> None:
        v = self._get(section, key)
        if v is None:
            return
        if not self._is_int(v) or v <= 0:
            raise ConfigError(f"avatar config: '{section}.{key}' must be a positive integer, got {v!r}")
        kw[name] = v

    def number(self, section: str, key: str, kw: dict[str, Any], name: str, *, allow_zero: bool = False) -> None:
        v = self._get(section, key)
        if v is None:
            return
        if not self._is_num(v) or v < 0 or (v == 0 and not allow_zero):
            what = "a non-negative number" if allow_zero else "a positive number"
            raise ConfigError(f"avatar config: '{section}.{key}' must be {what}, got {v!r}")
        kw[name] = float(v)

    def integers(self, section: str, key: str, kw: dict[str, Any] | None, name: str | None, *, length: int,
             allow_zero: bool = False) -> tuple[int, ...] | None:
        v = self._get(section, key)
        if v is None:
            return None
        lo = 0 if allow_zero else 1
        if (not isinstance(v, list) or len(v) != length
                or any(not self._is_int(x) or x < lo for x in v)):
            what = "non-negative" if allow_zero else "positive"
            raise ConfigError(f"avatar config: '{section}.{key}' must be a list of {length} {what} integers, "
                              f"got {v!r}")
        out = tuple(v)
        if kw is not None and name is not None:
            kw[name] = out
        return out

    def numbers(self, section: str, key: str, kw: dict[str, Any], name: str, *, length: int) -> None:
        v = self._get(section, key)
        if v is None:
            return
        if not isinstance(v, list) or len(v) != length or any(not self._is_num(x) for x in v):
            raise ConfigError(f"avatar config: '{section}.{key}' must be a list of {length} numbers, got {v!r}")
        kw[name] = tuple(float(x) for x in v)

    def channels(self, section: str, key: str, kw: dict[str, Any], name: str) -> None:
        v = self._get(section, key)
        if v is None:
            return
        try:
            if not isinstance(v, dict) or not v:
                raise ValueError
            pairs = sorted((int(k), c) for k, c in v.items())
        except ValueError:
            raise ConfigError(f"avatar config: '{section}.{key}' must map resolutions (\"4\", \"8\", ...) to "
                              f"channel counts, got {v!r}") from None
        if any(not self._is_int(c) or c <= 0 for _, c in pairs):
            raise ConfigError(f"avatar config: '{section}.{key}' channel counts must be positive integers")
        kw[name] = tuple(pairs)


_REPEATS = ("dino_depth", "dino_mlp_ratio", "num_mlp", "n_harmonic")
"""Fields that repeat modules (bounded by AVATAR_MAX_REPEATS; every other integer by AVATAR_MAX_SIZE)."""


def _check_bounds(c: AvatarConfig) -> None:
    """Every integer within the limits, before anything is built from the sizes."""
    def ints(value: Any) -> list[int]:
        if isinstance(value, (tuple, list)):
            return [i for v in value for i in ints(v)]
        return [value] if isinstance(value, int) and not isinstance(value, bool) else []

    for f in dataclasses.fields(c):
        limit = AVATAR_MAX_REPEATS if f.name in _REPEATS else AVATAR_MAX_SIZE
        big = [v for v in ints(getattr(c, f.name)) if v > limit]
        if big:
            raise ConfigError(f"avatar config: {f.name} {big[0]} is larger than an avatar network can be "
                              f"(at most {limit}; the released network has {getattr(AvatarConfig, f.name)!r})")


def _validate(c: AvatarConfig) -> None:
    """Sizes that cannot build a working network (ConfigError names the fields)."""
    _check_bounds(c)
    if c.dino_img_size % c.dino_patch_size:
        raise ConfigError(f"avatar config: DINO.img_size ({c.dino_img_size}) must be a multiple of "
                          f"DINO.patch_size ({c.dino_patch_size})")
    if c.dino_embed_dim % c.dino_heads:
        raise ConfigError(f"avatar config: DINO.embed_dim ({c.dino_embed_dim}) must be divisible by "
                          f"DINO.num_heads ({c.dino_heads})")
    if len(c.dino_blocks) != 4 or any(not 0 <= b < c.dino_depth for b in c.dino_blocks):
        raise ConfigError(f"avatar config: DINO.intermediate_blocks must be 4 block indices below depth "
                          f"{c.dino_depth}, got {list(c.dino_blocks)}")
    if c.f_image_size != c.dino_img_size:
        # the stored pos_embed is used as is only at the ViT's own size (no interpolation path)
        raise ConfigError(f"avatar config: SOURCE.f_image_size ({c.f_image_size}) must equal DINO.img_size "
                          f"({c.dino_img_size})")
    if c.plane_size != 8 * c.n_patches_side:
        raise ConfigError(f"avatar config: GAUSSIANS.plane_size must be 8 x the ViT patch grid "
                          f"({8 * c.n_patches_side}), got {c.plane_size}")
    if c.color_channels != c.unet_in_dim:
        raise ConfigError(f"avatar config: GAUSSIANS.feature_channels ({c.color_channels}) must equal "
                          f"STYLE_UNET.in_dim ({c.unet_in_dim})")
    for what, size in (("in_size", c.unet_in_size), ("out_size", c.unet_out_size)):
        if size < 8 or size & (size - 1):
            raise ConfigError(f"avatar config: STYLE_UNET.{what} must be a power of two >= 8, got {size}")
    if c.unet_in_size != c.unet_out_size:
        raise ConfigError("avatar config: STYLE_UNET.in_size and out_size must be equal (as released)")
    if tuple(c.render_size) != (c.unet_in_size, c.unet_in_size):
        raise ConfigError(f"avatar config: RENDER.size {list(c.render_size)} must be the upsampler's input "
                          f"size [{c.unet_in_size}, {c.unet_in_size}]")
    log_size = int(math.log2(c.unet_out_size))
    need = {2 ** i for i in range(2, log_size + 1)}
    for what, table in (("unet_channels", c.unet_channels), ("decoder_channels", c.decoder_channels)):
        missing = sorted(need - {r for r, _ in table})
        if missing:
            raise ConfigError(f"avatar config: STYLE_UNET.{what} lacks resolutions {missing}")
    if not c.render_znear < c.render_zfar:
        raise ConfigError("avatar config: RENDER.znear must be below RENDER.zfar")


def _check_derived(d: dict[str, Any], c: AvatarConfig) -> None:
    """Fields of the file that restate derived sizes must agree with them."""
    p = c.n_patches_side
    derived: dict[tuple[str, str], Any] = {
        ("DINO", "n_patches_side"): p,
        ("DINO", "tokens"): p * p + 1,
        ("DINO", "mlp_hidden"): c.dino_embed_dim * c.dino_mlp_ratio,
        ("DINO", "num_register_tokens"): 0,
        ("DPT_HEAD", "feature_sizes"): [4 * p, 2 * p, p, (p + 1) // 2],
        ("DPT_HEAD", "f_feature0_size"): 8 * p,
        ("GAUSSIANS", "linear_gs_in_dim"): c.linear_in_dim,
        ("GAUSSIANS", "conv_gs_in_dim"): c.feature_dim,
        ("GAUSSIANS", "dir_encoding_dim"): c.dir_dim,
        ("GAUSSIANS", "n_l0"): c.n_plane,
        ("GAUSSIANS", "n_l1"): c.n_plane,
        ("GAUSSIANS", "n_total"): c.n_gaussians,
        ("RENDER", "channels"): c.color_channels,
        ("STYLE_UNET", "n_noise_buffers"): 2 * (int(math.log2(c.unet_out_size)) - 2) + 1,
    }
    for (section, key), want in derived.items():
        sec = d.get(section)
        if isinstance(sec, dict) and key in sec and sec[key] != want:
            raise ConfigError(f"avatar config: '{section}.{key}' is {sec[key]!r} but the other sizes give {want!r}")


__all__ = ["AvatarConfig"]
