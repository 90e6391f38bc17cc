#!/usr/bin/env python
"""Photoreal avatar (GAGAvatar) speed: the full-size network on random seeded weights at 512 px.

Rows: the avatar setup (DINOv2 + DPT head + Gaussian generators, once per avatar, then cached on
disk) and the first frame after it, the rasterizer alone on the avatar's 180,255 Gaussians per
backend, the StyleUNet upsampler per precision, and the whole per-frame step (FLAME, rasterizer,
upsampler, uint8) as `render --avatar` runs it: sequential, pipelined (the rasterizer one frame
ahead on a second thread), in bf16, and with ``--precision auto``; on CUDA the batched torch
rasterizer and the reference's ``diff_gaussian_rasterization_32d`` (when installed) side by side.

Every row also gives r = seconds x G / 137 GFLOP, G the machine's fp32 GEMM rate (2048 x 2048,
2 threads) measured in the same run right before each repetition (the median of the
per-repetition ratios): r = 1 means the row costs what the upsampler's arithmetic alone costs at
the machine's fp32 matrix rate, which makes machines (and loads) comparable. Rows of one kind
(the upsamplers, the whole frames) are timed in interleaved rounds, so a passing load on a shared
machine falls on all of them alike.

    python scripts/bench_avatar.py                 # CPU, < 3 minutes on 2 cores
    python scripts/bench_avatar.py --json out.json
    python scripts/bench_avatar.py --device cuda   # also batched frames, both CUDA rasterizers
    python scripts/bench_avatar.py --quick         # the tiny_gaga sizes (smoke test)
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
GAGA = ROOT / "tests" / "fixtures" / "tiny_gaga"
UPSAMPLER_GFLOP = 137.0
"""The StyleUNet's work per 512 px frame (torch.utils.flop_counter: 136.9 GFLOP of convolutions)."""
GEMM_SIZE, GEMM_THREADS = 2048, 2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(device: torch.device, runs: int = 3) -> float:
    """GFLOP/s of a float32 2048 x 2048 matrix product (2 threads on a CPU), the fastest of ``runs``."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(GEMM_THREADS)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.rand(GEMM_SIZE, GEMM_SIZE, generator=gen).to(device)
        b = torch.rand(GEMM_SIZE, GEMM_SIZE, generator=gen).to(device)
        a @ b
        best = math.inf
        for _ in range(runs):
            sync(device)
            t0 = time.perf_counter()
            a @ b
            sync(device)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return 2 * GEMM_SIZE ** 3 / best / 1e9


def timed(named: list[tuple[str, Callable[[], Any]]], device: torch.device, *, repeat: int,
          per: int = 1) -> list[dict[str, Any]]:
    """Rows of ``named`` (name, fn) functions (warmed up by the caller), timed in ``repeat`` rounds,
    each round running every function once after its own GEMM measurement (interleaved: a load
    that comes and goes falls on every row alike). Seconds and CPU seconds per unit (``per``
    units a run) and r as medians."""
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in named}
    for _ in range(repeat):
        for name, fn in named:
            g = gemm_rate(device)
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            samples[name].append(((time.perf_counter() - t0) / per, (time.process_time() - c0) / per, g))
    rows = []
    for name, got in samples.items():
        walls = [w for w, _, _ in got]
        rows.append({"step": name, "seconds": statistics.median(walls), "seconds_min": min(walls),
                     "cpu_seconds": statistics.median(c for _, c, _ in got),
                     "gemm_gflops": statistics.median(g for _, _, g in got),
                     "ratio": statistics.median(w * g / UPSAMPLER_GFLOP for w, _, g in got)})
    return rows


def synthetic_entry(size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth bright ellipse 'face' on black [3,S,S] and a frontal tracked camera [3,4] at 9.6."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    face = (1 - (xx / 0.55) ** 2 - (yy / 0.75) ** 2).clamp(0, 1).sqrt()
    image = torch.stack([0.9 * face, 0.7 * face, 0.6 * face])
    tm = torch.tensor([[-1.0, 0, 0, 0.01], [0, 1, 0, -0.03], [0, 0, -1, 9.6]])
    return image, tm


def frame_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """Max and mean absolute difference (in 1/255 steps) and PSNR (dB) of uint8 frames."""
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float((d ** 2).mean())
    return {"max_abs": float(np.abs(d).max()), "mean_abs": float(np.abs(d).mean()),
            "psnr_db": None if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)}  # None: identical


def machine(device: torch.device) -> dict[str, Any]:
    """Where the figures come from: CPU model and its bf16/AMX flags (or the GPU), threads, load."""
    cpu, flags = "", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and not cpu:
                cpu = val.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(val.split())
    except OSError:
        pass
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu or 'CPU'}, {os.cpu_count()} CPUs"
    return {"where": where, "cpu": cpu, "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16",
                                                                      "amx_tile", "avx512_fp16"}),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--frames", type=int, default=3, help="frames per whole-frame run (default 3)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per row, medians quoted (default 3)")
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
    results = run(args, dev)
    print_table(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    from artalk_core.flame import load_flame
    from artalk_core.render.avatar import rasterize as R
    from artalk_core.render.avatar.camera import build_camera
    from artalk_core.render.avatar.config import AvatarConfig
    from artalk_core.render.avatar.driving import Driver
    from artalk_core.render.avatar.model import build_avatar_net
    from artalk_core.render.avatar.precision import measure_upsampler, resolve_upsampler_precision
    from artalk_core.render.avatar.renderer import AvatarRenderer

    config = AvatarConfig.from_json(GAGA / "model_config.json") if args.quick else AvatarConfig.released()
    size = int(config.render_size[0])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    net = build_avatar_net(config, device=dev)
    build_s = time.perf_counter() - t0
    image, tm = synthetic_entry()
    # FLAME: a synthetic 5023-vertex head (the real one is licence-gated; the cost is the same)
    flame = load_flame(GAGA / "flame_synthetic_5023.pt")
    driver = Driver(flame, shapecode=torch.zeros(300), transform_matrix=tm, device=dev)
    n = max(args.frames, args.batch if dev.type == "cuda" else 1)
    motion = torch.zeros(n, 106)
    motion[:, 103] = torch.linspace(0, 0.2, n)
    motion[:, 100:103] = torch.linspace(-0.1, 0.1, n).unsqueeze(1) * torch.tensor([0.3, 1.0, 0.1])
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"device": args.device, **machine(dev), "sizes": "tiny_gaga" if args.quick else "released",
                           "net_build_s": build_s, "rows": rows}

    # 1. Cold start, as a first `render --avatar` with an empty avatar cache: the setup, then the first
    # frame (oneDNN and numba kernels loaded on first use; numba's compiled code is cached on disk).
    sync(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        gaussians: Any = net.build_gaussians(image, tm).to(dev)
    sync(dev)
    out["setup_s"] = time.perf_counter() - t0

    def renderer(**kw: Any) -> AvatarRenderer:
        opts: dict[str, Any] = dict(noise="seeded", seed=0, batch=args.batch if dev.type == "cuda" else 1)
        return AvatarRenderer(net=net, gaussians=gaussians, driver=driver, **{**opts, **kw})

    t0 = time.perf_counter()
    next(iter(renderer().frames([motion[:1]])))
    sync(dev)
    out["first_frame_s"] = time.perf_counter() - t0  # fp32
    out["setup_plus_first_frame_s"] = out["setup_s"] + out["first_frame_s"]
    out["gemm_gflops"] = g = gemm_rate(dev)
    rows.append({"step": "avatar setup, cold (once per avatar, then cached on disk)", "seconds": out["setup_s"],
                 "cpu_seconds": None, "gemm_gflops": g, "ratio": out["setup_s"] * g / UPSAMPLER_GFLOP})
    rows.append({"step": "first frame after the setup, cold", "seconds": out["first_frame_s"], "cpu_seconds": None,
                 "gemm_gflops": g, "ratio": out["first_frame_s"] * g / UPSAMPLER_GFLOP})

    # 2. The rasterizer alone, per backend, one frame.
    points, transforms = driver(motion[:1])
    frame_g = gaussians.with_global_xyz(points[0])
    cam = build_camera(transforms[0].to(dev), size=size, focal=config.render_focal)
    backends = ["torch"] + (["numba"] if dev.type == "cpu" and R.numba_available() else [])
    if dev.type == "cuda" and R.cuda_module_available():
        backends.append("cuda")
    for be in backends:
        if be != "torch" or dev.type != "cpu":  # warm-up (numba loads its machine code; the CPU torch needs none)
            R.render_features(frame_g, cam, backend=be)
        rows += timed([(f"rasterizer ({be}), {len(gaussians):,} Gaussians, {size} px",
                        functools.partial(R.render_features, frame_g, cam, backend=be))], dev,
                      repeat=1 if be == "torch" and dev.type == "cpu" else args.repeat)  # the slow fallback once

    # 3. The upsampler per precision (those the device runs at least half as fast as fp32).
    seconds = measure_upsampler(net, ["bf16", "fp16"], repeat=1)  # fp16 on most CPUs: left out by the probe
    precisions = [p for p in ("fp32", "bf16", "fp16")
                  if p in seconds and seconds[p]["total"] < 2 * seconds["fp32"]["total"]]
    feats, _ = R.render_features(frame_g, cam, backend=backends[-1])
    gen = torch.Generator().manual_seed(0)
    rows += timed([(f"StyleUNet upsampler, {p}, 1 frame, {size} px",
                    functools.partial(net.upsample, feats[None], noise="seeded", generator=gen, precision=p))
                   for p in precisions], dev, repeat=args.repeat)

    # 4. Whole frames as `render --avatar` makes them (the last row: --precision auto).
    best = "numba" if "numba" in backends else backends[0]
    with tempfile.TemporaryDirectory() as tmp:  # measured now, as a first run here would (not a cached decision)
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            auto = resolve_upsampler_precision("auto", net)
        finally:
            if old is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = old
    variants: list[tuple[str, dict[str, Any]]] = []
    if dev.type == "cpu":
        variants.append((f"whole frame, fp32, sequential ({best} rasterizer, then upsampler)",
                         dict(backend=best, overlap=False)))
        variants += [(f"whole frame, {p}, pipelined (rasterizer one frame ahead)", dict(backend=best, precision=p))
                     for p in precisions]
    else:  # CUDA: frames batched; the batched torch rasterizer and the reference module side by side
        variants += [(f"whole frame, {p}, batch {args.batch}, {be} rasterizer", dict(backend=be, precision=p))
                     for be in backends for p in precisions]
    variants.append((f"whole frame, --precision auto (= {auto})", dict(backend=best, precision=auto)))
    frames: dict[tuple[str, str], np.ndarray] = {}

    def clip(rend: AvatarRenderer) -> np.ndarray:
        return np.stack(list(rend.frames([motion[:n]])))

    named: list[tuple[str, Callable[[], Any]]] = []
    for name, kw in variants:
        rend = renderer(**kw)
        got = clip(rend)  # also the warm-up
        key = (str(kw["backend"]), str(kw.get("precision", "fp32")))
        if key in frames and not np.array_equal(frames[key], got):  # sequential = pipelined, bit for bit
            raise AssertionError(f"{name}: the frames differ from the same precision's other run")
        frames[key] = got
        named.append((name, functools.partial(clip, rend)))
    for row in timed(named, dev, repeat=args.repeat, per=n):
        rows.append({**row, "frames_per_second": 1.0 / row["seconds"]})
    out["auto_precision"] = auto
    out["vs_fp32"] = {f"{p} ({be} rasterizer)": frame_difference(f, frames[(be, "fp32")])
                      for (be, p), f in frames.items() if p != "fp32" and (be, "fp32") in frames}
    return out


def print_table(res: dict[str, Any]) -> None:
    print(f"Photoreal avatar benchmark ({res['sizes']} sizes, random weights): {res['where']} "
          f"[{' '.join(res['cpu_flags']) or 'no AVX-512'}], {res['threads']} torch threads, torch {res['torch']}; "
          f"load average {res['load_average']:.1f}; fp32 GEMM {res['gemm_gflops']:.0f} GFLOP/s "
          f"({GEMM_SIZE}x{GEMM_SIZE}, {GEMM_THREADS} threads).")
    print(f"Cold start: setup {fmt(res['setup_s'])} + first frame {fmt(res['first_frame_s'])} = "
          f"{fmt(res['setup_plus_first_frame_s'])}. --precision auto here: {res['auto_precision']}.")
    print()
    print("| step | wall time (median) | CPU time | r = time x GEMM rate / 137 GFLOP |")
    print("| --- | --- | --- | --- |")
    for r in res["rows"]:
        cpu = "" if r["cpu_seconds"] is None else fmt(r["cpu_seconds"])
        print(f"| {r['step']} | {fmt(r['seconds'])} | {cpu} | {r['ratio']:.2f} |")
    for p, d in res["vs_fp32"].items():
        print(f"\n{p} frames vs fp32 frames (uint8): max |diff| {d['max_abs']:.0f}/255, mean {d['mean_abs']:.3f}/255, "
              f"PSNR {d['psnr_db']:.1f} dB")


def fmt(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
