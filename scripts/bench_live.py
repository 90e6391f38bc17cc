#!/usr/bin/env python
"""Live benchmark: `artalk serve` with simulated clients pacing real speech, against offline `generate`.

A server process (the full-size ARTalk model on seeded random weights, or the energy engine) is
started per configuration; in the same run it measures offline generation of the same speech (the
reference for the targets) and then serves. N clients (asyncio, this process) stream
assets/speech_sample.wav (repeated) at real-time pace in 100-ms messages, started evenly spread
over one 4-s chunk (independent speakers do not start together), and time each block: from its
last audio leaving the client to its frames arriving (the lag). Reported per configuration and N:
lag p50/p95, the live real-time factor (mean lag / block length), whether the server kept real
time (model: every lag below one 4-s chunk, so nothing piles up; energy: p95 lag <= 0.2 s), the
largest N kept, and the server's memory per stream (its peak resident memory during the run less
its idle memory, divided by N); then the issue's targets against the same run's offline figures:
lag <= 1.1 x offline chunk compute + 50 ms (one stream), streams kept = floor(1 / offline RTF)
(at least 1 in fp32), the energy engine: 32 streams with lag <= 0.2 s. The first client of each
configuration also checks its frames against offline `generate` of the same speech, bit for bit.

    python scripts/bench_live.py                     # energy (1 2 4 8 32), full model fp32 and auto (1 2 4 8)
    python scripts/bench_live.py --quick             # the tiny config, short speech (a smoke test)
    python scripts/bench_live.py --device cuda --precision fp32 --batch 1 8 --clients 1 8 32 64 --no-energy
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.options import ModelOptions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEECH = ROOT / "assets" / "speech_sample.wav"


# ---- the server process ------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    """Child mode: build the engine, measure offline generation, serve; print one JSON line when ready."""
    import torch
    from bench import TINY_CONFIG, random_model

    from artalk_core.audio import load_audio
    from artalk_core.engines import artalk as artalk_engine
    from artalk_core.live.service import LiveConfig
    from artalk_core.model.config import ModelConfig
    from artalk_web.live.server import LiveServer

    speech = load_audio(SPEECH).samples
    seconds = args.offline_seconds
    audio = np.tile(speech, math.ceil(seconds * 16000 / len(speech)))[:int(seconds * 16000)]
    out: dict[str, Any] = {"engine": args.engine}
    if args.engine == "artalk":
        config = ModelConfig.from_dict(TINY_CONFIG) if args.quick else ModelConfig.released()
        model = random_model(config, args.device)
        loaded = artalk_engine.LoadedModel(model=model, checkpoint_sha256="0" * 64, config=config.to_dict(),
                                           device=args.device)
        artalk_engine.load_artalk = lambda **kw: loaded  # the live server's model: these random weights
        from artalk_core.engines import create_engine

        eng = create_engine("artalk", ModelOptions(device=args.device, precision=args.precision))
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        x = torch.from_numpy(audio).to(args.device)
        model.generate_from_audio(x[:64000], precision=eng.precision)  # warm-up

        def offline_run() -> tuple[float, np.ndarray]:
            sync()
            t0 = time.perf_counter()
            motion = model.generate_from_audio(x, precision=eng.precision).numpy()
            sync()
            return time.perf_counter() - t0, motion

        out["precision"] = eng.precision
    else:
        from artalk_core.engines.energy import energy_motion

        energy_motion(audio[:16000])

        def offline_run() -> tuple[float, np.ndarray]:
            t0 = time.perf_counter()
            motion = energy_motion(audio)
            return time.perf_counter() - t0, motion

        out["precision"] = "-"
    chunks = math.ceil(len(audio) / 64000)

    def offline_figures() -> dict[str, float]:
        t, _ = offline_run()
        return {"offline_s": t, "offline_chunk_s": t / chunks, "offline_rtf": t / seconds}

    t, offline = offline_run()
    out.update(offline_s=t, offline_chunk_s=t / chunks, offline_rtf=t / seconds)
    from artalk_core.postprocess import postprocess

    np.save(args.offline_out, postprocess(offline))  # what a stream of the same speech must give
    srv = LiveServer(LiveConfig(engine=args.engine, model=ModelOptions(device=args.device, precision=args.precision),
                                batch=args.batch_one,
                                max_streams=256, idle_seconds=300, send_queue_lines=10**6), port=0)
    out.update(port=srv.sock.getsockname()[1], pid=os.getpid(), rss_mb=rss_mb(os.getpid()))

    def stats(signum: int, frame: Any) -> None:
        """SIGUSR1, between client runs: the worker's compute per block since the last call, and
        offline generation measured again now (this machine's speed drifts with its other load)."""
        scheduler = srv.service.scheduler
        assert scheduler is not None
        timings = list(scheduler.timings)
        scheduler.timings.clear()
        payload = {"compute_s": [tm.compute_s for tm in timings], **offline_figures()}
        tmp = args.stats_out.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(args.stats_out)

    import signal

    signal.signal(signal.SIGUSR1, stats)
    srv.run(ready=lambda _: print(json.dumps(out), flush=True))  # once it listens


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


class RssPeak:
    """The peak resident memory of a process while the block runs (sampled every 0.1 s)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> RssPeak:
        def run() -> None:
            while not self._stop.wait(0.1):
                self.peak = max(self.peak, rss_mb(self.pid))

        threading.Thread(target=run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


# ---- the clients ---------------------------------------------------------------------------------
async def client(url: str, pcm: bytes, delay: float, engine: str, keep: list[np.ndarray] | None) -> list[float]:
    """One speaker: waits ``delay``, streams ``pcm`` (16 kHz s16) at real-time pace; the lag of each block."""
    from artalk_core.live.client import LiveClient

    await asyncio.sleep(delay)
    lags: list[float] = []
    async with LiveClient(url, engine=engine) as s:
        block = int(s.header["block_frames"])
        lead = int(s.header["delay_frames"])
        first = 5 + lead  # frames 0..4 also wait for the first 9-frame smoothing window

        async def send() -> None:
            step, start = 3200, time.perf_counter()
            for i in range(0, len(pcm), step):
                due = start + i / 32000
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                await s.send(pcm[i:i + step])
            await s.end()

        task = asyncio.ensure_future(send())
        last, t = -1, -1
        async for line in s.lines():  # only the first client parses the numbers (the others: their time)
            arrived = time.perf_counter()
            if not line.startswith('{"t"'):
                continue
            t += 1
            if keep is not None:
                keep.append(np.asarray(json.loads(line)["motion"], dtype=np.float32))
            need = -(-max(t + 1 + lead, first) // block) * block
            if need != last and need * 1280 <= len(pcm):  # (the last, partial block waits for the end)
                last = need
                left = next(when for total, when in s.sent if total >= need * 1280)
                lags.append(arrived - left)
        await task
    return lags


def server_stats(proc: subprocess.Popen, path: Path) -> dict[str, Any]:
    """The server's compute per block during the last run, and offline generation measured again."""
    import signal

    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(6000):
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise RuntimeError("the server did not report its timings")


def run_clients(url: str, n: int, pcm: bytes, engine: str, keep: list[np.ndarray] | None) -> list[list[float]]:
    async def all_clients() -> list[list[float]]:
        spread = 4.0 / n  # one chunk's time, split between the speakers
        return list(await asyncio.gather(*[client(url, pcm, i * spread, engine, keep if i == 0 else None)
                                           for i in range(n)]))

    return asyncio.run(all_clients())


def bench_config(engine: str, precision: str, batch: int, clients: list[int], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        offline_out, stats_out = Path(tmp) / "offline.npy", Path(tmp) / "stats.json"
        cmd = [sys.executable, __file__, "--serve", "--engine", engine, "--precision", precision, "--device",
               args.device, "--batch-one", str(batch), "--offline-seconds", str(args.seconds),
               "--offline-out", str(offline_out), "--stats-out", str(stats_out)] + (["--quick"] if args.quick else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts")]),
               "PYTHONWARNINGS": "ignore"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline() or "{}")
            if "port" not in ready:
                raise RuntimeError(f"the server did not start: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            url = f"ws://127.0.0.1:{ready['port']}/live"
            from artalk_core.audio import load_audio

            speech = load_audio(SPEECH).samples
            x = np.tile(speech, math.ceil(args.seconds * 16000 / len(speech)))[:int(args.seconds * 16000)]
            pcm = np.round(x * 32768).clip(-32768, 32767).astype("<i2").tobytes()
            wanted = np.load(offline_out)
            rows = []
            idle = rss_mb(ready["pid"])
            for n in clients:
                keep: list[np.ndarray] = []
                with RssPeak(ready["pid"]) as mem:
                    lags = run_clients(url, n, pcm, engine, keep)
                stats = server_stats(proc, stats_out)
                flat = [v for stream in lags for v in stream]
                block_s = 4.0 if engine == "artalk" else 0.04
                exact = bool(len(keep) == len(wanted) and np.array_equal(np.stack(keep), wanted))
                p50, p95 = (float(v) for v in np.percentile(flat, [50, 95]))
                compute = stats["compute_s"]
                rows.append({"streams": n, "lag_p50_s": p50, "lag_p95_s": p95, "lag_max_s": max(flat),
                             "compute_p50_s": float(np.median(compute)) if compute else 0.0,
                             "offline_chunk_s": stats["offline_chunk_s"], "offline_rtf": stats["offline_rtf"],
                             "rtf": float(np.mean(flat)) / block_s, "kept": max(flat) < block_s if engine == "artalk"
                             else p95 <= 0.2, "exact": exact,
                             "mb_per_stream": max(0.0, mem.peak - idle) / n})
                print(f"  {engine} {ready['precision']} batch {batch}: {n} stream(s): lag p50 {p50:.3f} s, "
                      f"p95 {p95:.3f} s, frames equal offline: {exact}", file=sys.stderr)
            return {**ready, "batch": batch, "rows": rows, "idle_rss_mb": idle}
        finally:
            proc.terminate()
            proc.wait(30)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    from bench import cpu_name

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    load = os.getloadavg()
    lines = [f"# live bench: {cpu_name()} ({', '.join(isa) or 'no AVX-512'}), {os.cpu_count()} CPUs, device "
             f"{args.device}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "Per run: the offline chunk compute measured right after it, in the server process; the server's "
             "compute per block during it (p50); the lag clients saw; the target lag 1.1 x offline + 50 ms.", "",
             "| engine | precision | batch | streams | offline / chunk | server compute / block | lag p50 | lag p95 | "
             "target lag | live RTF | kept real time | frames = offline | server MB/stream |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            model = res["engine"] == "artalk"
            target = f"{(1.1 * r['offline_chunk_s'] + 0.05) * 1000:.0f} ms" if model else "200 ms"
            lines.append(f"| {res['engine']} | {res['precision']} | {res['batch']} | {r['streams']} | "
                         f"{r['offline_chunk_s'] * 1000:.0f} ms | {r['compute_p50_s'] * 1000:.0f} ms | "
                         f"{r['lag_p50_s'] * 1000:.0f} ms | {r['lag_p95_s'] * 1000:.0f} ms | {target} | "
                         f"{r['rtf']:.2f} | {'yes' if r['kept'] else 'no'} | {'yes' if r['exact'] else 'NO'} | "
                         f"{r['mb_per_stream']:.1f} |")
    lines.append("")
    for res in results:
        kept = max([r["streams"] for r in res["rows"] if r["kept"]], default=0)
        one = res["rows"][0]
        if res["engine"] == "artalk":
            rtf = float(np.median([r["offline_rtf"] for r in res["rows"]]))
            allowed = max(1, math.floor(1 / rtf)) if res["precision"] == "fp32" else math.floor(1 / rtf)
            target_lag = 1.1 * one["offline_chunk_s"] + 0.05
            tried = max(r["streams"] for r in res["rows"])
            lines.append(f"- artalk {res['precision']} (batch {res['batch']}): offline generate {rtf:.3f} s/s "
                         f"(median of the runs). One stream: lag p50 {one['lag_p50_s']:.2f} s vs 1.1 x "
                         f"{one['offline_chunk_s']:.2f} + 0.05 = {target_lag:.2f} s: "
                         f"{'met' if one['lag_p50_s'] <= target_lag else 'NOT met'}. Streams kept {kept} vs "
                         f"floor(1/RTF) = {allowed}: {'met' if kept >= min(allowed, tried) else 'NOT met'}.")
        else:
            at32 = [r for r in res["rows"] if r["streams"] >= 32]
            verdict = ("met" if at32 and at32[0]["lag_p95_s"] <= 0.2 else "NOT met") if at32 else "not tried"
            lines.append(f"- energy: offline {one['offline_rtf'] * 1000:.1f} ms per s of audio; 32 streams with lag "
                         f"<= 0.2 s (p95): {verdict}; streams kept {kept}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="artalk", help=argparse.SUPPRESS)
    p.add_argument("--batch-one", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--offline-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--offline-seconds", type=float, default=16.0, help=argparse.SUPPRESS)
    p.add_argument("--stats-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--precision", nargs="+", default=["fp32", "auto"], help="precisions of the model (one server each)")
    p.add_argument("--batch", nargs="+", type=int, default=[1], help="--batch of the server (1: the exact mode)")
    p.add_argument("--clients", nargs="+", type=int, default=[1, 2, 4, 8], help="simultaneous streams (model)")
    p.add_argument("--energy-clients", nargs="+", type=int, default=[1, 2, 4, 8, 32], help="simultaneous streams (energy)")
    p.add_argument("--no-energy", action="store_true")
    p.add_argument("--no-model", action="store_true")
    p.add_argument("--seconds", type=float, default=16.0, help="speech per client")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny model, 8 s of speech, 1 and 2 clients")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.serve:
        args.precision = args.precision[0]
        serve(args)
        return 0
    if args.quick:
        args.seconds, args.clients, args.energy_clients, args.precision = 8.0, [1, 2], [1, 4], ["fp32"]
    results = []
    if not args.no_energy:
        results.append(bench_config("energy", "fp32", 1, args.energy_clients, args))
    if not args.no_model:
        for precision in args.precision:
            for batch in args.batch:
                results.append(bench_config("artalk", precision, batch, args.clients, args))
    text = report(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
