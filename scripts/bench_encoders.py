#!/usr/bin/env python
"""The two audio encoders side by side: wav2vec2 (xls-r-300m) and Mimi (kyutai/mimi), released sizes,
seeded random weights, and whether Mimi can encode a chunk incrementally (for ``--stream``).

    python scripts/bench_encoders.py                 # 3 chunks (12 s of speech), fp32 and bf16, CPU
    python scripts/bench_encoders.py --quick         # the tiny test configs: a smoke test
    python scripts/bench_encoders.py --device cuda --json enc.json

Cost: seconds of encoder compute per second of audio (the whole 4-s chunks the model encodes), the
fastest of ``--repeat`` interleaved runs, and the matrix work per chunk (torch's FLOP counter: convolutions,
matrix products, attention; independent of the machine and its load). Incremental encoding (Mimi is causal): the features of a
chunk's first P seconds, encoded alone, against the same frames of the whole chunk; and transformers'
own streaming mode (``use_streaming=True``: padding and key/value caches carried between calls) fed
the chunk's 24 kHz signal in pieces, against one whole-chunk call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from bench_memory import speech_like

from artalk_core.constants import CHUNK_SAMPLES, SAMPLE_RATE
from artalk_core.model.artalk import precision_context
from artalk_core.model.config import ModelConfig
from artalk_core.model.encoders import build_audio_encoder, run_audio_encoder

ROOT = Path(__file__).resolve().parent.parent
TINY = {"mimi": ROOT / "tests/fixtures/tiny_mimi/model_config.json",
        "wav2vec": ROOT / "tests/fixtures/tiny_en/model_config.json"}
PREFIX_SECONDS = (1.0, 2.0, 3.0, 3.5)
PIECE_FRAMES = 5
"""Mimi frames (80 ms each at 24 kHz: 1,920 samples) per streaming call: 0.4 s of audio."""


def machine() -> str:
    """CPU model, the flags that decide reduced-precision speed, cores and load."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = val.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(val.split())
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{name} ({', '.join(wanted) or 'no AVX-512'}), {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, load average {load:.1f}")


def encoder(config: ModelConfig, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """The audio encoder of ``config`` with seeded random weights; Mimi's codebooks (zeros when built)
    get random centroids so that quantising does the work it does with trained ones."""
    torch.manual_seed(seed)
    enc = build_audio_encoder(config)
    with torch.no_grad():
        for name, buf in enc.named_buffers():
            if name.endswith("embed_sum"):
                buf.normal_(0.0, 1.0)
    if hasattr(enc, "forget_codebooks"):
        enc.forget_codebooks()
    return enc.requires_grad_(False).eval().to(device)


def timed(fn: Any, device: torch.device) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def bench_cost(configs: dict[str, ModelConfig], chunks: torch.Tensor, precisions: list[str], repeat: int,
               device: torch.device) -> list[dict[str, Any]]:
    """Per encoder and precision: seconds per audio second (min over interleaved runs), features shape,
    max abs difference of the features against fp32."""
    encs = {name: encoder(cfg, device) for name, cfg in configs.items()}
    audio_s = chunks.shape[0] * CHUNK_SAMPLES / SAMPLE_RATE
    best: dict[tuple[str, str], float] = {}
    feats: dict[tuple[str, str], torch.Tensor] = {}
    with torch.no_grad():
        for name, enc in encs.items():  # warm-up: first-call kernel selection
            for p in precisions:
                with precision_context(p, device):
                    run_audio_encoder(configs[name], enc, chunks[:1])
        for _ in range(repeat):
            for name, enc in encs.items():
                for p in precisions:
                    with precision_context(p, device):
                        dt, out = timed(lambda e=enc, n=name: run_audio_encoder(configs[n], e, chunks), device)
                    best[(name, p)] = min(best.get((name, p), float("inf")), dt)
                    feats[(name, p)] = out.float()
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for name, enc in encs.items():
        n_params = sum(t.numel() for t in enc.parameters())
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            run_audio_encoder(configs[name], enc, chunks[:1])
        gflop = counter.get_total_flops() / 1e9
        for p in precisions:
            f = feats[(name, p)]
            rows.append({"encoder": name, "precision": p, "parameters": n_params, "audio_s": audio_s,
                         "gflop_per_chunk": gflop,
                         "s_per_audio_s": best[(name, p)] / audio_s, "features": list(f.shape[1:]),
                         "max_abs_diff_vs_fp32": (f - feats[(name, "fp32")]).abs().max().item()})
    return rows


def bench_incremental(config: ModelConfig, chunk: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """Mimi on one chunk [64000]: prefix encodings and transformers' streaming mode against the whole."""
    from artalk_core.model.mimi import resample_chunks

    enc = encoder(config, device)
    mm = enc.acoustic_model
    out: dict[str, Any] = {"prefix": [], "streaming": {}}
    with torch.no_grad():
        whole24 = resample_chunks(chunk[None]).to(device)
        dt_whole, res = timed(lambda: mm.encode(whole24[:, None]), device)
        codes = res.audio_codes
        for sec in PREFIX_SECONDS:
            n16 = int(sec * SAMPLE_RATE)
            pre24 = resample_chunks(chunk[None, :n16]).to(device)
            c = mm.encode(pre24[:, None]).audio_codes
            same = (c[0] == codes[0, :, :c.shape[-1]]).all(dim=0).tolist()
            whole_frames = pre24.shape[1] // 1920  # frames the prefix covers completely
            out["prefix"].append({
                "seconds": sec, "frames": c.shape[-1], "complete_frames": whole_frames,
                "identical_frames": sum(same), "first_different": same.index(False) if False in same else None,
                "resampled_samples_that_differ": int((pre24[0] != whole24[0, :pre24.shape[1]]).sum())})
        piece = PIECE_FRAMES * 1920
        pieces = []
        pad_cache = enc_cache = None

        def stream() -> torch.Tensor:
            nonlocal pad_cache, enc_cache
            for start in range(0, whole24.shape[1], piece):
                r = mm.encode(whole24[:, None, start:start + piece], use_streaming=True, padding_cache=pad_cache,
                              encoder_cache=enc_cache)
                pad_cache, enc_cache = r.padding_cache, r.encoder_cache
                pieces.append(r.audio_codes)
            return torch.cat(pieces, dim=-1)

        try:
            dt_stream, streamed = timed(stream, device)
        except (TypeError, ValueError, RuntimeError) as e:  # transformers without Mimi streaming
            out["streaming"] = {"error": f"{type(e).__name__}: {e}"}
        else:
            out["streaming"] = {"piece_seconds": piece / 24000, "calls": len(pieces),
                                "identical_frames": int((streamed == codes).all(dim=1).sum()),
                                "frames": codes.shape[-1], "seconds": dt_stream, "whole_chunk_seconds": dt_whole}
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| encoder | precision | parameters | features per 4-s chunk | GFLOP per 4-s chunk | s per audio s "
             "| max abs diff vs fp32 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['encoder']} | {r['precision']} | {r['parameters'] / 1e6:.1f}M | "
                     f"{r['features'][0]} x {r['features'][1]} | {r['gflop_per_chunk']:.1f} | "
                     f"{r['s_per_audio_s']:.3f} | {r['max_abs_diff_vs_fp32']:.2e} |")
    return "\n".join(lines)


def incremental_text(inc: dict[str, Any]) -> str:
    lines = ["Mimi, incremental encoding of one chunk (codes compared frame by frame with the whole chunk's):"]
    for p in inc["prefix"]:
        lines.append(f"- the first {p['seconds']:g} s alone: {p['frames']} frames ({p['complete_frames']} complete), "
                     f"{p['identical_frames']} identical"
                     + (f", first different: {p['first_different']}" if p["first_different"] is not None else "")
                     + f"; its 24 kHz signal differs from the whole chunk's in its last "
                       f"{p['resampled_samples_that_differ']} samples (the resampler's zero padding)")
    s = inc["streaming"]
    if "error" in s:
        lines.append(f"- transformers' streaming mode: not available ({s['error']})")
    else:
        lines.append(f"- transformers' streaming mode, {s['calls']} calls of {s['piece_seconds']:g} s: "
                     f"{s['identical_frames']} of {s['frames']} frames identical; {s['seconds']:.2f} s in all "
                     f"against {s['whole_chunk_seconds']:.2f} s for one whole-chunk call")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--chunks", type=int, default=3, help="4-s chunks of speech encoded per run (default 3)")
    ap.add_argument("--precision", nargs="+", default=None, help="default: fp32 bf16 (CPU), fp32 bf16 fp16 (CUDA)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs, the fastest kept (default 3)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="the tiny test configs, one run")
    ap.add_argument("--no-incremental", action="store_true", help="skip the incremental-encoding check")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = args.precision or (["fp32", "bf16"] if device.type == "cpu" else ["fp32", "bf16", "fp16"])
    if args.quick:
        configs = {name: ModelConfig.from_file(TINY[name]) for name in ("wav2vec", "mimi")}
    else:
        released = ModelConfig.released()
        configs = {"wav2vec": released, "mimi": released.with_audio_encoder("mimi")}
    chunks = speech_like(args.chunks * CHUNK_SAMPLES / SAMPLE_RATE).reshape(args.chunks, CHUNK_SAMPLES).to(device)
    rows = bench_cost(configs, chunks, precisions, 1 if args.quick else max(1, args.repeat), device)
    inc = None if args.no_incremental else bench_incremental(configs["mimi"], chunks[0].cpu(), device)
    size = "tiny test configs (--quick)" if args.quick else "released sizes (xls-r-300m, kyutai/mimi)"
    print(f"Audio encoders, {size}, seeded random weights, {args.chunks} chunks of synthetic speech; device "
          f"{args.device}: {machine()}; torch {torch.__version__}.")
    print()
    print(markdown(rows))
    if inc is not None:
        print()
        print(incremental_text(inc))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "incremental": inc}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
