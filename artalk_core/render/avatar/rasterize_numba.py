"""The compositing step of the Gaussian rasterizer as a numba kernel (CPU, parallel over tiles).

Why a kernel of our own: the vectorised torch form evaluates every (pixel, Gaussian) pair of a list
block even after pixels saturate and holds large temporaries; a per-pixel loop stops each pixel at
T < 1e-4 exactly as the reference's CUDA threads do, which is several times faster on a CPU. The
arithmetic is float32 in the reference's order. numba is the optional ``artalk[fast]`` extra.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from artalk_core.render.avatar.rasterize import ALPHA_MAX, ALPHA_MIN, BLOCK, T_MIN, Projected

_KERNEL: Any = None


def _build_kernel() -> Any:
    import numba

    alpha_max = np.float32(ALPHA_MAX)
    alpha_min = np.float32(ALPHA_MIN)
    t_min = np.float32(T_MIN)
    half = np.float32(-0.5)
    one = np.float32(1.0)
    block = BLOCK

    @numba.njit(parallel=True, cache=True, nogil=True)
    def composite(point_list: Any, offsets: Any, xy: Any, conic: Any, opac: Any, feats: Any, gx: int,
                  width: int, height: int, out: Any, out_t: Any) -> None:  # pragma: no cover - compiled
        n_tiles = offsets.shape[0] - 1
        ch = feats.shape[1]
        for tile in numba.prange(n_tiles):
            start = offsets[tile]
            end = offsets[tile + 1]
            x0 = (tile % gx) * block
            y0 = (tile // gx) * block
            n = end - start
            # The tile's Gaussians gathered contiguously (the CUDA kernel's shared-memory batch).
            lx = np.empty(n, np.float32)
            ly = np.empty(n, np.float32)
            c0 = np.empty(n, np.float32)
            c1 = np.empty(n, np.float32)
            c2 = np.empty(n, np.float32)
            op = np.empty(n, np.float32)
            for k in range(n):
                g = point_list[start + k]
                lx[k] = xy[g, 0]
                ly[k] = xy[g, 1]
                c0[k] = conic[g, 0]
                c1[k] = conic[g, 1]
                c2[k] = conic[g, 2]
                op[k] = opac[g]
            # Exact culling: alpha = o exp(power) < 1/255 whenever power < ln(1/(255 o)), and such a
            # Gaussian changes nothing (skipped, T untouched). A row is skipped for a Gaussian when even
            # the row's maximum of the quadratic form, -dy^2 (c0 c2 - c1^2) / (2 c0), is below that
            # bound; a pixel, before its exp. A margin keeps float rounding on the safe side.
            thr = np.empty(n, np.float64)
            row_k = np.empty(n, np.float64)
            for k in range(n):
                o = np.float64(op[k])
                thr[k] = math.log(1.0 / (255.0 * o)) - 1e-3 if o > 0.0 else np.inf
                a = np.float64(c0[k])
                row_k[k] = (a * np.float64(c2[k]) - np.float64(c1[k]) ** 2) / a if a > 0.0 else 0.0
            rows = np.empty(n, np.int64)
            acc = np.empty(ch, np.float32)
            for py in range(y0, min(y0 + block, height)):
                fy = np.float32(py)
                m = 0
                for k in range(n):
                    dyk = np.float64(ly[k]) - py
                    bound = -0.5 * dyk * dyk * row_k[k]
                    if bound >= thr[k] - 1e-4 * abs(bound):
                        rows[m] = k
                        m += 1
                for px in range(x0, min(x0 + block, width)):
                    fx = np.float32(px)
                    t = one
                    for c in range(ch):
                        acc[c] = np.float32(0.0)
                    for j in range(m):
                        k = rows[j]
                        dx = lx[k] - fx
                        dy = ly[k] - fy
                        power = half * (c0[k] * dx * dx + c2[k] * dy * dy) - c1[k] * dx * dy
                        if power > 0 or power < thr[k] - 1e-4 * abs(power):
                            continue
                        alpha = min(alpha_max, op[k] * math.exp(power))
                        if alpha < alpha_min:
                            continue
                        test_t = t * (one - alpha)
                        if test_t < t_min:
                            break
                        g = point_list[start + k]
                        for c in range(ch):
                            acc[c] += feats[g, c] * alpha * t
                        t = test_t
                    for c in range(ch):
                        out[c, py, px] = acc[c]
                    out_t[py, px] = t

    return composite


def composite_numba(pr: Projected, point_list: Any, offsets: Any, features: Any, opacity: Any,
                    width: int, height: int) -> tuple[Any, Any]:
    """(image [C,H,W], transmittance [H,W]) float32 CPU tensors of the binned Gaussians."""
    import torch

    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _build_kernel()

    def arr(t: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu").numpy(), dtype=dtype)

    feats = arr(features, np.float32)
    out = np.zeros((feats.shape[1], height, width), np.float32)
    out_t = np.ones((height, width), np.float32)
    _KERNEL(arr(point_list, np.int64), arr(offsets, np.int64), arr(pr.means2d, np.float32),
            arr(pr.conic, np.float32), arr(opacity.reshape(-1), np.float32), feats, pr.grid[0], width, height,
            out, out_t)
    return torch.from_numpy(out), torch.from_numpy(out_t)
