"""Which compute precision runs fastest here: ``--precision auto`` and the warning for a slow explicit one.

Reduced precision is not faster everywhere. bf16 autocast needs native bf16 matrix kernels
(AVX-512 BF16 or AMX on x86 CPUs, Ampere or newer GPUs); without them oneDNN converts internally
and bf16 runs slower than fp32 (measured 0.86x on the encoder), and fp16 on a CPU without
AVX-512 FP16 is several times slower (its convolutions ~27x). So the choice is measured, once per
machine: the model's real layer shapes (the audio encoder the model has, with one transformer layer,
on one second of audio: the wav2vec2 feature extractor, or Mimi's 24 kHz convolutions and
quantiser; and one AdaLN block over every level of one chunk), each precision run interleaved with
the others and repeated, the fastest run kept. The decision is cached in
``$XDG_CACHE_HOME/artalk/precision.json`` (default ``~/.cache``), keyed by the device (CPU model
and flags, or GPU name), the torch version, the thread count and the layer shapes, so later runs
cost nothing.

This module imports torch only inside its functions: :func:`check_precision` is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artalk_core.constants import PRECISIONS
from artalk_core.errors import warn
from artalk_core.options import check_precision

if TYPE_CHECKING:
    import torch

    from artalk_core.model.config import ModelConfig

PRECISION_CHOICES: tuple[str, ...] = PRECISIONS
"""Values of ``--precision``: ``auto`` resolves to one of the others (see :func:`resolve_precision`)."""

AUTO_MIN_SPEEDUP: float = 1.1
"""``auto`` takes a reduced precision only if it is at least this much faster than fp32 (noise margin)."""

MEASURE_REPEAT: int = 3
"""Timed rounds per precision (interleaved; the fastest round is kept)."""

MEASURE_AUDIO_SECONDS: float = 1.0
"""Audio run through the encoder sample (the real chunk is 4 s: its time is scaled by the ratio)."""

CACHE_VERSION: int = 1

_memo: dict[str, dict[str, Any]] = {}  # decisions already read or measured in this process, by cache file and key


def cache_path() -> Path:
    """The decision cache: ``$XDG_CACHE_HOME/artalk/precision.json`` (default ``~/.cache/artalk``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "artalk" / "precision.json"


def _cpu_identity() -> str:
    """CPU model name and a hash of its feature flags (Linux /proc/cpuinfo; else the platform string)."""
    name, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and not name:
                name = val.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(val.split()))
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} flags:{hashlib.sha256(flags.encode()).hexdigest()[:12]}"


def device_identity(device: torch.device) -> str:
    """What a measured speed depends on besides the work: the device (CPU model and flags with the
    thread count, or the GPU and its compute capability) and the torch version."""
    import torch

    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        cap = torch.cuda.get_device_capability(idx)
        ident = f"cuda {torch.cuda.get_device_name(idx)} sm{cap[0]}{cap[1]}"
    elif device.type == "cpu":
        ident = f"cpu {_cpu_identity()} threads:{torch.get_num_threads()}"
    else:
        ident = f"{device.type} {platform.machine()}"
    return f"{ident} | torch {torch.__version__}"


def device_key(device: torch.device, config: ModelConfig) -> str:
    """The cache key: device identity, torch version, threads (CPU) and the measured layer shapes."""
    shapes = (f"E{config.embed_dim} H{config.ar_heads} D{config.ar_depth} C{config.audio_dim} "
              f"P{'-'.join(map(str, config.patch_nums))} R{config.prev_ratio} ")
    if config.audio_encoder == "mimi":  # the whole Mimi config: every size shows in its cost
        shapes += "mimi " + json.dumps(config.mimi, sort_keys=True)
    else:
        w = config.wav2vec2
        shapes += f"I{w.get('intermediate_size')} L{w.get('num_hidden_layers')} conv{w.get('conv_dim')}"
    return f"{device_identity(device)} | {hashlib.sha256(shapes.encode()).hexdigest()[:12]}"


def candidates(device: torch.device) -> list[str]:
    """The reduced precisions worth measuring on ``device``, preferred first."""
    import torch

    if device.type == "cuda":
        return (["bf16"] if torch.cuda.is_bf16_supported() else []) + ["fp16"]
    return ["bf16", "fp16"]


