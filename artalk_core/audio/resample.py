"""Resampling to 16 kHz exactly as the reference tool does it, and the channel mix to mono.

The reference loads speech with ``torchaudio.load`` and resamples each channel with
``torchaudio.transforms.Resample(sr, 16000)`` at its defaults, then averages the channels
(``.mean(dim=0)``). That is a windowed-sinc interpolation (Hann window, 6 zero crossings,
roll-off 0.99) applied as a strided convolution. Why it is written here rather than imported:
torchaudio pins one torch version, and the model's bitwise quantiser turns a 1e-6 difference in
its input into different codes, so the numbers must be the reference's bit for bit.

The formulas (torchaudio's ``_get_sinc_resample_kernel`` / ``_apply_sinc_resample_kernel``), with
``orig``/``new`` the rates divided by their gcd:

- ``base = min(orig, new) * rolloff``; ``width = ceil(lowpass_filter_width * orig / base)``.
- kernel [new, K], K = 2 * width + orig, on the time grid
  ``t[p, k] = (-p / new + (k - width) / orig) * base`` (float64), clamped to +-lowpass_filter_width;
  ``kernel = sinc(pi t) * cos(t * pi / lowpass_filter_width / 2) ** 2 * base / orig``, cast to float32.
- the input is padded with ``width`` zeros on the left and ``width + orig`` on the right; output
  frame j (outputs j*new .. j*new+new-1) is ``sum_k kernel[p, k] * xpad[j * orig + k]``; the
  result is cut to ``ceil(S * new / orig)`` samples.

The convolution is not delegated to ``torch.nn.functional.conv1d``: its CPU kernel is chosen by
shape and instruction set, and measured against vectors made with torchaudio (see
tests/fixtures/resample), the reference's numbers are a float32 accumulation over the taps in
order with each product fused into the sum (an FMA), which conv1d here does for some shapes and
not for others (8 kHz -> 16 kHz differs in 5208 of 14400 samples by 1 ulp). So each step is done
as ``float32(float64(acc) + float64(k) * float64(x))``: the product of two float32 numbers is exact
in float64, so this is the fused multiply-add, on every machine (bar double-rounding ties, never
seen in the vectors). Taps that are zero in float32 are skipped (adding 0 changes nothing).

Every output sample's arithmetic is fixed by its position alone, so :class:`BlockResampler` fed
piece by piece gives the whole-signal numbers bit for bit, whatever the pieces.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from artalk_core.constants import SAMPLE_RATE

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
_FRAMES_PER_STEP = 2048  # output frames computed at once (bounds the float64 temporaries)
_MIN_PENDING = 4096  # input samples gathered before computing (tiny pieces cost no per-piece work)
MAX_KERNEL_TAPS = 1 << 24
"""Largest kernel (new x K entries) built: a rate sharing few factors with 16000 (44101 Hz, or a
header's nonsense rate) would need gigabytes, in torchaudio too; such input is refused."""


def to_mono(x: np.ndarray) -> np.ndarray:
    """float [C, n] -> float32 [n]: the channel mean as ``torch.Tensor.mean(dim=0)`` computes it
    in float32 (a sum over the channels in order, then a division by C)."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[0] == 1:
        return x[0]
    acc = x[0].copy()
    for c in range(1, x.shape[0]):
        acc += x[c]
    acc /= np.float32(x.shape[0])
    return acc


@dataclass(frozen=True)
class SincKernel:
    """torchaudio's resampling kernel for ``rate`` -> 16 kHz (``orig``/``new`` gcd-reduced).

    ``taps`` is float64 [new, K] holding float32 values; ``plan`` lists (tap, first phase, end
    phase) for every tap that is non-zero in some phase.
    """

    orig: int
    new: int
    width: int
    taps: np.ndarray
    plan: tuple[tuple[int, int, int], ...]

    @property
    def size(self) -> int:
        return int(self.taps.shape[1])


def _kernel_shape(rate: int, target: int) -> tuple[int, int, int, float]:
    """(orig, new, width, base) of the kernel for ``rate`` -> ``target``."""
    g = math.gcd(int(rate), int(target))
    orig, new = int(rate) // g, int(target) // g
    base = min(orig, new) * ROLLOFF
    return orig, new, math.ceil(LOWPASS_FILTER_WIDTH * orig / base), base


def check_rate(rate: int, target: int = SAMPLE_RATE) -> None:
    """Raise ValueError when resampling ``rate`` -> ``target`` needs a kernel over :data:`MAX_KERNEL_TAPS`."""
    if int(rate) <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    orig, new, width, _ = _kernel_shape(rate, target)
    if new * (2 * width + orig) > MAX_KERNEL_TAPS:
        gb = new * (2 * width + orig) * 8 / 1e9
        raise ValueError(f"a sample rate of {rate} Hz cannot be resampled to {target} Hz as the reference does "
                         f"(its filter table would take {gb:.1f} GB); convert the audio to 16, 44.1 or 48 kHz")


@functools.lru_cache(maxsize=4)
def sinc_kernel(rate: int, target: int = SAMPLE_RATE) -> SincKernel:
    """The kernel of ``torchaudio.transforms.Resample(rate, target)`` at its defaults.

    Computed with torch in float64 as torchaudio computes it (same grid, same sin/cos), then cast
    to float32, so the taps are torchaudio's bit for bit. Raises ValueError (see :func:`check_rate`).
    """
    import torch

    check_rate(rate, target)
    orig, new, width, base = _kernel_shape(rate, target)
    lw = LOWPASS_FILTER_WIDTH
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t *= base
    t = t.clamp_(-lw, lw)
    window = torch.cos(t * math.pi / lw / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * (base / orig)
    taps = kernel.to(torch.float32)[:, 0, :].numpy().astype(np.float64)
    plan = []
    for k in range(taps.shape[1]):
        nz = np.flatnonzero(taps[:, k])
        if nz.size:
            plan.append((k, int(nz[0]), int(nz[-1]) + 1))
    taps.setflags(write=False)
    return SincKernel(orig=orig, new=new, width=width, taps=taps, plan=tuple(plan))


def _frames(k: SincKernel, xpad: np.ndarray, n_frames: int) -> np.ndarray:
    """Output frames 0..n_frames-1 of padded float32 input [C, P] (frame j reads xpad[:, j*orig:
    j*orig+K]) -> float32 [C, n_frames * new]."""
    c = xpad.shape[0]
    acc = np.zeros((c, k.new, n_frames), np.float32)
    if n_frames == 0:
        return acc.reshape(c, 0)
    x64 = xpad[:, :(n_frames - 1) * k.orig + k.size].astype(np.float64)
    span = (n_frames - 1) * k.orig + 1
    for tap, p0, p1 in k.plan:
        seg = x64[:, tap:tap + span:k.orig]  # [C, n_frames]
        # One FMA step: the float32 sum widens exactly, the product of two float32 is exact in
        # float64, the float64 sum is rounded to float32 on assignment.
        acc[:, p0:p1] = acc[:, p0:p1] + k.taps[p0:p1, tap, None] * seg[:, None, :]
    return acc.transpose(0, 2, 1).reshape(c, n_frames * k.new)


class BlockResampler:
    """Resample float32 [C, n] pieces at ``rate`` to ``target`` (16 kHz), each channel on its own.

    :meth:`push` returns the output samples that became final ([C, m], possibly m = 0);
    :meth:`finish` the rest, ``ceil(S * new / orig)`` samples in all. The concatenated outputs are
    :func:`resample` of the concatenated input bit for bit. Held: the input of the frames not yet
    output (about one kernel length) plus up to 4096 samples gathered before computing, plus the
    last piece. At the target rate the pieces pass unchanged.
    """

    def __init__(self, rate: int, channels: int, target: int = SAMPLE_RATE) -> None:
        check_rate(rate, target)
        self.rate = int(rate)
        self.channels = int(channels)
        self._pass = self.rate == int(target)
        self._n_in = 0
        if not self._pass:
            self._k = sinc_kernel(self.rate, int(target))
            # Padded input from padded index self._base on (the left padding comes first).
            self._buf = np.zeros((self.channels, self._k.width), np.float32)
            self._base = 0
            self._frame = 0  # next output frame
            self._out = 0
            self._pending: list[np.ndarray] = []
            self._n_pending = 0

    def _run(self, n_padded: int, limit: int | None = None) -> np.ndarray:
        """Every frame whose window lies within the first ``n_padded`` padded samples."""
        k = self._k
        ready = (n_padded - k.size) // k.orig + 1 if n_padded >= k.size else 0
        parts = []
        while self._frame < ready:
            n = min(ready - self._frame, _FRAMES_PER_STEP)
            start = self._frame * k.orig - self._base
            parts.append(_frames(k, self._buf[:, start:], n))
            self._frame += n
        keep = self._frame * k.orig - self._base
        if keep > 0:
            self._buf = self._buf[:, keep:]
            self._base += keep
        y = (np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]) if parts else \
            np.zeros((self.channels, 0), np.float32)
        if limit is not None:
            y = y[:, :max(0, limit - self._out)]
        self._out += y.shape[1]
        return y

    def push(self, x: np.ndarray, *, eager: bool = False) -> np.ndarray:
        """Add float32 [C, n]; returns the 16 kHz output [C, m] that became final. Tiny pieces are
        gathered (4096 samples) before computing unless ``eager`` (live input: no added lag)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected [{self.channels}, n] samples, got shape {x.shape}")
        self._n_in += x.shape[1]
        if self._pass:
            return x
        self._pending.append(x)
        self._n_pending += x.shape[1]
        if self._n_pending < _MIN_PENDING and not eager:
            return np.zeros((self.channels, 0), np.float32)
        self._take_pending()
        return self._run(self._base + self._buf.shape[1])

    def _take_pending(self) -> None:
        self._buf = np.concatenate([self._buf, *self._pending], axis=1)
        self._pending, self._n_pending = [], 0

    def finish(self) -> np.ndarray:
        """The rest of the output [C, m]: ``ceil(S * new / orig)`` samples in all (S input samples)."""
        if self._pass:
            return np.zeros((self.channels, 0), np.float32)
        k = self._k
        if self._n_in == 0:
            return np.zeros((self.channels, 0), np.float32)
        self._take_pending()
        self._buf = np.concatenate([self._buf, np.zeros((self.channels, k.width + k.orig), np.float32)], axis=1)
        # torchaudio: torch.ceil(torch.as_tensor(new * S / orig)): a Python float made float32.
        target = int(np.ceil(np.float32(k.new * self._n_in / k.orig)))
        y = self._run(self._base + self._buf.shape[1], limit=target)
        self._buf = np.zeros((self.channels, 0), np.float32)
        return y


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """float [C, n] (or [n]) at ``rate`` -> float32 [C, ceil(n * target / rate)] (or [...]) at ``target``
    (16 kHz), each row as ``torchaudio.transforms.Resample(rate, target)`` gives it (and, measured for
    16 -> 24 kHz, ``torchaudio.functional.resample``: tests/fixtures/tiny_mimi)."""
    a = np.asarray(x, dtype=np.float32)
    flat = a.ndim == 1
    a2 = a[None] if flat else a
    res = BlockResampler(rate, a2.shape[0], target)
    y = np.concatenate([res.push(a2), res.finish()], axis=1)
    return y[0] if flat else y


__all__ = ["BlockResampler", "LOWPASS_FILTER_WIDTH", "MAX_KERNEL_TAPS", "ROLLOFF", "check_rate", "SincKernel", "resample", "sinc_kernel",
           "to_mono"]
