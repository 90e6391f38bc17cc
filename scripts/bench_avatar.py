#!/usr/bin/env python
"""Photoreal avatar (GAGAvatar) speed: the full-size network on random seeded weights at 512 px.

Rows: avatar setup (DINOv2 + DPT head + Gaussian generators, once per avatar; cached on disk in real
use), the rasterizer alone on the avatar's 180,255 Gaussians per backend, the StyleUNet upsampler,
and the whole per-frame step (FLAME, rasterizer, upsampler, uint8), frames batched on CUDA.

    python scripts/bench_avatar.py                 # CPU: torch and numba rasterizers
    python scripts/bench_avatar.py --device cuda   # also batched frames
    python scripts/bench_avatar.py --quick         # the tiny_gaga sizes (smoke test)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
GAGA = ROOT / "tests" / "fixtures" / "tiny_gaga"


CPU_SECONDS: dict[int, float] = {}
"""CPU seconds (all threads of this process) of the fastest run of each timed() call, by call id: on
a shared machine the wall time depends on the other processes, the CPU time much less."""


def timed(fn: Callable[[], Any], device: torch.device, repeat: int = 1) -> tuple[float, Any]:
    """Fastest of ``repeat`` runs (wall seconds) and the last result; its CPU time in CPU_SECONDS."""
    best, out, cpu = float("inf"), None, 0.0
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    CPU_SECONDS[len(CPU_SECONDS)] = cpu
    return best, out


def last_cpu() -> float:
    return CPU_SECONDS[len(CPU_SECONDS) - 1]


def synthetic_entry(size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth bright ellipse 'face' on black [3,S,S] and a frontal tracked camera [3,4] at 9.6."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    face = (1 - (xx / 0.55) ** 2 - (yy / 0.75) ** 2).clamp(0, 1).sqrt()
    image = torch.stack([0.9 * face, 0.7 * face, 0.6 * face])
    tm = torch.tensor([[-1.0, 0, 0, 0.01], [0, 1, 0, -0.03], [0, 0, -1, 9.6]])
    return image, tm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--frames", type=int, default=3, help="frames timed per row (default 3)")
    ap.add_argument("--batch", type=int, default=8, help="frames per upsampler call on CUDA (default 8)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="tiny_gaga sizes (128 px): a smoke test")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as the reference (set_float32_matmul_precision high)
        torch.backends.cudnn.allow_tf32 = True

    from artalk_core.flame import load_flame
    from artalk_core.render.avatar import rasterize as R
    from artalk_core.render.avatar.camera import build_camera
    from artalk_core.render.avatar.config import AvatarConfig
    from artalk_core.render.avatar.driving import Driver
    from artalk_core.render.avatar.model import build_avatar_net
    from artalk_core.render.avatar.renderer import AvatarRenderer

    config = AvatarConfig.from_json(GAGA / "model_config.json") if args.quick else AvatarConfig.released()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    net = build_avatar_net(config, device=dev)
    build_s = time.perf_counter() - t0
    image, tm = synthetic_entry()
    with torch.inference_mode():
        timed(lambda: net.build_gaussians(image, tm), dev)  # warm-up
    setup_s, gaussians = timed(lambda: net.build_gaussians(image, tm), dev)
    setup_cpu = last_cpu()
    gaussians = gaussians.to(dev)
    # FLAME: a synthetic 5023-vertex head (the real one is licence-gated; the cost is the same)
    flame = load_flame(GAGA / "flame_synthetic_5023.pt")
    driver = Driver(flame, shapecode=torch.zeros(300), transform_matrix=tm, device=dev)
    motion = torch.zeros(max(args.frames, args.batch), 106)
    motion[:, 103] = torch.linspace(0, 0.2, motion.shape[0])
    motion[:, 100:103] = torch.linspace(-0.1, 0.1, motion.shape[0]).unsqueeze(1) * torch.tensor([0.3, 1.0, 0.1])
    points, transforms = driver(motion[:1])
    frame_g = gaussians.with_global_xyz(points[0])
    size = int(config.render_size[0])
    cam = build_camera(transforms[0].to(dev), size=size, focal=config.render_focal)

    rows: list[dict[str, Any]] = []
    backends = ["torch"] + (["numba"] if dev.type == "cpu" and R.numba_available() else [])
    if dev.type == "cuda" and R.cuda_module_available():
        backends.append("cuda")
    raster: dict[str, float] = {}
    for be in backends:
        R.render_features(frame_g, cam, backend=be)  # warm-up (numba compiles once, cached on disk)
        raster[be], _ = timed(functools.partial(R.render_features, frame_g, cam, backend=be), dev,
                              repeat=args.frames)
        rows.append({"step": f"rasterizer ({be}), {len(gaussians):,} Gaussians, {size} px", "seconds": raster[be],
                     "cpu_seconds": last_cpu()})
    feats, _ = R.render_features(frame_g, cam, backend=backends[-1])
    gen = torch.Generator().manual_seed(0)
    net.upsample(feats[None], noise="seeded", generator=gen)
    up_s, _ = timed(lambda: net.upsample(feats[None], noise="seeded", generator=gen), dev, repeat=args.frames)
    rows.append({"step": f"StyleUNet upsampler, 1 frame, {size} px", "seconds": up_s, "cpu_seconds": last_cpu()})

    best = min(raster, key=lambda k: raster[k])
    batch = args.batch if dev.type == "cuda" else 1
    rend = AvatarRenderer(net=net, gaussians=gaussians, driver=driver, noise="seeded", seed=0, backend=best,
                          batch=batch)
    n = max(args.frames, batch)
    list(rend.frames([motion[:batch]]))  # warm-up
    total_s, frames = timed(lambda: list(rend.frames([motion[:n]])), dev)
    assert len(frames) == n and frames[0].dtype == np.uint8
    rows.append({"step": f"whole frame (FLAME + {best} rasterizer + upsampler + uint8), batch {batch}",
                 "seconds": total_s / n, "cpu_seconds": last_cpu() / n})

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{cpu or 'CPU'}, {os.cpu_count()} CPUs"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Photoreal avatar benchmark ({'tiny_gaga sizes' if args.quick else 'released sizes'}, random weights "
          f"built in {build_s:.1f} s): {where}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"load average {load:.1f}.")
    print()
    print("| step | wall time | CPU time (all threads) |")
    print("| --- | --- | --- |")

    def fmt(x: float) -> str:
        return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"

    print(f"| avatar setup (once per avatar, then cached) | {fmt(setup_s)} | {fmt(setup_cpu)} |")
    for r in rows:
        print(f"| {r['step']} | {fmt(r['seconds'])} | {fmt(r['cpu_seconds'])} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": args.device, "where": where, "setup_s": setup_s, "setup_cpu_s": setup_cpu,
                                         "rows": rows,
                                         "threads": torch.get_num_threads(), "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