# ---- measurement ---------------------------------------------------------------------------
def _sync(device: torch.device) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def _workloads(config: ModelConfig, device: torch.device) -> dict[str, tuple[Callable[[], Any], float]]:
    """Representative pieces of one 4-s chunk's work, each with the factor that scales its time to
    the whole chunk: name -> (function, factor)."""
    import dataclasses

    import torch

    from artalk_core.constants import SAMPLE_RATE
    from artalk_core.model.encoders import build_audio_encoder, run_audio_encoder
    from artalk_core.model.transformer import AdaLNSelfAttnBlock

    gen = torch.Generator().manual_seed(0)
    # The encoder the model has, with one transformer layer (its time is added per missing layer).
    if config.audio_encoder == "mimi":
        layers = int(config.mimi.get("num_hidden_layers", 1))
        one_layer = dataclasses.replace(config, mimi={**config.mimi, "num_hidden_layers": 1})
    else:
        layers = int(config.wav2vec2.get("num_hidden_layers", 1))
        one_layer = dataclasses.replace(config, wav2vec2={**config.wav2vec2, "num_hidden_layers": 1})
    enc: Any = build_audio_encoder(one_layer).requires_grad_(False).eval().to(device)
    audio = torch.randn(1, int(MEASURE_AUDIO_SECONDS * SAMPLE_RATE), generator=gen).to(device)
    chunk_factor = 4.0 / MEASURE_AUDIO_SECONDS
    parts: dict[str, float] = {}

    def timer(name: str) -> tuple[Callable[..., None], Callable[..., None]]:
        def pre(*_: Any) -> None:
            _sync(device)()
            parts[name] = time.perf_counter()

        def post(*_: Any) -> None:
            _sync(device)()
            parts[name] = time.perf_counter() - parts[name]

        return pre, post

    # The 1-layer encoder's time = convolutions + the rest; the real one has ``layers`` layers.
    # (Mimi: transformers >= 5 nests the encoder transformer under ``encoder``, 4.x does not)
    named = dict(enc.named_modules())
    layer = next(named[n] for n in ("encoder.layers.0", "acoustic_model.encoder.encoder_transformer.layers.0",
                                    "acoustic_model.encoder_transformer.layers.0") if n in named)
    pre, post = timer("layer")
    layer.register_forward_pre_hook(pre)
    layer.register_forward_hook(post)

    def encoder() -> float:
        sync = _sync(device)
        sync()
        t0 = time.perf_counter()
        run_audio_encoder(one_layer, enc, audio)
        sync()
        total = time.perf_counter() - t0
        return total + (layers - 1) * parts["layer"]

    e, c = config.embed_dim, config.audio_dim
    block = AdaLNSelfAttnBlock(e, config.ar_heads, c).requires_grad_(False).eval().to(device)
    n = sum(config.patch_nums)
    ctx = torch.randn(1, n * config.prev_ratio, e, generator=gen).to(device)
    cond = torch.randn(1, n, c, generator=gen).to(device)
    x = torch.randn(1, n, e, generator=gen).to(device)

    def ar_block() -> float:
        sync = _sync(device)
        sync()
        t0 = time.perf_counter()
        mod = block.ada_lin(cond)
        cache = block.attn.new_cache(ctx, n)
        start = 0
        for p in config.patch_nums:
            block.forward_cached(x[:, start:start + p], mod[:, start:start + p], cache)
            start += p
        sync()
        return (time.perf_counter() - t0) * config.ar_depth

    return {"ar": (ar_block, 1.0), "encoder": (encoder, chunk_factor)}


def measure(config: ModelConfig, device: torch.device, precisions: list[str],
            repeat: int = MEASURE_REPEAT) -> dict[str, dict[str, float]]:
    """Estimated seconds per 4-s chunk, per precision and part: {precision: {"encoder", "ar", "total"}}.

    fp32 and every precision in ``precisions`` run interleaved, ``repeat`` timed rounds after one
    warm-up (first-call kernel selection), the fastest round kept per part. A precision over twice
    as slow as fp32 after the first round is not run again (it cannot win), nor one twice as slow
    in two warm-up runs of a piece (its figures are then the warm-up's, a lower bound). A precision the device cannot
    autocast to is left out.
    """
    import torch

    from artalk_core.model.artalk import precision_context

    order = ["fp32"] + [p for p in precisions if p != "fp32"]
    best: dict[str, dict[str, float]] = {p: {} for p in order}
    warm: dict[str, float] = {}
    with torch.no_grad():
        work = _workloads(config, device)
        active = list(order)
        for rnd in range(repeat + 1):
            for p in list(active):
                for name, (fn, factor) in work.items():  # the cheap AR piece first
                    try:
                        with precision_context(p, device):
                            dt = fn() * factor
                    except (RuntimeError, NotImplementedError):  # no autocast to it here: not a candidate
                        if p == "fp32":
                            raise
                        active.remove(p)
                        del best[p]
                        break
                    if rnd == 0:  # warm-up: a precision 2x slower than fp32 twice running is dropped at once
                        if p != "fp32" and dt > 2 * warm["fp32" + name]:
                            with precision_context(p, device):  # again: the first call may pay kernel set-up
                                dt = min(dt, fn() * factor)
                        warm[p + name] = dt
                        if p != "fp32" and dt > 2 * warm["fp32" + name]:
                            active.remove(p)
                            best[p] = {n: warm.get(p + n, warm["fp32" + n]) for n in work}  # a lower bound
                            break
                    else:
                        best[p][name] = min(best[p].get(name, math.inf), dt)
            if rnd == 1:
                ref = sum(best["fp32"].values())
                active = [p for p in active if p == "fp32" or sum(best[p].values()) <= 2 * ref]
    for p in best:
        best[p]["total"] = sum(best[p].values())
    return best


