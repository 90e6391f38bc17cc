"""Photoreal avatar frames: per-avatar Gaussians (cached) + FLAME driving + rasterizer + StyleUNet.

:func:`open_avatar` finds and checks every input (avatar entry, FLAME head, checkpoint, config),
cheapest first, so a bad input fails before any heavy work; :class:`AvatarRenderer` then streams
uint8 frames [S,S,3] for motion blocks, so memory does not depend on the clip's length.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.assets.paths import asset_file
from artalk_core.constants import AVATAR_NOISE_MODES
from artalk_core.errors import AssetError, InputError
from artalk_core.fileio import PathLike, sha256_file, sha256_file_cached
from artalk_core.options import AvatarOptions
from artalk_core.progress import OptionalProgress, report

NOISE_MODES = AVATAR_NOISE_MODES
CUDA_BATCH: int = 8
"""Frames upsampled at once on a GPU (one frame at a time on a CPU: no gain there, more memory)."""


@dataclass
class AvatarSource:
    """The resolved inputs of an avatar render (paths and the validated tracked entry)."""

    entry: Any  # TrackedEntry
    tracked: Path
    checkpoint: Path
    config: Path | None
    flame: Any  # FlameModel


def resolve_entry(avatar: str | PathLike, *, tracked: PathLike | None = None,
                  assets: PathLike | None = None) -> tuple[Any, Path]:
    """(tracked entry, file it came from): ``avatar`` is a key of ``tracked`` (default
    ``<assets>/GAGAvatar/tracked.pt``; closest names on a typo) or the path of a single-entry file."""
    from artalk_core.render.avatar.tracked import load_tracked, select_avatar

    name = str(avatar)
    as_path = Path(name)
    looks_like_file = as_path.suffix.lower() in (".pt", ".pth") or len(as_path.parts) > 1
    if tracked is None and looks_like_file and not as_path.is_file():
        raise InputError(f"tracked avatar file not found: {as_path} (--avatar takes a name in tracked.pt or the "
                         f"path of a tracked entry file)")
    if tracked is None and as_path.is_file() and looks_like_file:
        entries = load_tracked(as_path)
        if len(entries) != 1:
            raise InputError(f"{as_path} holds {len(entries)} avatars ({', '.join(list(entries)[:5])}); "
                             f"pass it with --tracked and choose one with --avatar NAME")
        return next(iter(entries.values())), as_path
    path = asset_file("--tracked", tracked, assets)
    return select_avatar(load_tracked(path), name, source=str(path)), path


def resolve_source(options: AvatarOptions, *, flame: PathLike | None = None,
                   assets: PathLike | None = None) -> AvatarSource:
    """Find and check every input of an avatar render (``options``, the FLAME head ``flame``, the
    asset folder), cheapest first; AssetError / InputError."""
    from artalk_core.flame import resolve_flame
    from artalk_core.render.avatar.driving import check_flame

    entry, tracked_path = resolve_entry(options.avatar, tracked=options.tracked, assets=assets)
    head = resolve_flame(flame, assets, allow_standin=True)
    check_flame(head)
    ckpt = asset_file("--avatar-checkpoint", options.avatar_checkpoint, assets)
    cfg = Path(options.avatar_config) if options.avatar_config is not None else None
    if cfg is not None and not cfg.is_file():
        raise AssetError(f"avatar config not found: {cfg} (given with --avatar-config)")
    return AvatarSource(entry=entry, tracked=tracked_path, checkpoint=ckpt, config=cfg, flame=head)


@dataclass
class AvatarRenderer:
    """Renders motion rows [T,106] of one avatar to uint8 frames [S,S,3] (S = the render size).

    ``noise``: the upsampler's per-frame noise, ``seeded`` (from ``seed``; the reference draws
    unseeded noise), ``stored`` (the checkpoint's buffers) or ``none``. ``backend``: the rasterizer
    backend (see :mod:`artalk_core.render.avatar.rasterize`). ``batch``: frames upsampled at once.
    ``precision``: the upsampler's, fp32 (exact), bf16 or fp16 (see :mod:`.precision`).
    ``overlap``: with ``batch`` 1, frame t+1 is rasterized on a second thread while the upsampler
    runs frame t (one frame ahead: memory does not grow with the clip; the frames are the same).
    """

    net: Any
    gaussians: Any
    driver: Any
    noise: str = "seeded"
    seed: int = 0
    backend: str = "auto"
    watermark: Any = None  # logo tensor [4,h,w] or None
    batch: int = 1
    precision: str = "fp32"
    overlap: bool = True
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from artalk_core.render.avatar.precision import upsampler_dtype
        from artalk_core.render.avatar.rasterize import choose_backend

        if self.noise not in NOISE_MODES:
            raise InputError(f"unknown avatar noise '{self.noise}': choose one of {', '.join(NOISE_MODES)}")
        upsampler_dtype(self.precision)  # a resolved precision (not auto)
        self.backend_used = choose_backend(self.backend, self.gaussians.device)
        self.meta = {**self.meta, "rasterizer": self.backend_used, "avatar_noise": self.noise,
                     "seed": str(self.seed), "upsampler_precision": self.precision}

    @property
    def size(self) -> int:
        return int(self.net.config.render_size[0])

    def frames(self, blocks: Iterable[Any], *, total: int | None = None, progress: OptionalProgress = None,
               carry_smoothing: bool = False) -> Iterator[np.ndarray]:
        """uint8 frames [S,S,3] for motion blocks ([B,106] arrays or tensors, in order) of one clip.

        The noise generator starts afresh for every call (every clip), and so does the forehead
        smoothing unless ``carry_smoothing`` (the reference's behaviour: its state runs on across clips).
        """
        import torch

        if not carry_smoothing:
            self.driver.reset()
        gen = torch.Generator().manual_seed(int(self.seed)) if self.noise == "seeded" else None
        done = 0
        for frame in self._stream(self._inputs(blocks), gen):
            done += 1
            report(progress, "avatar", done, total or 0)
            yield frame

    def _inputs(self, blocks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """(FLAME points [5023,3], camera [R|T] [3,4]) of each frame, in order."""
        for block in blocks:
            points, transforms = self.driver(block)
            for b in range(points.shape[0]):
                yield points[b], transforms[b]

    def _stream(self, inputs: Iterator[tuple[Any, Any]], gen: Any) -> Iterator[np.ndarray]:
        if self.batch > 1 or not self.overlap:
            pending: list[tuple[Any, Any]] = []
            for item in inputs:
                pending.append(item)
                if len(pending) >= self.batch:
                    yield from self._finish(self._features(pending), gen)
                    pending = []
            if pending:
                yield from self._finish(self._features(pending), gen)
            return
        # Two stages: the rasterizer (numba, GIL released) on a worker thread one frame ahead, the
        # upsampler (torch) here. The upsampler's many small layers leave cores idle that the
        # rasterizer fills (docs/avatar_performance.md); at most one frame waits, so memory stays flat.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="artalk-rasterizer") as pool:
            first = next(inputs, None)
            ahead = None if first is None else pool.submit(self._features, [first])
            while ahead is not None:
                features = ahead.result()
                following = next(inputs, None)
                ahead = None if following is None else pool.submit(self._features, [following])
                yield from self._finish(features, gen)

    def _features(self, frames: list[tuple[Any, Any]]) -> Any:
        """32-channel feature images [B,C,S,S] of frames given as (FLAME points, camera [R|T])."""
        import torch

        from artalk_core.render.avatar.camera import build_camera
        from artalk_core.render.avatar.rasterize import render_features, render_features_batch

        cfg = self.net.config
        dev = self.gaussians.device
        cams = [build_camera(t.to(dev), size=self.size, focal=cfg.render_focal) for _, t in frames]
        if len(frames) == 1:
            image, _ = render_features(self.gaussians.with_global_xyz(frames[0][0]), cams[0],
                                       backend=self.backend_used, bg=cfg.render_bg)
            return image.unsqueeze(0)
        xyz = torch.stack([self.gaussians.with_global_xyz(p).xyz for p, _ in frames])
        images, _ = render_features_batch(self.gaussians, xyz, cams, backend=self.backend_used, bg=cfg.render_bg)
        return images

    def _finish(self, features: Any, gen: Any) -> Iterator[np.ndarray]:
        """uint8 frames [S,S,3] of feature images [B,C,S,S]."""
        import torch

        rgb = self.net.upsample(features, noise=self.noise, generator=gen, precision=self.precision)
        rgb = rgb.clamp(0.0, 1.0)
        if self.watermark is not None:
            from artalk_core.render.avatar.watermark import apply_watermark

            rgb = apply_watermark(rgb, self.watermark)
        frames_u8 = torch.round(rgb * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        yield from frames_u8

    def render(self, motion: Any) -> np.ndarray:
        """All frames [T,S,S,3] uint8 of motion [T,106] (small clips and tests; streams otherwise)."""
        return np.stack(list(self.frames([motion])))


@functools.lru_cache(maxsize=1)
def _cached_net(checkpoint: str, mtime_ns: int, config: Any, device: str) -> Any:
    """The network, loaded once per process (a batch worker, the app, the API render many clips
    with it); keyed by the file's path and mtime, the sizes and the device."""
    from artalk_core.render.avatar.model import load_avatar_net

    return load_avatar_net(checkpoint, config=config, device=device)


def open_avatar(options: AvatarOptions, *, flame: PathLike | None = None, assets: PathLike | None = None,
                device: str = "auto", precision: str = "fp32", backend: str = "auto",
                cache_dir: PathLike | None = None, source: AvatarSource | None = None,
                progress: OptionalProgress = None) -> AvatarRenderer:
    """Everything an avatar render of ``options`` needs, checked and loaded: net (from the
    checkpoint), the avatar's Gaussians (from the on-disk cache or built once), the FLAME driver (the
    head ``flame``, else the asset folder's), the watermark. ``precision`` (fp32 | bf16 | fp16 |
    auto): the upsampler's (``auto`` measured once per machine).

    Raises AssetError (missing file, stand-in head, bad checkpoint), InputError (unknown avatar,
    bad entry, bad option) before any per-frame work.
    """
    import torch

    from artalk_core.device import resolve_device
    from artalk_core.model.precision import check_precision
    from artalk_core.render.avatar.cache import cached_gaussians
    from artalk_core.render.avatar.config import AvatarConfig
    from artalk_core.render.avatar.driving import Driver, ForeheadSmoother
    from artalk_core.render.avatar.precision import resolve_upsampler_precision

    check_precision(precision)
    src = source or resolve_source(options, flame=flame, assets=assets)
    watermark = options.watermark
    logo = None
    if watermark is not None:
        from artalk_core.render.avatar.watermark import load_watermark

        logo = load_watermark(watermark)
    config = AvatarConfig.from_json(src.config) if src.config is not None else AvatarConfig.released()
    if logo is not None and min(config.render_size) < max(logo.shape[1:]):
        raise InputError(f"the watermark (256x82) does not fit the {config.render_size[1]}x{config.render_size[0]} "
                         f"avatar frames")
    dev = resolve_device(device)
    report(progress, "avatar setup", 0, 3)
    net = _cached_net(str(Path(src.checkpoint).resolve()), Path(src.checkpoint).stat().st_mtime_ns, config, str(dev))
    report(progress, "avatar setup", 1, 3)
    ckpt_sha = sha256_file_cached(src.checkpoint)
    report(progress, "avatar setup", 2, 3)
    entry = src.entry
    gaussians = cached_gaussians(net, image=torch.from_numpy(entry.image),
                                 transform_matrix=torch.from_numpy(entry.transform_matrix),
                                 checkpoint_sha256=ckpt_sha, entry_sha256=entry.sha256, cache_dir=cache_dir)
    report(progress, "avatar setup", 3, 3)
    resolved = resolve_upsampler_precision(precision, net)  # auto: measured on first use, then cached
    smoother = ForeheadSmoother(momentum=float(config.forehead_ema[0]))
    driver = Driver(src.flame, shapecode=entry.shapecode, transform_matrix=entry.transform_matrix,
                    device=dev, smoother=smoother, scale=float(config.flame_scale))
    meta = {"avatar": entry.name, "avatar_sha256": entry.sha256, "avatar_checkpoint_sha256": ckpt_sha,
            "flame_sha256": src.flame.sha256}
    if watermark is not None:

        meta["watermark_sha256"] = sha256_file(watermark)
    return AvatarRenderer(net=net, gaussians=gaussians, driver=driver, noise=options.avatar_noise, seed=options.seed,
                          backend=backend, watermark=logo, batch=CUDA_BATCH if dev.type == "cuda" else 1,
                          precision=resolved, meta=meta)
