"""The Gaussian rasterizer as numba kernels (CPU): projection (parallel over Gaussians), binning
(a stable counting sort by tile of the depth-ordered pairs, in slices on every thread) and
compositing (parallel over tiles).

Why kernels of our own: the vectorised torch form evaluates every (pixel, Gaussian) pair of a list
block even after pixels saturate, holds large temporaries, and spends as long again on the many
small tensor ops of projection and binning; loops stop each pixel at T < 1e-4 exactly as the
reference's CUDA threads do and touch each Gaussian once, several times faster on a CPU. The
arithmetic is float32 as in the reference, and each pixel's sum is the CUDA loop's, bit for bit
(tests/core/render/avatar/test_avatar_raster_exact.py). numba is the optional ``artalk[fast]`` extra.

The compositing goes Gaussian by Gaussian through a tile (front to back), each over the rows and
columns of its bounding box that are still taking Gaussians; it stops when every pixel of the tile
has. Measured on the benchmark's 512 px frame (2.7 M pairs, 45 M contributions; CPU time of one
thread, docs/avatar_performance.md): the per-row loop over every listed Gaussian with a float64
interval per row took 0.69 s, the bounding box with the power floor instead 0.52 s, the image
written channel by channel 0.48 s, the exps of a row's pixels in a loop of their own 0.41 s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from artalk_core.render.avatar.rasterize import ALPHA_MAX, ALPHA_MIN, BLOCK, DILATION, NEAR_CULL, T_MIN, Projected

_KERNEL: Any = None
_PREP: Any = None

BIN_PARTS: int = 4
"""Slices of the depth-ordered Gaussians binned at once, per numba thread (the slices' work differs)."""


def _build_kernel() -> Any:
    import numba

    alpha_max = np.float32(ALPHA_MAX)
    alpha_min = np.float32(ALPHA_MIN)
    t_min = np.float32(T_MIN)
    half = np.float32(-0.5)
    one = np.float32(1.0)
    block = BLOCK

    @numba.njit(parallel=True, cache=True, nogil=True)
    def composite(order: Any, point_list: Any, offsets: Any, xy: Any, conic: Any, opac: Any, reach: Any,
                  feats: Any, gx: int, width: int, height: int, out: Any, out_t: Any) -> None:  # pragma: no cover
        ch = feats.shape[1]
        for it in numba.prange(order.shape[0]):
            tile = order[it]
            start = offsets[tile]
            n = offsets[tile + 1] - start
            x0 = (tile % gx) * block
            y0 = (tile // gx) * block
            x1 = min(x0 + block, width)
            y1 = min(y0 + block, height)
            acc = np.zeros((block * block, ch), np.float32)
            tr = np.ones(block * block, np.float32)
            done = np.zeros(block * block, np.bool_)
            row_left = np.full(block, x1 - x0, np.int64)  # pixels of each row still taking Gaussians
            left = (x1 - x0) * (y1 - y0)
            cq = np.empty(block, np.int64)
            cp = np.empty(block, np.float32)
            # Gaussian by Gaussian (front to back), each over the pixels it can reach: every pixel
            # still sees the Gaussians in the CUDA loop's order, so each pixel's sum is the same
            # float32 arithmetic in the same order. Exact culling: alpha = o exp(power) < 1/255
            # whenever power < ln(1/(255 o)); ``reach`` = 2 (-ln(1/(255 o)) + 1e-3) bounds the
            # quadratic form Q = -2 power = a dx^2 + 2 b dx dy + c dy^2 where alpha can reach 1/255:
            # its ellipse's bounding box (|dy| <= sqrt(reach a / det), |dx| <= sqrt(reach c / det))
            # bounds the rows and columns, and a pixel whose power is below -reach / 2 is skipped
            # before its exp (its alpha would be under 1/255 by the margin: the same result).
            for k in range(start, start + n):
                g = point_list[k]
                r = reach[g]
                # the Gaussian's values in locals: stores into the tile's arrays cannot change them
                c0, c1, c2, o = conic[g, 0], conic[g, 1], conic[g, 2], opac[g]
                a = np.float64(c0)
                if r < 0.0 or a <= 0.0:
                    continue
                cc = np.float64(c2)
                gxf = xy[g, 0]
                gyf = xy[g, 1]
                ra = r * (1.0 + 1e-4)
                det = a * cc - np.float64(c1) * np.float64(c1)
                ylo, yhi, xlo, xhi = y0, y1 - 1, x0, x1 - 1
                if det > 0.0:
                    h = math.sqrt(a * ra / det) * (1.0 + 1e-6) + 0.01
                    w = math.sqrt(cc * ra / det) * (1.0 + 1e-6) + 0.01
                    if h < 1e6 and w < 1e6:  # else: the whole tile
                        ylo = max(y0, int(math.ceil(np.float64(gyf) - h)))
                        yhi = min(y1 - 1, int(math.floor(np.float64(gyf) + h)))
                        xlo = max(x0, int(math.ceil(np.float64(gxf) - w)))
                        xhi = min(x1 - 1, int(math.floor(np.float64(gxf) + w)))
                floor_p = np.float32(-0.5 * ra - 1e-4)
                for py in range(ylo, yhi + 1):
                    row = py - y0
                    if row_left[row] == 0:
                        continue
                    dy = gyf - np.float32(py)
                    cdy = c2 * dy * dy  # the row's term of power (the same float32 product)
                    # the row's candidates first, their exps in a loop of their own (the libm call
                    # then does not make the compositing loop spill its registers at every pixel)
                    nc = 0
                    for px in range(xlo, xhi + 1):
                        q = row * block + px - x0
                        if done[q]:
                            continue
                        dx = gxf - np.float32(px)
                        power = half * (c0 * dx * dx + cdy) - c1 * dx * dy
                        if power > 0 or power < floor_p:
                            continue
                        cq[nc] = q
                        cp[nc] = power
                        nc += 1
                    for i in range(nc):
                        cp[i] = math.exp(cp[i])
                    for i in range(nc):
                        q = cq[i]
                        alpha = min(alpha_max, o * cp[i])
                        if alpha < alpha_min:
                            continue
                        t = tr[q]
                        test_t = t * (one - alpha)
                        if test_t < t_min:
                            done[q] = True
                            row_left[row] -= 1
                            left -= 1
                            continue
                        for c in range(ch):
                            acc[q, c] += feats[g, c] * alpha * t
                        tr[q] = test_t
                if left == 0:
                    break
            for c in range(ch):  # channel by channel: contiguous stores into the image
                for py in range(y0, y1):
                    for px in range(x0, x1):
                        out[c, py, px] = acc[(py - y0) * block + px - x0, c]
            for py in range(y0, y1):
                for px in range(x0, x1):
                    out_t[py, px] = tr[(py - y0) * block + px - x0]

    return composite


def _build_prep() -> tuple[Any, Any, Any]:
    import numba

    f32 = np.float32
    near, dil, two, one, half = f32(NEAR_CULL), f32(DILATION), f32(2.0), f32(1.0), f32(0.5)
    eps_w, floor_l, three = f32(1e-7), f32(0.1), f32(3.0)
    block = BLOCK

    @numba.njit(parallel=True, cache=True, nogil=True)
    def project(xyz: Any, scales: Any, rots: Any, view: Any, proj: Any, limx: Any, limy: Any, fx: Any, fy: Any,
                width: int, height: int, xy: Any, depth: Any, conic: Any, radius: Any, rect: Any,
                valid: Any) -> None:  # pragma: no cover - compiled
        gx = (width + block - 1) // block
        gy = (height + block - 1) // block
        for i in numba.prange(xyz.shape[0]):
            valid[i] = False
            x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
            vx = x * view[0, 0] + y * view[1, 0] + z * view[2, 0] + view[3, 0]
            vy = x * view[0, 1] + y * view[1, 1] + z * view[2, 1] + view[3, 1]
            vz = x * view[0, 2] + y * view[1, 2] + z * view[2, 2] + view[3, 2]
            depth[i] = vz
            if not vz > near:
                continue
            hx = x * proj[0, 0] + y * proj[1, 0] + z * proj[2, 0] + proj[3, 0]
            hy = x * proj[0, 1] + y * proj[1, 1] + z * proj[2, 1] + proj[3, 1]
            hw = x * proj[0, 3] + y * proj[1, 3] + z * proj[2, 3] + proj[3, 3]
            pw = one / (hw + eps_w)
            # 3D covariance M M^T, M = R(q) diag(s), q used as given (not normalised)
            r, qx, qy, qz = rots[i, 0], rots[i, 1], rots[i, 2], rots[i, 3]
            s0, s1, s2 = scales[i, 0], scales[i, 1], scales[i, 2]
            m = np.empty((3, 3), np.float32)
            m[0, 0] = (one - two * (qy * qy + qz * qz)) * s0
            m[0, 1] = two * (qx * qy - r * qz) * s1
            m[0, 2] = two * (qx * qz + r * qy) * s2
            m[1, 0] = two * (qx * qy + r * qz) * s0
            m[1, 1] = (one - two * (qx * qx + qz * qz)) * s1
            m[1, 2] = two * (qy * qz - r * qx) * s2
            m[2, 0] = two * (qx * qz - r * qy) * s0
            m[2, 1] = two * (qy * qz + r * qx) * s1
            m[2, 2] = (one - two * (qx * qx + qy * qy)) * s2
            # EWA: T = J @ V3^T @ M (2x3); 2D covariance T T^T
            tx = min(limx, max(-limx, vx / vz)) * vz
            ty = min(limy, max(-limy, vy / vz)) * vz
            j00, j02 = fx / vz, -(fx * tx) / (vz * vz)
            j11, j12 = fy / vz, -(fy * ty) / (vz * vz)
            a0 = np.empty(3, np.float32)
            a1 = np.empty(3, np.float32)
            for c in range(3):
                a0[c] = j00 * view[c, 0] + j02 * view[c, 2]
                a1[c] = j11 * view[c, 1] + j12 * view[c, 2]
            t0 = np.empty(3, np.float32)
            t1 = np.empty(3, np.float32)
            for c in range(3):
                t0[c] = a0[0] * m[0, c] + a0[1] * m[1, c] + a0[2] * m[2, c]
                t1[c] = a1[0] * m[0, c] + a1[1] * m[1, c] + a1[2] * m[2, c]
            a = t0[0] * t0[0] + t0[1] * t0[1] + t0[2] * t0[2] + dil
            b = t0[0] * t1[0] + t0[1] * t1[1] + t0[2] * t1[2]
            c2 = t1[0] * t1[0] + t1[1] * t1[1] + t1[2] * t1[2] + dil
            det = a * c2 - b * b
            if det == 0 or not math.isfinite(det):
                continue
            det_inv = one / det
            conic[i, 0], conic[i, 1], conic[i, 2] = c2 * det_inv, -b * det_inv, a * det_inv
            mid = half * (a + c2)
            root = math.sqrt(max(floor_l, mid * mid - det))
            rad = math.ceil(three * math.sqrt(max(mid + root, mid - root)))
            px = ((hx * pw + one) * width - one) * half
            py = ((hy * pw + one) * height - one) * half
            xy[i, 0], xy[i, 1] = px, py
            radius[i] = rad
            if not (math.isfinite(px) and math.isfinite(py) and math.isfinite(rad)):
                continue
            # tile rectangle: trunc toward zero then clamp (values clamped first so the cast is safe)
            xmin = int(min(max((px - rad) / block, -1.0), gx + 1.0))
            xmax = int(min(max((px + rad + block - 1) / block, -1.0), gx + 1.0))
            ymin = int(min(max((py - rad) / block, -1.0), gy + 1.0))
            ymax = int(min(max((py + rad + block - 1) / block, -1.0), gy + 1.0))
            rect[i, 0], rect[i, 1] = min(gx, max(0, xmin)), min(gy, max(0, ymin))
            rect[i, 2], rect[i, 3] = min(gx, max(0, xmax)), min(gy, max(0, ymax))
            if (rect[i, 2] - rect[i, 0]) * (rect[i, 3] - rect[i, 1]) > 0:
                valid[i] = True

    @numba.njit(parallel=True, cache=True, nogil=True)
    def bin_pairs(order: Any, rect: Any, xy: Any, conic: Any, opac: Any, width: int, height: int,
                  parts: int) -> tuple[Any, Any]:  # pragma: no cover - compiled
        """A stable counting sort by tile of the depth-ordered pairs, in ``parts`` consecutive slices
        of ``order`` at once: each slice counts its pairs per tile (round 0), a prefix sum over
        (tile, slice) gives every slice its place in each tile's list, then the slices place their
        pairs (round 1). One body for both rounds (a jitted helper called from here would make
        numba's on-disk cache miss in every new process: it recompiled this kernel each time)."""
        gx = (width + block - 1) // block
        gy = (height + block - 1) // block
        tiles = gx * gy
        n = order.shape[0]
        step = (n + parts - 1) // parts
        counts = np.zeros((parts, tiles), np.int64)
        fill = np.zeros((parts, tiles), np.int64)
        offsets = np.zeros(tiles + 1, np.int64)
        point_list = np.empty(0, np.int64)
        for rnd in range(2):
            if rnd == 1:
                run = 0
                for t in range(tiles):
                    offsets[t] = run
                    for s in range(parts):
                        fill[s, t] = run
                        run += counts[s, t]
                offsets[tiles] = run
                point_list = np.empty(run, np.int64)
            for s in numba.prange(parts):
                for j in range(s * step, min(n, (s + 1) * step)):
                    i = order[j]
                    o = np.float64(opac[i])
                    thr = math.log(1.0 / (255.0 * o)) if o > 0.0 else np.inf
                    a, b, c = np.float64(conic[i, 0]), np.float64(conic[i, 1]), np.float64(conic[i, 2])
                    det = a * c - b * b
                    checkable = a > 0.0 and c > 0.0 and det > 0.0
                    px, py = np.float64(xy[i, 0]), np.float64(xy[i, 1])
                    for ty in range(rect[i, 1], rect[i, 3]):
                        y0 = ty * block
                        dy = max(0.0, y0 - py, py - min(y0 + block - 1, height - 1))
                        for tx in range(rect[i, 0], rect[i, 2]):
                            x0 = tx * block
                            dx = max(0.0, x0 - px, px - min(x0 + block - 1, width - 1))
                            if checkable:  # alpha < 1/255 everywhere in the tile: the pair changes nothing
                                bound = min(-0.5 * dy * dy * det / a, -0.5 * dx * dx * det / c)
                                if bound < thr - 1e-3 - 1e-4 * abs(bound):
                                    continue
                            t = ty * gx + tx
                            if rnd == 0:
                                counts[s, t] += 1
                            else:
                                point_list[fill[s, t]] = i
                                fill[s, t] += 1
        return point_list, offsets

    @numba.njit(parallel=True, cache=True, nogil=True)
    def reach_of(opac: Any, reach: Any) -> None:  # pragma: no cover - compiled
        """reach[i] = 2 (1e-3 - ln(1/(255 o))): Q = a dx^2 + 2 b dx dy + c dy^2 above it means alpha <
        1/255 (with a margin for rounding); -1 for o <= 0 (never visible)."""
        for i in numba.prange(opac.shape[0]):
            o = np.float64(opac[i])
            reach[i] = 2.0 * (1e-3 - math.log(1.0 / (255.0 * o))) if o > 0.0 else -1.0

    return project, bin_pairs, reach_of


def preprocess_numba(xyz: Any, scales: Any, rotations: Any, camera: Any) -> Projected:
    """:func:`~artalk_core.render.avatar.rasterize.preprocess` as a numba kernel (CPU tensors out)."""
    import torch

    global _PREP
    if _PREP is None:
        _PREP = _build_prep()
    n = int(xyz.shape[0])
    xy = np.zeros((n, 2), np.float32)
    depth = np.zeros(n, np.float32)
    conic = np.zeros((n, 3), np.float32)
    radius = np.zeros(n, np.float32)
    rect = np.zeros((n, 4), np.int64)
    valid = np.zeros(n, np.bool_)
    f = np.float32
    _PREP[0](_arr(xyz, np.float32), _arr(scales, np.float32), _arr(rotations, np.float32),
             _arr(camera.viewmatrix, np.float32), _arr(camera.projmatrix, np.float32), f(1.3 * camera.tanfovx),
             f(1.3 * camera.tanfovy), f(camera.focal_x), f(camera.focal_y), int(camera.width), int(camera.height),
             xy, depth, conic, radius, rect, valid)
    gx, gy = (camera.width + BLOCK - 1) // BLOCK, (camera.height + BLOCK - 1) // BLOCK
    return Projected(means2d=torch.from_numpy(xy), depth=torch.from_numpy(depth), conic=torch.from_numpy(conic),
                     radius=torch.from_numpy(radius).to(torch.int32), valid=torch.from_numpy(valid),
                     rect=torch.from_numpy(rect), grid=(gx, gy))


def bin_tiles_numba(pr: Projected, opacity: Any, size: tuple[int, int], *, parts: int = 0) -> tuple[Any, Any]:
    """:func:`~artalk_core.render.avatar.rasterize.bin_tiles` (with the faint-pair culling) in numba,
    the depth-ordered Gaussians binned in ``parts`` slices at once (0: BIN_PARTS per numba thread)."""
    import numba
    import torch

    global _PREP
    if _PREP is None:
        _PREP = _build_prep()
    valid = _arr(pr.valid, np.bool_)
    ids = np.flatnonzero(valid)
    order = ids[np.argsort(_arr(pr.depth, np.float32)[ids], kind="stable")].astype(np.int64)
    point_list, offsets = _PREP[1](order, _arr(pr.rect, np.int64), _arr(pr.means2d, np.float32),
                                   _arr(pr.conic, np.float32), _arr(opacity.reshape(-1), np.float32),
                                   int(size[0]), int(size[1]), parts or BIN_PARTS * numba.get_num_threads())
    return torch.from_numpy(point_list), torch.from_numpy(offsets)


def _arr(t: Any, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu").numpy(), dtype=dtype)


def composite_numba(pr: Projected, point_list: Any, offsets: Any, features: Any, opacity: Any,
                    width: int, height: int) -> tuple[Any, Any]:
    """(image [C,H,W], transmittance [H,W]) float32 CPU tensors of the binned Gaussians."""
    import numba
    import torch

    global _KERNEL, _PREP
    if _KERNEL is None:
        _KERNEL = _build_kernel()
    if _PREP is None:
        _PREP = _build_prep()
    feats = _arr(features, np.float32)
    opac = _arr(opacity.reshape(-1), np.float32)
    reach = np.empty(opac.shape[0], np.float64)
    _PREP[2](opac, reach)
    out = np.empty((feats.shape[1], height, width), np.float32)
    out_t = np.empty((height, width), np.float32)
    counts = (offsets[1:] - offsets[:-1]).detach().to("cpu").numpy()
    # Longest lists first, handed out one tile at a time: the threads finish together although the
    # face's tiles hold far more Gaussians than the background's.
    order = np.argsort(-counts, kind="stable").astype(np.int64)
    with numba.parallel_chunksize(1):
        _KERNEL(order, _arr(point_list, np.int64), _arr(offsets, np.int64), _arr(pr.means2d, np.float32),
                _arr(pr.conic, np.float32), opac, reach, feats, pr.grid[0], width, height, out, out_t)
    return torch.from_numpy(out), torch.from_numpy(out_t)