def choose(seconds: dict[str, dict[str, float]], device_type: str) -> str:
    """The precision ``auto`` means for these measurements: the fastest one at least
    :data:`AUTO_MIN_SPEEDUP` times faster than fp32 (on CUDA bf16 whenever it qualifies), else fp32."""
    ref = seconds["fp32"]["total"]
    fast = {p: s["total"] for p, s in seconds.items() if p != "fp32" and s["total"] * AUTO_MIN_SPEEDUP <= ref}
    if not fast:
        return "fp32"
    if device_type == "cuda" and "bf16" in fast:
        return "bf16"
    return min(fast, key=lambda p: fast[p])


# ---- the cache -------------------------------------------------------------------------------
def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` under ``key`` (atomically; a cache that cannot be written is only not saved)."""
    from artalk_core.errors import OutputError
    from artalk_core.fileio import atomic_output

    path = cache_path()
    entries = _read_cache()
    entries[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True))
    except (OSError, OutputError):
        pass


def cached_measurement(key: str, measure_fn: Callable[[], dict[str, dict[str, float]]],
                       device_type: str) -> dict[str, Any]:
    """The decision cached under ``key``, else ``measure_fn()`` ({precision: {part: seconds, ...,
    "total"}}, fp32 included) run now and cached: {"seconds", "choice", "measured": ISO time}."""
    memo_key = f"{cache_path()}|{key}"  # another cache file (tests, a changed $XDG_CACHE_HOME) is another memo
    entry = _memo.get(memo_key) or _read_cache().get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("seconds"), dict) or "fp32" not in entry["seconds"]:
        seconds = measure_fn()
        entry = {"seconds": seconds, "choice": choose(seconds, device_type),
                 "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_cache(key, entry)
    _memo[memo_key] = entry
    return entry


def measurement(config: ModelConfig, device: torch.device) -> dict[str, Any]:
    """The cached decision for ``device`` and these layer shapes, measured (and cached) on first use:
    {"seconds": {precision: {"encoder", "ar", "total"}}, "choice": precision, "measured": ISO time}."""
    return cached_measurement(device_key(device, config), lambda: measure(config, device, candidates(device)),
                              device.type)


def resolve_precision(precision: str, device: torch.device | str, config: ModelConfig) -> str:
    """The precision to run: ``auto`` -> the measured fastest (fp32 where nothing is faster);
    fp32/bf16/fp16 unchanged, with a warning when an explicit bf16/fp16 measured slower than fp32
    here (measured once per machine, then cached; fp32 never measures)."""
    return resolve_measured(precision, device, lambda dev: measurement(config, dev))


def resolve_measured(precision: str, device: torch.device | str,
                     entry_of: Callable[[torch.device], dict[str, Any]], what: str = "") -> str:
    """:func:`resolve_precision` for any measured work: ``entry_of(device)`` gives its cached
    decision (see :func:`cached_measurement`); ``what`` names the work in the warning."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return precision
    dev = torch.device(device)
    entry = entry_of(dev)
    if precision == "auto":
        return str(entry["choice"])
    secs = entry["seconds"]
    if precision in secs and secs[precision]["total"] > secs["fp32"]["total"]:
        ratio = secs[precision]["total"] / secs["fp32"]["total"]
        warn(f"--precision {precision} is slower than fp32{what} on this {dev.type} ({ratio:.2f}x the fp32 time, "
             f"measured once and cached in {cache_path()}): use --precision fp32 (exact) or auto")
    return precision


def precision_options(requested: str, resolved: str) -> dict[str, str]:
    """What an output records: ``precision`` (the one run) and, for ``auto``, ``precision_requested``."""
    return {"precision": resolved, **({"precision_requested": requested} if requested != resolved else {})}


__all__ = ["AUTO_MIN_SPEEDUP", "PRECISION_CHOICES", "cache_path", "cached_measurement", "candidates",
           "check_precision", "choose", "device_identity", "device_key", "measure", "measurement", "precision_options",
           "resolve_measured", "resolve_precision"]
