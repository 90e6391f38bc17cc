"""Batch throughput: N clips as sequential `artalk animate` calls vs `artalk batch` (1 and 2 local
workers, and Ray), each as a whole command, in one run on this machine.

By default the tiny random test model (tests/fixtures/tiny_en) stands in for the released one, so
the figures show what batch saves (process start, imports, model load per clip) and how workers
scale; `--assets DIR` uses real assets, `--engine energy` the weight-free engine.

The ``rows`` mode times the batch's own overhead on a big jobs file: ``--rows`` (100k) rows whose
audio is missing, so every clip fails at once and what is left is reading the file, naming the
clips, the checks, the results file and the summary on stderr (the command exits 1, as it should).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "tiny_en"


def speech_like(path: Path, seconds: float, seed: int) -> None:
    """A voiced, syllable-modulated signal (not speech, but it drives the models like speech)."""
    sys.path.insert(0, str(REPO))
    from artalk_core.audio import write_wav

    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t + seed)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 6))
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t + rng.uniform(0, 6)), 0, None)
    write_wav(path, (0.2 * voiced * syllables + 0.005 * rng.standard_normal(t.size)).astype(np.float32))


def tiny_assets(root: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    root.mkdir(parents=True, exist_ok=True)
    torch.save(load_file(str(FIXTURE / "weights.safetensors")), root / "ARTalk_wav2vec.pt")
    shutil.copy(FIXTURE / "model_config.json", root / "config.json")
    (root / "style_motion").mkdir(exist_ok=True)
    shutil.copy(FIXTURE / "style_motion.pt", root / "style_motion" / "tiny_0.pt")
    return root


def timed(cmd: list[str], env: dict[str, str], expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--engine", default="artalk", choices=["artalk", "energy"])
    ap.add_argument("--assets", type=Path, default=None, help="real assets (default: the tiny test model)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--modes", nargs="+", default=["animate", "batch1", "batch2", "ray", "rows"])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the jobs file of the rows mode")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    artalk = [sys.executable, "-m", "artalk_cli.main"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="artalk-bench-batch-") as tmp:
        work = Path(tmp)
        speech = work / "speech"
        speech.mkdir()
        for i in range(args.clips):
            speech_like(speech / f"clip{i:03d}.wav", args.seconds, seed=i)
        assets = args.assets or tiny_assets(work / "assets")
        common = ["--engine", args.engine, "--assets", str(assets), "-q"]
        for mode in args.modes:
            out = work / f"out-{mode}"
            out.mkdir()
            if mode == "rows":
                jobs = work / "rows.jsonl"
                jobs.write_text("".join(json.dumps({"audio": f"missing{i}.wav"}) + "\n" for i in range(args.rows)))
                seconds = timed([*artalk, "batch", str(jobs), "-o", str(out), "--engine", "energy"], env, expect=1)
                rows.append({"mode": f"rows ({args.rows} failing rows)", "seconds": round(seconds, 2),
                             "clips_per_min": round(60 * args.rows / seconds, 2)})
                print(f"{mode:8s} {seconds:8.1f} s  ({args.rows} rows)", flush=True)
                continue
            if mode == "animate":
                start = time.perf_counter()
                for wav in sorted(speech.glob("*.wav")):
                    timed([*artalk, "animate", str(wav), "-o", str(out / f"{wav.stem}.mp4"), "--size",
                           str(args.size), *common], env)
                seconds = time.perf_counter() - start
            else:
                extra = {"batch1": ["--workers", "1"], "batch2": ["--workers", "2"],
                         "ray": ["--backend", "ray"]}[mode]
                jobs = work / "jobs.jsonl"
                jobs.write_text("".join(json.dumps({"audio": str(w), "size": args.size}) + "\n"
                                        for w in sorted(speech.glob("*.wav"))))
                seconds = timed([*artalk, "batch", str(jobs), "-o", str(out), *extra, *common], env)
            rows.append({"mode": mode, "seconds": round(seconds, 2),
                         "clips_per_min": round(60 * args.clips / seconds, 2)})
            print(f"{mode:8s} {seconds:8.1f} s  {60 * args.clips / seconds:6.2f} clips/min", flush=True)
    base = next((r["seconds"] for r in rows if r["mode"] == "animate"), None)
    machine = f"{_cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end"
    print(f"\n{args.clips} clips x {args.seconds:g} s, engine {args.engine}, {args.size} px; {machine}\n")
    print("| mode | seconds | clips/min | vs sequential animate |\n| --- | --- | --- | --- |")
    for r in rows:
        ratio = f"{base / float(r['seconds']):.2f}x" if base and not str(r["mode"]).startswith("rows") else "-"  # type: ignore[arg-type]
        print(f"| {r['mode']} | {r['seconds']} | {r['clips_per_min']} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
