#!/usr/bin/env python
"""How much our speed choices move the motion, in the metrics researchers report (LVE, MHD, FDD).

The full-size model (released config, seeded random weights, as scripts/bench.py builds it) animates
synthetic speech; each variant's motion, post-processed as `artalk generate` does it, is turned into
vertices of a synthetic 5023-vertex FLAME head (tests/fixtures/tiny_gaga/flame_synthetic_5023.pt: the
FLAME layout with random blend shapes, since the real head is licensed) and compared with the fp32
offline motion by `artalk eval`'s code (artalk_core/eval.py: the reference's metrics, head rotation left
out). Variants: bf16 (encoder and generator), bf16 for the encoder only, `--precision auto` (what it
resolves to here), and `--stream` (one 4-s chunk encoded and generated as it arrives, post-processed
causally) in fp32 and bf16.

    python scripts/study_precision.py                  # 10 s of speech, CPU
    python scripts/study_precision.py --seconds 20 --json study.json

Random weights are not the trained model: the differences show how far each choice moves *this*
network's output, an order of magnitude, not the trained model's error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench import TINY_CONFIG, random_model
from bench_encoders import machine
from bench_memory import speech_like

from artalk_core.constants import CHUNK_SAMPLES
from artalk_core.eval import METRICS, compute_metrics
from artalk_core.flame import load_flame
from artalk_core.model.artalk import ARTalkModel
from artalk_core.model.config import ModelConfig
from artalk_core.model.precision import resolve_precision
from artalk_core.postprocess import StreamingPostprocessor, postprocess
from artalk_core.timing import num_frames

ROOT = Path(__file__).resolve().parent.parent
HEAD = ROOT / "tests" / "fixtures" / "tiny_gaga" / "flame_synthetic_5023.pt"


def offline(model: ARTalkModel, audio: torch.Tensor, enc: str, gen: str) -> np.ndarray:
    """`artalk generate` without --stream: the audio encoded in groups of chunks, then generated."""
    feats = model.encode_audio(audio, precision=enc)
    raw = model.generate(feats, num_frames(audio.shape[0]), precision=gen)
    return postprocess(raw.numpy(), clip_length=None)


def streamed(model: ARTalkModel, audio: torch.Tensor, precision: str) -> np.ndarray:
    """`artalk generate --stream`: each 4-s chunk encoded and generated as it arrives, the frames
    post-processed causally as they come out (the last chunk zero-padded, cut to the audio's length)."""
    chunks = (audio[i:i + CHUNK_SAMPLES] for i in range(0, audio.shape[0], CHUNK_SAMPLES))
    post = StreamingPostprocessor(clip_length=None)
    n = num_frames(audio.shape[0])
    parts, done = [], 0
    for motion in model.iter_generate_from_audio(chunks, precision=precision):
        take = motion.numpy()[:n - done]
        done += take.shape[0]
        parts.append(post.push(take))
    parts.append(post.flush())
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="the tiny test config: a smoke test")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config = ModelConfig.from_dict(TINY_CONFIG) if args.quick else ModelConfig.released()
    model = random_model(config, "cpu")
    audio = speech_like(args.seconds)
    head = load_flame(HEAD)
    auto = resolve_precision("auto", device, config)  # measured once per machine, then cached
    variants: list[tuple[str, Any]] = [
        ("fp32, offline (reference)", lambda: offline(model, audio, "fp32", "fp32")),
        ("bf16 encoder, fp32 generator", lambda: offline(model, audio, "bf16", "fp32")),
        ("bf16", lambda: offline(model, audio, "bf16", "bf16")),
        (f"auto (= {auto} here)", None),
        ("fp32, --stream", lambda: streamed(model, audio, "fp32")),
        ("bf16, --stream", lambda: streamed(model, audio, "bf16")),
    ]
    motions: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name, run in variants:
        if run is None:  # auto is one of the runs above: not run twice
            same = "fp32, offline (reference)" if auto == "fp32" else ("bf16" if auto == "bf16" else None)
            if same is None:
                motions[name], seconds[name] = offline(model, audio, auto, auto), float("nan")
            else:
                motions[name], seconds[name] = motions[same], seconds[same]
            continue
        t0 = time.perf_counter()
        motions[name] = run()
        seconds[name] = time.perf_counter() - t0
    ref_name = variants[0][0]
    verts = {name: head.vertices(m, with_global=False).numpy() for name, m in motions.items()}
    rows = []
    for name, _ in variants:
        met = compute_metrics(verts[name], verts[ref_name])
        rows.append({"variant": name, **{k: met[k] for k in METRICS}, "seconds": seconds[name],
                     "max_abs_motion_diff": float(np.abs(motions[name] - motions[ref_name]).max())})
    motion_std = float(motions[ref_name].std())
    size = "tiny test config (--quick)" if args.quick else "full-size released config"
    print(f"LVE / MHD / FDD of each variant against fp32 offline: {size}, seeded random "
          f"weights, {args.seconds:g} s of synthetic speech, no style, synthetic 5023-vertex FLAME head, head "
          f"rotation left out (as the reference evaluates); {machine()}; torch {torch.__version__}. "
          f"Motion std {motion_std:.3f}.")
    print()
    print("| variant | LVE (mm) | MHD (mm) | FDD (x100) | max abs motion diff | seconds (encode + generate) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['LVE']:.4f} | {r['MHD']:.4f} | {r['FDD']:.4f} | {r['max_abs_motion_diff']:.2e} "
              f"| {r['seconds']:.1f} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "seconds": args.seconds, "auto": auto,
                                         "motion_std": motion_std, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
