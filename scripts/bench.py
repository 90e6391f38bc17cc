#!/usr/bin/env python
"""Generation speed benchmark: the ARTalk model on random seeded weights and synthetic speech.

Times, per second of audio, the audio encoder (wav2vec2), the autoregressive levels and the VAE,
for the reference per-level path and the key/value-cached fast path (and lower precisions), all in
one run, and reports the motion difference and bit agreement against the fp32 reference path,
plus peak memory and (if scripts/bench_render.py works here) the render + encode frame rate.

    python scripts/bench.py                       # full-size model, 10 s of speech, fp32 + bf16
    python scripts/bench.py --long                # also 60 s
    python scripts/bench.py --quick               # tiny config, CI smoke test
    python scripts/bench.py --device cuda --precision fp32 fp16 --json bench.json
    python scripts/bench.py --long-memory         # peak RSS of generate/render at 10 vs 60 min of audio

It ends with the two audio encoders side by side (wav2vec2 and Mimi at their released sizes, and
whether Mimi encodes a chunk incrementally: scripts/bench_encoders.py, its own process).

A precision is one of fp32 | bf16 | fp16 | auto for the whole chain, or ENC/GEN (e.g. bf16/fp32: the
audio encoder in bf16, the autoregressive levels and the VAE in fp32). ``auto`` is what
``--precision auto`` picks here (artalk_core/model/precision.py: measured once, cached); the header
shows that measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from bench_memory import long_memory, long_memory_table, speech_like

from artalk_core.model.artalk import ARTalkModel, Generation
from artalk_core.model.checkpoint import build_model
from artalk_core.model.config import ModelConfig
from artalk_core.model.precision import PRECISION_CHOICES, measurement, resolve_precision
from artalk_core.options import ModelOptions
from artalk_core.timing import num_frames

ROOT = Path(__file__).resolve().parent.parent

TINY_CONFIG: dict[str, Any] = {
    "AR_CONFIG": {"T_DEPTH": 2, "T_NUM_HEADS": 4, "PREV_RATIO": 1, "EMBED_DIM": 64},
    "VAE_CONFIG": {"MOTION_DIM": 106, "V_CODE_DIM": 32, "T_DEPTH": 2, "T_NUM_HEADS": 4, "T_HIDDEN_DIM": 64,
                   "V_PATCH_NUMS": [1, 5, 25, 50, 100]},
    "WAV2VEC2_CONFIG": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 128, "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16,
                        "num_conv_pos_embedding_groups": 4},
}


# ---- inputs ------------------------------------------------------------------------------------
def random_model(config: ModelConfig, device: str, seed: int = 0) -> ARTalkModel:
    """Default (seeded) initialisation; parameters the default leaves at zero get a small normal."""
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.normal_(0.0, 0.02)
    return model.requires_grad_(False).eval().to(device)


# ---- measurement helpers -----------------------------------------------------------------------
class PeakMemory:
    """Peak resident memory of this process during a block (Linux: VmHWM reset via clear_refs), or
    peak CUDA allocation on a CUDA device. ``mb`` is None where it cannot be measured."""

    @staticmethod
    def current_rss_mb() -> float | None:
        try:
            status = Path("/proc/self/status").read_text()
            return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
        except (OSError, AttributeError):
            return None

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        try:
            status = Path("/proc/self/status").read_text()
            self.mb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
        except (OSError, AttributeError):
            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render_fps(frames: int) -> dict[str, float] | None:
    """Render-only and render+encode fps from scripts/bench_render.py (None if absent or failing)."""
    script = ROOT / "scripts" / "bench_render.py"
    if not script.exists():
        return None
    try:
        proc = subprocess.run([sys.executable, str(script), "--frames", str(frames)], capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out: dict[str, float] = {}
    for key, pattern in (("render_fps", r"render only:\s+([\d.]+) fps"),
                         ("render_encode_fps", r"render \+ encode:\s+([\d.]+) fps")):
        m = re.search(pattern, proc.stdout)
        if m:
            out[key] = float(m.group(1))
    if proc.returncode != 0 or not out:
        print(f"(render benchmark failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]})",
              file=sys.stderr)
        return None
    return out


def avatar_table(device: str, frames: int, quick: bool) -> str | None:
    """The photoreal avatar rows (scripts/bench_avatar.py, its own process; None if it fails)."""
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_avatar.py"), "--device", device, "--frames", str(frames)]
    try:
        proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, timeout=3600,
                              cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        print(f"(avatar benchmark failed: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return proc.stdout.strip()


def encoders_table(device: str, quick: bool) -> str | None:
    """The audio encoder comparison (scripts/bench_encoders.py, its own process; None if it fails)."""
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_encoders.py"), "--device", device]
    try:
        proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, timeout=3600,
                              cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        print(f"(audio encoder benchmark failed: {proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return proc.stdout.strip()


# ---- memory scaling with the audio length --------------------------------------------------------
# ---- the benchmark -----------------------------------------------------------------------------
def split_precision(spec: str) -> tuple[str, str]:
    """'bf16' -> ('bf16', 'bf16'); 'bf16/fp32' -> ('bf16', 'fp32'): (encoder, generation)."""
    enc, _, gen = spec.partition("/")
    gen = gen or enc
    for p in (enc, gen):
        if p not in PRECISION_CHOICES:
            raise argparse.ArgumentTypeError(f"unknown precision '{p}' in '{spec}': use {', '.join(PRECISION_CHOICES)}")
    return enc, gen


def bench_length(model: ARTalkModel, seconds: float, precisions: list[str], repeat: int,
                 device: torch.device) -> list[dict[str, Any]]:
    """Rows for one audio length: the fp32 reference path, then the fast path per precision."""
    audio = speech_like(seconds).to(device)
    n_frames = num_frames(audio.shape[0])
    enc_precisions = list(dict.fromkeys(["fp32"] + [split_precision(p)[0] for p in precisions]))
    runs: list[tuple[str, str, bool]] = [("reference", "fp32", False)] + [("fast", p, True) for p in precisions]

    enc_time = {p: math.inf for p in enc_precisions}
    feats: dict[str, torch.Tensor] = {}
    enc_mem: dict[str, float | None] = {}
    best: dict[tuple[str, str], tuple[float, Generation, float | None]] = {}
    for _ in range(repeat):  # interleaved, so background load hits every path alike; keep the min
        for p in enc_precisions:
            with PeakMemory(device) as mem:
                dt, feats[p] = timed(partial(model.encode_audio, audio, precision=p), device)
            enc_time[p] = min(enc_time[p], dt)
            enc_mem[p] = max(enc_mem.get(p) or 0.0, mem.mb or 0.0) or None
        for name, p, fast in runs:
            enc_p, gen_p = split_precision(p)
            with PeakMemory(device) as mem:
                dt, gen = timed(partial(model.generate_detailed, feats[enc_p], n_frames, fast=fast,
                                        precision=gen_p), device)
            if (name, p) not in best or dt < best[(name, p)][0]:
                best[(name, p)] = (dt, gen, mem.mb)

    ref_time, ref_gen, _ = best[("reference", "fp32")]
    ref_total = enc_time["fp32"] + ref_time
    ref_ar = ref_gen.seconds["ar"]
    motion_scale = ref_gen.motion.std().item()
    rows = []
    for name, p, _fast in runs:
        dt, gen, gen_mem = best[(name, p)]
        enc_p = split_precision(p)[0]
        total = enc_time[enc_p] + dt
        diff = (gen.motion - ref_gen.motion).abs().max().item()
        rows.append({
            "audio_s": seconds, "path": name, "precision": p,
            "encoder_s_per_s": enc_time[enc_p] / seconds,
            "feature_max_abs_diff": (feats[enc_p] - feats["fp32"]).abs().max().item(),
            "ar_s_per_s": gen.seconds["ar"] / seconds,
            "vae_s_per_s": gen.seconds["vae"] / seconds,
            "total_s_per_s": total / seconds,
            "speedup": ref_total / total,
            "ar_speedup": ref_ar / gen.seconds["ar"],
            "max_abs_motion_diff": diff,
            "max_motion_diff_rel_std": diff / motion_scale if motion_scale > 0 else float("nan"),
            "bit_agreement": (gen.bits == ref_gen.bits).float().mean().item(),
            "peak_mem_mb": max(gen_mem or 0.0, enc_mem[enc_p] or 0.0) or None,
        })
    return rows


def animate_end_to_end(model: ARTalkModel, config: ModelConfig, seconds: float, device: str,
                       workdir: Path) -> dict[str, float]:
    """Wall time of `artalk_core.animate.animate` (the whole chain, as `artalk animate`) on ``seconds``
    of speech: the random model saved in the reference asset layout, the stand-in head, 512 px."""
    from safetensors.torch import save_file

    from artalk_core.animate import animate
    from artalk_core.audio import write_wav

    assets = workdir / "assets"
    assets.mkdir(exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(assets / "ARTalk_wav2vec.safetensors"))
    (assets / "config.json").write_text(json.dumps(config.to_dict()))
    wav = workdir / "speech.wav"
    write_wav(wav, speech_like(seconds).numpy())
    out: dict[str, float] = {"audio_s": seconds}
    for engine in ("artalk", "energy"):
        ckpt = assets / "ARTalk_wav2vec.safetensors" if engine == "artalk" else None
        if engine == "artalk":  # load once, as a running tool would; the load is not the chain's cost
            from artalk_core.pipeline import load_artalk

            load_artalk(ModelOptions(checkpoint=ckpt, assets=assets, device=device))
        t0 = time.perf_counter()
        animate(wav, output=workdir / f"{engine}.mp4", engine=engine, checkpoint=ckpt, assets=assets, device=device)
        out[f"{engine}_s"] = time.perf_counter() - t0
    return out


def auto_summary(decision: dict[str, Any]) -> str:
    """The --precision auto measurement in words: estimated seconds per 4-s chunk per precision."""
    secs = decision["seconds"]
    ref = secs["fp32"]["total"]
    parts = [f"{p} {s['total']:.2f} s ({ref / s['total']:.2f}x; encoder {s['encoder']:.2f}, AR {s['ar']:.2f})"
             for p, s in secs.items()]
    return f"measured {decision.get('measured', '?')}, estimated per 4-s chunk: " + ", ".join(parts)


def precision_label(spec: str, auto: str | None) -> str:
    """'auto' -> 'auto (= bf16)' once resolved."""
    return f"{spec} (= {spec.replace('auto', auto)})" if auto and "auto" in spec else spec


def markdown(rows: list[dict[str, Any]], mem_label: str) -> str:
    head = ("| audio | path | precision | encoder s/s | AR levels s/s | VAE s/s | total s/s | speed-up "
            "(AR only) | max abs motion diff (rel. to motion std) | bit agreement | peak " + mem_label + " |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        mem = "n/a" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f} MB"
        lines.append(
            f"| {r['audio_s']:g} s | {r['path']} | {precision_label(r['precision'], r.get('auto'))} | "
            f"{r['encoder_s_per_s']:.3f} | "
            f"{r['ar_s_per_s']:.3f} | {r['vae_s_per_s']:.3f} | {r['total_s_per_s']:.3f} | "
            f"{r['speedup']:.2f}x ({r['ar_speedup']:.2f}x) | {r['max_abs_motion_diff']:.2e} "
            f"({r['max_motion_diff_rel_std']:.1e}) | {100 * r['bit_agreement']:.2f}% | {mem} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0], help="audio lengths (default 10)")
    ap.add_argument("--long", action="store_true", help="also benchmark 60 s of audio")
    ap.add_argument("--precision", nargs="+", default=None,
                    help="fast-path precisions: fp32 | bf16 | fp16 | auto, or ENC/GEN such as bf16/fp32 "
                         "(default: fp32 bf16/fp32 bf16 auto on CPU, fp32 bf16 fp16 auto on CUDA)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per path, the fastest kept (default 3; audio of 30 s or more runs once)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="tiny random config, one run: a smoke test")
    ap.add_argument("--render-frames", type=int, default=250,
                    help="frames for the render benchmark (0 skips it; default 250)")
    ap.add_argument("--avatar-frames", type=int, default=3,
                    help="frames per row of the photoreal avatar benchmark (0 skips it; default 3)")
    ap.add_argument("--no-encoders", action="store_true",
                    help="skip the wav2vec2 / Mimi audio encoder comparison (scripts/bench_encoders.py)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--long-memory", type=float, nargs="*", default=None, metavar="MIN",
                    help="instead: peak RSS of generate (tiny test model), generate --stream and render at "
                         "these audio lengths in minutes (default 10 60)")
    args = ap.parse_args(argv)

    if args.long_memory is not None:
        import tempfile

        minutes = args.long_memory or [10.0, 60.0]
        with tempfile.TemporaryDirectory(prefix="artalk-longmem-") as tmp:
            mem_rows = long_memory(minutes, Path(tmp))
        print(f"Peak resident memory (RSS, each step a fresh process) vs audio length; {cpu_name()}, "
              f"{os.cpu_count()} CPUs. The artalk engine runs the tiny test config (tests/fixtures/tiny_en, "
              "random weights): the memory that grows with the duration does not depend on the model size.")
        print()
        print(long_memory_table(mem_rows))
        if args.json is not None:
            args.json.write_text(json.dumps({"long_memory": mem_rows}, indent=2))
        return 0

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = args.precision or (["fp32", "bf16/fp32", "bf16", "auto"] if device.type == "cpu"
                                     else ["fp32", "bf16", "fp16", "auto"])
    try:
        for p in precisions:
            split_precision(p)
    except argparse.ArgumentTypeError as exc:
        ap.error(str(exc))
    if "fp32" not in precisions:
        precisions = ["fp32"] + precisions
    seconds = list(args.seconds) + ([60.0] if args.long and 60.0 not in args.seconds else [])
    repeat = 1 if args.quick else max(1, args.repeat)
    render_frames = min(args.render_frames, 50) if args.quick else args.render_frames

    config = ModelConfig.from_dict(TINY_CONFIG) if args.quick else ModelConfig.released()
    t0 = time.perf_counter()
    model = random_model(config, args.device)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    resident_mb = PeakMemory.current_rss_mb()
    t0 = time.perf_counter()
    auto = resolve_precision("auto", device, config)  # measured now unless cached for this machine
    auto_s = time.perf_counter() - t0
    decision = measurement(config, device)
    # Warm-up (first-call allocations, kernel selection) on one chunk for every path and precision.
    warm = speech_like(1.0).to(device)
    for p in precisions:
        enc_p, gen_p = split_precision(p)
        f = model.encode_audio(warm, precision=enc_p)
        model.generate_detailed(f, 25, fast=True, precision=gen_p)
    model.generate_detailed(model.encode_audio(warm), 25, fast=False)

    rows = []
    for sec in seconds:
        rows.extend(bench_length(model, sec, precisions, repeat if sec < 30 else 1, device))
    for r in rows:
        r["auto"] = auto
    render = render_fps(render_frames) if render_frames > 0 else None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="artalk-bench-") as tmp:
        e2e = animate_end_to_end(model, config, seconds[0], args.device, Path(tmp))

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"ARTalk generation benchmark: {'tiny (--quick)' if args.quick else 'full-size released'} config, "
              f"{n_params / 1e6:.0f}M random parameters (built in {build_s:.1f} s); device {args.device}"
              f" ({gpu or cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads); "
              f"torch {torch.__version__}; fastest of {repeat} run(s) per path (one for 30 s or more); "
              f"load average {load:.1f} at the end (other processes skew CPU timings).\n"
              "s/s = seconds of compute per second of audio. Speed-up and differences are against the "
              "fp32 reference path (same run); bits = every chunk's codes.\n"
              f"auto = {auto}: {auto_summary(decision)} (deciding took {auto_s:.1f} s in this run; "
              "0 when cached).")
    mem_label = "CUDA memory" if device.type == "cuda" else "RSS"
    print(header)
    print()
    print(markdown(rows, mem_label))
    if render is not None:
        print()
        print(f"Render ({render_frames} frames, scripts/bench_render.py): "
              f"{render.get('render_fps', float('nan')):.1f} fps render only, "
              f"{render.get('render_encode_fps', float('nan')):.1f} fps render + H.264 encode.")
    print(f"\nEnd to end (`animate`: encode, generate, post-process, FLAME skinning, render, encode, mux; "
          f"{e2e['audio_s']:.0f} s of speech, stand-in head, 512 px, model already loaded): "
          f"{e2e['artalk_s']:.1f} s with the model ({e2e['artalk_s'] / e2e['audio_s']:.2f} s/s), "
          f"{e2e['energy_s']:.1f} s with the energy engine.")
    avatar = avatar_table(args.device, args.avatar_frames, args.quick) if args.avatar_frames > 0 else None
    if avatar is not None:
        print()
        print(avatar)
    encoders = None if args.no_encoders else encoders_table(args.device, args.quick)
    if encoders is not None:
        print()
        print(encoders)
    # clear_refs resets the kernel's high-water mark, so the overall peak is the largest measured one.
    overall = max([r["peak_mem_mb"] or 0.0 for r in rows]
                  + [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
    if device.type == "cpu":
        rss = "n/a" if resident_mb is None else f"{resident_mb:.0f} MB"
        print(f"\nResident memory after building the model: {rss}; peak RSS of the benchmark: {overall:.0f} MB.")

    if args.json is not None:
        result = {"header": header, "device": args.device, "gpu": gpu, "cpu": cpu_name(),
                  "threads": torch.get_num_threads(), "torch": torch.__version__, "load_average": load, "quick": args.quick,
                  "parameters": n_params, "repeat": repeat, "rows": rows, "render": render,
                  "resident_after_build_mb": resident_mb, "peak_mem_mb": overall, "animate": e2e,
                  "auto": {"precision": auto, **decision}}
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
