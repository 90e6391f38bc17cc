#!/usr/bin/env python
"""Benchmark the mesh renderer and the H.264 writer on a FLAME-sized synthetic head.

Renders N frames of a ~5k-vertex / ~10k-face head that deforms every frame (so vertex normals
are recomputed each time) and prints render-only fps and render+encode fps.

    python scripts/bench_render.py --frames 500 --size 512
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from artalk_core.render.mesh import create_renderer
from artalk_core.video import VideoWriter, probe_video

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests.meshes
from tests.meshes import synthetic_head  # noqa: E402


def deformed(base: np.ndarray, i: int) -> np.ndarray:
    """Frame ``i`` of a small talking-like wobble: jaw-ish vertical stretch plus a slow yaw."""
    v = base.copy()
    lower = v[:, 1] < 0
    v[lower, 1] *= 1.0 + 0.08 * (0.5 + 0.5 * np.sin(i * 0.7))
    yaw = 0.15 * np.sin(i * 0.05)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)
    return v @ rot.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backend", default="gl")
    ap.add_argument("--preset", default="medium", help="x264 preset")
    ap.add_argument("--threads", type=int, default=0, help="x264 threads (0: auto)")
    ap.add_argument("--foreground", action="store_true", help="encode in the calling thread")
    ap.add_argument("--out", default=None, help="keep the video here (default: a temp file)")
    args = ap.parse_args()

    base, faces = synthetic_head()
    frames = [deformed(base, i) for i in range(args.frames)]
    renderer = create_renderer(faces, backend=args.backend, size=args.size)
    print(f"mesh: {base.shape[0]} vertices, {faces.shape[0]} faces; {args.size}px; "
          f"backend {args.backend} ({renderer.device_name}); {os.cpu_count()} CPUs")
    renderer.render(frames[0])  # warm-up: shader compilation, first allocations

    t0, c0 = time.perf_counter(), time.process_time()
    for v in frames:
        renderer.render(v)
    render_s, render_cpu = time.perf_counter() - t0, time.process_time() - c0

    out = args.out or os.path.join(tempfile.mkdtemp(prefix="artalk-bench-"), "bench.mp4")
    t0, c0 = time.perf_counter(), time.process_time()
    with VideoWriter(out, size=args.size, preset=args.preset, background=not args.foreground,
                     threads=args.threads) as writer:
        for v in frames:
            writer.write(renderer.render(v))
    both_s, both_cpu = time.perf_counter() - t0, time.process_time() - c0
    renderer.close()
    info = probe_video(out)
    n = args.frames
    print(f"render only:     {n / render_s:8.1f} fps ({1000 * render_s / n:.2f} ms/frame, "
          f"CPU {1000 * render_cpu / n:.2f} ms/frame)")
    print(f"render + encode: {n / both_s:8.1f} fps ({1000 * both_s / n:.2f} ms/frame, "
          f"CPU {1000 * both_cpu / n:.2f} ms/frame)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes compete)")
    print(f"video: {info['frames']} frames {info['width']}x{info['height']} {info['codec']} "
          f"{info['pix_fmt']} {os.path.getsize(out) / 1e6:.2f} MB" + (f" -> {out}" if args.out else ""))
    if not args.out:
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)


if __name__ == "__main__":
    main()
