"""The precision of the avatar's upsampler (the StyleUNet, most of a frame's arithmetic): ``--precision``.

``fp32`` is the exact default: frames bit for bit as always. ``bf16`` / ``fp16`` run the upsampler
with its weights held in that dtype (a copy made once per loaded net) and the feature image cast
to it; frames differ from fp32 by about 1/255 at most (docs/avatar_performance.md). Reduced
precision only pays where the device has native kernels (AVX-512 BF16 or AMX on x86 CPUs, recent
GPUs); elsewhere oneDNN converts internally and it runs slower. So ``auto`` is measured, as
``--precision auto`` is for the motion model (artalk_core.model.precision): once per machine, the
upsampler itself on a frame of the render size, fp32 and each candidate interleaved, the fastest
of a few rounds kept; the decision is cached in the same file under its own key.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from artalk_core.errors import InputError

if TYPE_CHECKING:
    import torch

    from artalk_core.render.avatar.model import GAGAvatarNet

UPSAMPLER_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""What the upsampler runs in (``auto`` resolves to one of them)."""
MEASURE_REPEAT: int = 3
"""Timed rounds per precision (interleaved, after a warm-up; the fastest is kept)."""
PROBE_SLOWDOWN: float = 2.0
"""A candidate whose probe convolution is this much slower than fp32's is not measured further (on a
CPU without fp16 kernels one fp16 frame takes ~10 s: the probe costs milliseconds)."""


def upsampler_dtype(precision: str) -> torch.dtype:
    """torch dtype of a resolved precision (fp32 | bf16 | fp16)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise InputError(f"unknown upsampler precision '{precision}': choose one of {', '.join(UPSAMPLER_PRECISIONS)}")
    return dtypes[precision]


def upsampler_key(net: GAGAvatarNet) -> str:
    """Cache key: the device (see ``device_identity``) and the upsampler's sizes."""
    from artalk_core.model.precision import device_identity

    c = net.config
    sizes = f"in{c.unet_in_dim}x{c.unet_in_size} out{c.unet_out_size} style{c.num_style_feat} mlp{c.num_mlp}"
    weights = [tuple(t.shape) for t in net.upsampler.state_dict().values()]
    shapes = f"{sizes} {weights}"
    return f"avatar upsampler | {device_identity(net.device)} | {hashlib.sha256(shapes.encode()).hexdigest()[:12]}"


def _probe(net: GAGAvatarNet, precision: str) -> float:
    """Seconds of one 3x3 convolution at the full-resolution decoder's shape (a cheap first look)."""
    import torch
    import torch.nn.functional as F

    dtype = upsampler_dtype(precision)
    c = net.config
    ch = net.upsampler.conv_body_first.out_channels
    x = torch.rand(1, ch, c.unet_in_size, c.unet_in_size, device=net.device).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.rand(ch, ch, 3, 3, device=net.device).to(dtype)
    best = math.inf
    for _ in range(2):  # the first call may pay kernel selection
        _sync(net.device)
        t0 = time.perf_counter()
        F.conv2d(x, w, padding=1)
        _sync(net.device)
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_upsampler(net: GAGAvatarNet, precisions: list[str],
                      repeat: int = MEASURE_REPEAT) -> dict[str, dict[str, float]]:
    """Seconds of one frame through the upsampler: {precision: {"upsampler", "total"}} for fp32 and
    each of ``precisions`` the device can run (a probe convolution first: a candidate over
    :data:`PROBE_SLOWDOWN` times slower than fp32 there, or one that raises, is left out).

    On a CPU with one thread: the question is whether the kernels are native, and one thread
    answers it the same (fp32 0.86 s, bf16 0.41 s here) while a busy machine disturbs it far less
    (at 2 threads with another process on a core, bf16's threads wait for each other and it
    measured slower than fp32)."""
    import torch

    threads = torch.get_num_threads()
    if net.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _measure(net, precisions, repeat)
    finally:
        torch.set_num_threads(threads)


def _measure(net: GAGAvatarNet, precisions: list[str], repeat: int) -> dict[str, dict[str, float]]:
    import torch

    with torch.inference_mode():
        ref = _probe(net, "fp32")
        order = ["fp32"]
        slow: dict[str, float] = {}
        for p in precisions:
            if p == "fp32":
                continue
            try:
                ratio = _probe(net, p) / ref
            except (RuntimeError, NotImplementedError):  # no kernels for it here: not a candidate
                continue
            if ratio <= PROBE_SLOWDOWN:
                order.append(p)
            else:
                slow[p] = ratio
        c = net.config
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(1, c.unet_in_dim, c.unet_in_size, c.unet_in_size, generator=gen)
        best = {p: math.inf for p in order}
        for rnd in range(repeat + 1):
            for p in order:
                _sync(net.device)
                t0 = time.perf_counter()
                net.upsample(x, noise="none", precision=p)
                _sync(net.device)
                if rnd:  # round 0 is the warm-up (kernel selection, the reduced copy of the weights)
                    best[p] = min(best[p], time.perf_counter() - t0)
    # a candidate left out after the probe: its estimate (fp32's frame x the probe's ratio)
    best.update({p: best["fp32"] * ratio for p, ratio in slow.items()})
    return {p: {"upsampler": s, "total": s} for p, s in best.items()}


def resolve_upsampler_precision(precision: str, net: GAGAvatarNet) -> str:
    """The precision the upsampler of ``net`` runs in: ``auto`` -> the fastest measured here (cached
    per machine; fp32 where nothing is faster), the others as given (with a warning where an
    explicit bf16/fp16 measured slower than fp32)."""
    from artalk_core.model.precision import cached_measurement, candidates, resolve_measured

    def entry(dev: torch.device) -> dict[str, Any]:
        return cached_measurement(upsampler_key(net), lambda: measure_upsampler(net, candidates(dev)), dev.type)

    return resolve_measured(precision, net.device, entry, what=" for the avatar upsampler")


__all__ = ["UPSAMPLER_PRECISIONS", "measure_upsampler", "resolve_upsampler_precision", "upsampler_dtype",
           "upsampler_key"]
