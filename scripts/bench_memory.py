"""Peak memory of each step on long audio (`python scripts/bench.py --long-memory 10 60`): each
command runs in a fresh process on synthetic speech of the given lengths, so the table shows how
memory grows with the duration. Also the synthetic speech the benchmarks share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artalk_core.constants import SAMPLE_RATE

ROOT = Path(__file__).resolve().parent.parent


def speech_like(seconds: float, seed: int = 0) -> torch.Tensor:
    """Synthetic speech-like audio [S] at 16 kHz: voiced harmonics with a wandering pitch and
    formant-like colouring, ~4 syllables/s, short pauses and breath noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t) + 15 * np.sin(2 * np.pi * 2.1 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formant = 1.0 + 0.8 * np.sin(2 * np.pi * 3.7 * t)
    voiced = sum(np.sin(k * phase) * np.exp(-k / (4.0 * formant)) / k for k in range(1, 16))
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.7
    pauses = (np.sin(2 * np.pi * 0.23 * t + 0.5) > -0.8).astype(float)
    audio = 0.3 * voiced * syllable * pauses + 0.01 * rng.standard_normal(n)
    return torch.from_numpy((audio / np.abs(audio).max() * 0.8).astype(np.float32))


LONG_MEMORY_STEPS: tuple[tuple[str, str], ...] = (
    ("generate", "`artalk generate long.wav --clip-length 0` (artalk engine)"),
    ("generate stdin", "`artalk generate - --clip-length 0 < long.wav` (piped, not --stream)"),
    ("generate --stream", "`artalk generate - --stream --clip-length 0 < long.wav` (NDJSON to a file)"),
    ("encode-audio", "`artalk encode-audio long.wav` (the features file: 0.73 GB per hour)"),
    ("generate features", "`artalk generate long.features.safetensors --clip-length 0`"),
    ("generate energy", "`artalk generate long.wav --engine energy --clip-length 0`"),
    ("smooth", "`artalk smooth` of that motion (--force, --clip-length 0)"),
    ("render", "`artalk render` of the energy motion, stand-in head, 64 px, no audio"),
    ("render --audio", "the same with the speech muxed in (--audio long.wav)"),
    ("render stdin", "`artalk render - < motion` (piped motion)"),
    ("mux", "`artalk mux video.mp4 long.wav`"),
    ("animate", "`artalk animate long.wav --clip-length 0` (64 px)"),
    ("animate --keep", "`artalk animate long.wav --clip-length 0 --keep DIR` (every intermediate file)"),
)


def write_long_wav(path: Path, minutes: float) -> int:
    """A 16 kHz PCM16 WAV of synthetic speech, written a minute at a time; returns its samples."""
    from artalk_core.audio.wav import pcm16_header

    total = int(minutes * 60 * SAMPLE_RATE)
    with open(path, "wb") as f:
        f.write(pcm16_header(total, SAMPLE_RATE))
        done, i = 0, 0
        while done < total:
            n = min(60 * SAMPLE_RATE, total - done)
            x = speech_like(n / SAMPLE_RATE, seed=i).numpy()
            f.write(np.round(x * 32767).astype("<i2").tobytes())
            done += n
            i += 1
    return total


def run_peak_rss(cmd: list[str], stdin: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (peak RSS of the child in MB, wall seconds). Raises on failure."""
    t0 = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin:
        proc = subprocess.Popen(cmd, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0


def long_memory(minutes: list[float], workdir: Path) -> list[dict[str, Any]]:
    """Peak RSS of each step of :data:`LONG_MEMORY_STEPS` per audio length, each in a fresh process.

    The artalk engine runs the tiny test config (tests/fixtures/tiny_en, random weights): the
    full-size model would need ~40 min of compute per hour of audio on 2 cores, and what is measured
    here is how memory grows with the duration, which the model size does not change (it adds its
    constant ~1.3 GB of weights and per-chunk work).
    """
    fixture = ROOT / "tests" / "fixtures" / "tiny_en"
    cli = [sys.executable, "-m", "artalk_cli.main"]
    model = ["--checkpoint", str(fixture / "weights.safetensors"), "--model-config", str(fixture / "model_config.json"),
             "--assets", str(workdir), "-q"]  # an asset folder without FLAME: the stand-in head
    rows = []
    for mins in minutes:
        wav = workdir / f"speech_{mins:g}min.wav"
        samples = write_long_wav(wav, mins)
        energy = workdir / f"energy_{mins:g}.motion.safetensors"
        feats = workdir / f"speech_{mins:g}.features.safetensors"
        keep = workdir / f"keep_{mins:g}"
        cmds: dict[str, tuple[list[str], Path | None]] = {
            "generate": (cli + ["generate", str(wav), "--clip-length", "0", "-o", str(workdir / "m.safetensors")]
                         + model, None),
            "generate stdin": (cli + ["generate", "-", "--clip-length", "0", "-o", str(workdir / "mi.safetensors")]
                               + model, wav),
            "generate --stream": (cli + ["generate", "-", "--stream", "--clip-length", "0",
                                         "-o", str(workdir / "m.ndjson")] + model, wav),
            "encode-audio": (cli + ["encode-audio", str(wav), "-o", str(feats)] + model, None),
            "generate features": (cli + ["generate", str(feats), "--clip-length", "0",
                                         "-o", str(workdir / "mf.safetensors")] + model, None),
            "generate energy": (cli + ["generate", str(wav), "--engine", "energy", "--clip-length", "0",
                                       "-o", str(energy), "--assets", str(workdir), "-q"], None),
            "smooth": (cli + ["smooth", str(energy), "--force", "--clip-length", "0",
                              "-o", str(workdir / "s.safetensors"), "-q"], None),
            "render": (cli + ["render", str(energy), "-o", str(workdir / "v.mp4"), "--size", "64",
                              "--assets", str(workdir), "-q"], None),
            "render --audio": (cli + ["render", str(energy), "-o", str(workdir / "va.mp4"), "--size", "64",
                                      "--audio", str(wav), "--assets", str(workdir), "-q"], None),
            "render stdin": (cli + ["render", "-", "-o", str(workdir / "vs.mp4"), "--size", "64",
                                    "--assets", str(workdir), "-q"], energy),
            "mux": (cli + ["mux", str(workdir / "v.mp4"), str(wav), "-o", str(workdir / "vm.mp4"), "-q"], None),
            "animate": (cli + ["animate", str(wav), "--clip-length", "0", "--size", "64",
                               "-o", str(workdir / "a.mp4")] + model, None),
            "animate --keep": (cli + ["animate", str(wav), "--clip-length", "0", "--size", "64", "--keep", str(keep),
                                      "-o", str(workdir / "ak.mp4")] + model, None),
        }
        for step, _ in LONG_MEMORY_STEPS:
            cmd, stdin = cmds[step]
            mb, wall = run_peak_rss(cmd, stdin)
            rows.append({"minutes": mins, "samples": samples, "step": step, "peak_rss_mb": mb, "wall_s": wall})
            print(f"  {mins:g} min, {step}: peak RSS {mb:.0f} MB in {wall:.0f} s", file=sys.stderr, flush=True)
        wav.unlink()
        feats.unlink()
        shutil.rmtree(keep)
    return rows


def long_memory_table(rows: list[dict[str, Any]]) -> str:
    mins = sorted({r["minutes"] for r in rows})
    head = "| step | " + " | ".join(f"peak RSS, {m:g} min" for m in mins) + " | growth per hour |"
    lines = [head, "|" + "---|" * (len(mins) + 2)]
    for step, what in LONG_MEMORY_STEPS:
        vals = {r["minutes"]: r for r in rows if r["step"] == step}
        cells = [f"{vals[m]['peak_rss_mb']:.0f} MB ({vals[m]['wall_s']:.0f} s)" if m in vals else "n/a" for m in mins]
        growth = "n/a"
        if len(mins) >= 2 and mins[0] in vals and mins[-1] in vals:
            slope = (vals[mins[-1]]["peak_rss_mb"] - vals[mins[0]]["peak_rss_mb"]) / (mins[-1] - mins[0]) * 60
            growth = f"{slope:+.0f} MB"
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {growth} |")
    return "\n".join(lines)
