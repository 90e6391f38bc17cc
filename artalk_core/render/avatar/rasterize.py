"""The 32-channel Gaussian rasterizer of GAGAvatar, forward only (GAGAVATAR.md §5), on any device.

The reference uses the Inria 3DGS CUDA extension (a 32-channel build), which needs a CUDA toolkit to
install and never runs on a CPU; no pip package has its exact behaviour (gsplat clamps alpha at
0.999, centres pixels at +0.5, and needs CUDA too). So the behaviour is re-implemented here from the
spec: EWA projection with the 0.3 px^2 dilation, alpha = min(0.99, o exp(power)), skip alpha < 1/255
and power > 0, front-to-back by depth per 16x16 tile, stop a pixel when T (1 - alpha) < 1e-4 without
adding that Gaussian, cull z_view <= 0.2 only (no x/y frustum cull), quaternions used as given.

Backends: ``torch`` (vectorised tiles, any device), ``numba`` (a compiled per-pixel loop, CPU, the
``artalk[fast]`` extra; the default on CPU when importable), ``cuda`` (the reference's CUDA module
``diff_gaussian_rasterization_32d`` when importable and the tensors are on CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from artalk_core.errors import DependencyError, InputError
from artalk_core.render.avatar.camera import Camera

BLOCK: int = 16
"""Tile side in pixels."""
ALPHA_MAX: float = float(np.float32(0.99))
ALPHA_MIN: float = float(np.float32(1.0) / np.float32(255.0))
T_MIN: float = float(np.float32(1e-4))
NEAR_CULL: float = 0.2
DILATION: float = 0.3
BACKENDS = ("auto", "torch", "numba", "cuda")
CUDA_MODULE = "diff_gaussian_rasterization_32d"
TILE_BUDGET: dict[str, int] = {"cpu": 1 << 21, "cuda": 1 << 25}
"""Pixel x Gaussian evaluations held at once by the torch backend (memory bound per temporary)."""
LIST_BLOCK: int = 256
"""Gaussians of a tile's list composited per step by the torch backend (saturated pixels stop)."""


class GaussianSet(Protocol):
    """xyz [N,3], colors [N,C], opacities [N,1], scales [N,3], rotations [N,4] (w,x,y,z)."""

    xyz: Any
    colors: Any
    opacities: Any
    scales: Any
    rotations: Any


@dataclass
class Projected:
    """Per-Gaussian screen-space data: ``means2d`` [N,2] (pixel centres at integers), ``depth`` [N]
    (z_view), ``conic`` [N,3] (inverse 2D covariance a, b, c), ``radius`` [N] int32, ``valid`` [N]
    bool, ``rect`` [N,4] int64 tile rectangle (xmin, ymin, xmax, ymax), grid size in tiles."""

    means2d: Any
    depth: Any
    conic: Any
    radius: Any
    valid: Any
    rect: Any
    grid: tuple[int, int]
    frame_rows: int = 0
    """Tile rows per frame when several frames are stacked vertically (0: one frame, grid[1])."""

    @property
    def rows_per_frame(self) -> int:
        return self.frame_rows or self.grid[1]


def preprocess(xyz: Any, scales: Any, rotations: Any, camera: Camera) -> Projected:
    """Project every Gaussian (§5.1 steps 1-9), all in float32 tensor ops on their device."""
    import torch

    f32 = torch.float32
    xyz, scales, rotations = xyz.to(f32), scales.to(f32), rotations.to(f32)
    view = camera.viewmatrix.to(xyz)
    proj = camera.projmatrix.to(xyz)
    p_view = xyz @ view[:3, :3] + view[3, :3]
    hom = xyz @ proj[:3, :] + proj[3, :]
    p_w = 1.0 / (hom[:, 3] + 1e-7)
    ndc_x, ndc_y = hom[:, 0] * p_w, hom[:, 1] * p_w

    # 3D covariance R S S^T R^T with R of the quaternion as given (not normalised).
    r, x, y, z = rotations.unbind(1)
    rot = torch.stack([
        1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - r * z), 2.0 * (x * z + r * y),
        2.0 * (x * y + r * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - r * x),
        2.0 * (x * z - r * y), 2.0 * (y * z + r * x), 1.0 - 2.0 * (x * x + y * y)], dim=1).view(-1, 3, 3)
    m = rot * scales.unsqueeze(1)  # R @ diag(s)

    # EWA: J (clamped to 1.3 tan(fov)) @ world->view rotation.
    tz = p_view[:, 2]
    limx, limy = 1.3 * camera.tanfovx, 1.3 * camera.tanfovy
    tx = torch.clamp(p_view[:, 0] / tz, -limx, limx) * tz
    ty = torch.clamp(p_view[:, 1] / tz, -limy, limy) * tz
    fx, fy = camera.focal_x, camera.focal_y
    zeros = torch.zeros_like(tz)
    jac = torch.stack([fx / tz, zeros, -(fx * tx) / (tz * tz),
                       zeros, fy / tz, -(fy * ty) / (tz * tz)], dim=1).view(-1, 2, 3)
    t = jac @ view[:3, :3].transpose(0, 1) @ m  # [N,2,3]
    cov = t @ t.transpose(1, 2)
    a = cov[:, 0, 0] + DILATION
    b = cov[:, 0, 1]
    c = cov[:, 1, 1] + DILATION
    det = a * c - b * b
    det_inv = 1.0 / torch.where(det == 0, torch.ones_like(det), det)
    conic = torch.stack([c * det_inv, -b * det_inv, a * det_inv], dim=1)
    mid = 0.5 * (a + c)
    root = torch.sqrt(torch.clamp_min(mid * mid - det, 0.1))
    radius = torch.ceil(3.0 * torch.sqrt(torch.maximum(mid + root, mid - root)))
    radius = torch.nan_to_num(radius, nan=0.0, posinf=0.0, neginf=0.0)

    w, h = camera.width, camera.height
    px = ((ndc_x + 1.0) * w - 1.0) * 0.5
    py = ((ndc_y + 1.0) * h - 1.0) * 0.5
    gx, gy = (w + BLOCK - 1) // BLOCK, (h + BLOCK - 1) // BLOCK

    def span(p: Any, n: int) -> tuple[Any, Any]:
        lo = torch.clamp(torch.trunc(torch.nan_to_num((p - radius) / BLOCK)), 0, n)
        hi = torch.clamp(torch.trunc(torch.nan_to_num((p + radius + BLOCK - 1) / BLOCK)), 0, n)
        return lo.long(), hi.long()

    xmin, xmax = span(px, gx)
    ymin, ymax = span(py, gy)
    valid = (tz > NEAR_CULL) & (det != 0) & ((xmax - xmin) * (ymax - ymin) > 0) & torch.isfinite(det)
    return Projected(means2d=torch.stack([px, py], dim=1), depth=tz, conic=conic, radius=radius.to(torch.int32),
                     valid=valid, rect=torch.stack([xmin, ymin, xmax, ymax], dim=1), grid=(gx, gy))


def _faint_pairs(pr: Projected, g: Any, tile: Any, opacity: Any, width: int, height: int) -> Any:
    """Mask of (Gaussian g, tile) pairs where alpha < 1/255 at every pixel of the tile, which the
    compositing would skip anyway (exact culling, it only saves work).

    alpha = o exp(power) < 1/255 when power < ln(1/(255 o)); over the tile's pixels, power is at most
    -dy^2 det/(2 a) and at most -dx^2 det/(2 c) (conic (a, b, c), det = ac - b^2; dx, dy the distance
    from the centre to the tile's pixel range). Computed in float64 with a margin for rounding.
    """
    import torch

    gx = pr.grid[0]
    f64 = torch.float64
    px, py = pr.means2d[g, 0].to(f64), pr.means2d[g, 1].to(f64)
    con = pr.conic[g].to(f64)
    x0 = (tile % gx).to(f64) * BLOCK
    y0 = ((tile // gx) % pr.rows_per_frame).to(f64) * BLOCK  # in the tile's own frame
    x1 = torch.clamp(x0 + BLOCK - 1, max=width - 1)
    y1 = torch.clamp(y0 + BLOCK - 1, max=height - 1)
    dx = torch.clamp(torch.maximum(x0 - px, px - x1), min=0.0)
    dy = torch.clamp(torch.maximum(y0 - py, py - y1), min=0.0)
    det = con[:, 0] * con[:, 2] - con[:, 1] ** 2
    a = torch.where(con[:, 0] > 0, con[:, 0], torch.ones_like(det))
    c = torch.where(con[:, 2] > 0, con[:, 2], torch.ones_like(det))
    ok = (con[:, 0] > 0) & (con[:, 2] > 0) & (det > 0)
    bound = torch.minimum(-0.5 * dy * dy * det / a, -0.5 * dx * dx * det / c)
    o = opacity.reshape(-1)[g].to(f64)
    thr = torch.where(o > 0, torch.log(1.0 / (255.0 * torch.clamp_min(o, 1e-30))), torch.full_like(o, float("inf")))
    return ok & (bound < thr - 1e-3 - 1e-4 * bound.abs())


def bin_tiles(pr: Projected, opacity: Any = None, size: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """(Gaussian ids of every (tile, Gaussian) pair ordered by tile then depth then index [P] long,
    per-tile list offsets [tiles+1] long) -- the order of the reference's stable 64-bit key sort.

    With ``opacity`` [N,1] and the image ``size`` (width, height), pairs whose Gaussian is too faint
    to reach alpha 1/255 anywhere in the tile are left out (exact: the compositing skips them)."""
    import torch

    dev = pr.depth.device
    ids = torch.nonzero(pr.valid).squeeze(1)
    order = torch.argsort(pr.depth[ids], stable=True)  # ties keep ascending Gaussian index
    ids = ids[order]
    rect = pr.rect[ids]
    width = rect[:, 2] - rect[:, 0]
    counts = width * (rect[:, 3] - rect[:, 1])
    total = int(counts.sum())
    gx, gy = pr.grid
    offsets = torch.zeros(gx * gy + 1, dtype=torch.long, device=dev)
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=dev), offsets
    starts = torch.cumsum(counts, 0) - counts
    k = torch.arange(total, device=dev) - torch.repeat_interleave(starts, counts)
    w_rep = torch.repeat_interleave(width, counts)
    tile = ((torch.repeat_interleave(rect[:, 1], counts) + k // w_rep) * gx
            + torch.repeat_interleave(rect[:, 0], counts) + k % w_rep)
    g = torch.repeat_interleave(ids, counts)
    if opacity is not None and size is not None:
        keep = ~_faint_pairs(pr, g, tile, opacity, size[0], size[1])
        g, tile = g[keep], tile[keep]
    tile_sorted, perm = torch.sort(tile, stable=True)
    point_list = g[perm]
    offsets[1:] = torch.cumsum(torch.bincount(tile_sorted, minlength=gx * gy), 0)
    return point_list, offsets


def _composite_torch(pr: Projected, point_list: Any, offsets: Any, features: Any, opacity: Any,
                     width: int, height: int) -> tuple[Any, Any]:
    """Front-to-back compositing of every tile with tensor ops (§5.4): per tile chunk and per block of
    its list, alpha [tiles,256,L] -> T by a cumulative product carried from the previous block."""
    import torch

    dev = features.device
    ch = features.shape[1]
    gx, gy = pr.grid
    image = torch.zeros((gy * BLOCK, gx * BLOCK, ch), dtype=torch.float32, device=dev)
    trans = torch.ones((gy * BLOCK, gx * BLOCK), dtype=torch.float32, device=dev)
    counts = offsets[1:] - offsets[:-1]
    tiles = torch.nonzero(counts).squeeze(1)
    if tiles.numel() == 0:
        return image[:height, :width].permute(2, 0, 1), trans[:height, :width]
    tiles = tiles[torch.argsort(counts[tiles], descending=True)]
    local = torch.arange(BLOCK * BLOCK, device=dev)
    lx = (local % BLOCK).to(torch.float32)
    ly = (local // BLOCK).to(torch.float32)
    budget = TILE_BUDGET.get(dev.type, TILE_BUDGET["cpu"])
    chunk = max(1, budget // (BLOCK * BLOCK * LIST_BLOCK))
    xy, conic, opac = pr.means2d, pr.conic, opacity.reshape(-1).to(torch.float32)
    arange_l = torch.arange(LIST_BLOCK, device=dev)
    for c0 in range(0, tiles.numel(), chunk):
        tid = tiles[c0:c0 + chunk]
        pix_x = (tid % gx).to(torch.float32).unsqueeze(1) * BLOCK + lx  # [nt,256]
        pix_y = ((tid // gx) % pr.rows_per_frame).to(torch.float32).unsqueeze(1) * BLOCK + ly
        t_cur = torch.ones(pix_x.shape, dtype=torch.float32, device=dev)
        done = torch.zeros(pix_x.shape, dtype=torch.bool, device=dev)
        acc = torch.zeros(pix_x.shape + (ch,), dtype=torch.float32, device=dev)
        start, n = offsets[tid], counts[tid]
        active = torch.arange(tid.numel(), device=dev)
        for b0 in range(0, int(n.max()), LIST_BLOCK):
            pos = b0 + arange_l  # [L]
            keep = (n[active] > b0) & ~done[active].all(dim=1)
            active = active[keep]
            if active.numel() == 0:
                break
            inside = pos.unsqueeze(0) < n[active].unsqueeze(1)  # [na,L]
            g = point_list[torch.where(inside, start[active].unsqueeze(1) + pos, 0)]
            dx = xy[g, 0].unsqueeze(1) - pix_x[active].unsqueeze(2)  # [na,256,L]
            dy = xy[g, 1].unsqueeze(1) - pix_y[active].unsqueeze(2)
            cg = conic[g].unsqueeze(1)
            power = -0.5 * (cg[..., 0] * dx * dx + cg[..., 2] * dy * dy) - cg[..., 1] * dx * dy
            alpha = torch.clamp_max(opac[g].unsqueeze(1) * torch.exp(power), ALPHA_MAX)
            skip = (power > 0) | (alpha < ALPHA_MIN) | ~inside.unsqueeze(1)
            alpha = torch.where(skip, torch.zeros_like(alpha), alpha)
            t0 = t_cur[active]
            seq = torch.cumprod(torch.cat([t0.unsqueeze(2), 1.0 - alpha], dim=2), dim=2)
            t_excl, t_incl = seq[..., :-1], seq[..., 1:]
            alive = (t_incl >= T_MIN) & ~done[active].unsqueeze(2)
            weights = torch.where(alive, alpha * t_excl, torch.zeros_like(alpha))
            acc[active] += torch.bmm(weights, features[g])
            t_cur[active] = torch.where(alive, t_incl, t0.unsqueeze(2)).amin(dim=2)
            done[active] = done[active] | (t_incl[..., -1] < T_MIN)
        ty, tx = (tid // gx), (tid % gx)
        rows = (ty.unsqueeze(1) * BLOCK + local // BLOCK)
        cols = (tx.unsqueeze(1) * BLOCK + local % BLOCK)
        image[rows, cols] = acc
        trans[rows, cols] = t_cur
    return image[:height, :width].permute(2, 0, 1), trans[:height, :width]


def numba_available() -> bool:
    """Whether the compiled CPU backend can be used (numba importable)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def cuda_module_available() -> bool:
    import importlib.util

    return importlib.util.find_spec(CUDA_MODULE) is not None


def choose_backend(backend: str, device: Any) -> str:
    """The backend ``render_features`` will use for tensors on ``device`` ('auto' resolved):
    CUDA tensors -> the reference CUDA module if importable, else torch; CPU -> numba if importable,
    else torch. DependencyError when an explicit choice cannot run."""
    import torch

    dev = torch.device(device)
    if backend not in BACKENDS:
        raise InputError(f"unknown rasterizer backend '{backend}': choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if dev.type == "cuda":
            return "cuda" if cuda_module_available() else "torch"
        return "numba" if dev.type == "cpu" and numba_available() else "torch"
    if backend == "numba" and not numba_available():
        raise DependencyError("the numba rasterizer needs numba: pip install 'artalk[fast]' (or use the torch backend)")
    if backend == "cuda":
        if dev.type != "cuda":
            raise InputError("the cuda rasterizer backend needs the tensors on a CUDA device")
        if not cuda_module_available():
            raise DependencyError(f"the cuda rasterizer backend needs the reference's {CUDA_MODULE} module "
                                  f"(built from source with a CUDA toolkit); use the torch backend instead")
    return backend


def render_features(gaussians: GaussianSet, camera: Camera, *, backend: str = "auto",
                    bg: float | Any = 0.0) -> tuple[Any, Any]:
    """Rasterize Gaussians (xyz filled) to (image [C,H,W], transmittance [H,W]) float32 on their device.

    ``bg``: a scalar or [C] background added as ``T * bg``. The ``cuda`` backend returns no
    transmittance (None): the reference module does not output it. Which backend ran:
    :func:`choose_backend` with the same arguments.
    """
    import torch

    features = gaussians.colors.to(torch.float32)
    chosen = choose_backend(backend, features.device)
    if chosen == "cuda":
        return _render_cuda(gaussians, camera, bg)
    size = (camera.width, camera.height)
    if chosen == "numba":
        from artalk_core.render.avatar import rasterize_numba as nb

        pr = nb.preprocess_numba(gaussians.xyz, gaussians.scales, gaussians.rotations, camera)
        point_list, offsets = nb.bin_tiles_numba(pr, gaussians.opacities, size)
        image, trans = nb.composite_numba(pr, point_list, offsets, features, gaussians.opacities,
                                          camera.width, camera.height)
    else:
        pr = preprocess(gaussians.xyz, gaussians.scales, gaussians.rotations, camera)
        point_list, offsets = bin_tiles(pr, gaussians.opacities, size)
        image, trans = _composite_torch(pr, point_list, offsets, features, gaussians.opacities,
                                        camera.width, camera.height)
    bg_t = torch.as_tensor(bg, dtype=torch.float32, device=image.device).reshape(-1, 1, 1)
    if bool((bg_t != 0).any()):
        image = image + trans.unsqueeze(0) * bg_t
    return image, trans


def render_features_batch(gaussians: GaussianSet, xyz: Any, cameras: list[Camera], *, backend: str = "auto",
                          bg: float | Any = 0.0) -> tuple[Any, Any]:
    """Several frames of the same Gaussians at positions ``xyz`` [B,N,3] seen by ``cameras`` (B, one
    size) -> (images [B,C,H,W], transmittance [B,H,W] or None for the cuda backend).

    The torch backend composites all frames in one pass (their tiles stacked, so a GPU runs a few
    large launches instead of many small ones per frame); the others render frame by frame.
    """
    import dataclasses

    import torch

    chosen = choose_backend(backend, gaussians.colors.device)
    if chosen != "torch" or len(cameras) == 1:
        outs = [render_features(dataclasses.replace(gaussians, xyz=xyz[b]) if dataclasses.is_dataclass(gaussians)
                                else _with_xyz(gaussians, xyz[b]), cam, backend=chosen, bg=bg)
                for b, cam in enumerate(cameras)]
        trans = None if outs[0][1] is None else torch.stack([o[1] for o in outs])
        return torch.stack([o[0] for o in outs]), trans
    w, h = cameras[0].width, cameras[0].height
    if any((c.width, c.height) != (w, h) for c in cameras):
        raise InputError("frames rendered together must have one size")
    prs = [preprocess(xyz[b], gaussians.scales, gaussians.rotations, cam) for b, cam in enumerate(cameras)]
    gx, gy = prs[0].grid
    shift = torch.tensor([0, 1, 0, 1], device=prs[0].rect.device)
    # frame b's tiles are rows b*gy .. (b+1)*gy-1 of one tall grid; positions stay in frame coordinates
    pr = Projected(means2d=torch.cat([p.means2d for p in prs]), depth=torch.cat([p.depth for p in prs]),
                   conic=torch.cat([p.conic for p in prs]), radius=torch.cat([p.radius for p in prs]),
                   valid=torch.cat([p.valid for p in prs]),
                   rect=torch.cat([p.rect + shift * (b * gy) for b, p in enumerate(prs)]),
                   grid=(gx, gy * len(prs)), frame_rows=gy)
    features = gaussians.colors.to(torch.float32).repeat(len(prs), 1)
    opacity = gaussians.opacities.repeat(len(prs), 1)
    point_list, offsets = bin_tiles(pr, opacity, (w, h))
    image, trans = _composite_torch(pr, point_list, offsets, features, opacity, w, gy * BLOCK * len(prs))
    rows = gy * BLOCK
    images = image.reshape(image.shape[0], len(prs), rows, w).permute(1, 0, 2, 3)[:, :, :h]
    trans = trans.reshape(len(prs), rows, w)[:, :h]
    bg_t = torch.as_tensor(bg, dtype=torch.float32, device=images.device).reshape(1, -1, 1, 1)
    if bool((bg_t != 0).any()):
        images = images + trans.unsqueeze(1) * bg_t
    return images, trans


def _with_xyz(gaussians: GaussianSet, xyz: Any) -> GaussianSet:
    from types import SimpleNamespace

    return SimpleNamespace(xyz=xyz, colors=gaussians.colors, opacities=gaussians.opacities,
                           scales=gaussians.scales, rotations=gaussians.rotations)


def _render_cuda(gaussians: GaussianSet, camera: Camera, bg: float | Any) -> tuple[Any, Any]:
    """The reference's CUDA module, called with the reference's settings (forward only)."""
    import importlib

    import torch

    mod = importlib.import_module(CUDA_MODULE)
    dev = gaussians.xyz.device
    ch = gaussians.colors.shape[1]
    bg_t = torch.as_tensor(bg, dtype=torch.float32, device=dev).reshape(-1).expand(ch).contiguous()
    settings = mod.GaussianRasterizationSettings(
        image_height=camera.height, image_width=camera.width, tanfovx=camera.tanfovx, tanfovy=camera.tanfovy,
        bg=bg_t, scale_modifier=1.0, viewmatrix=camera.viewmatrix.to(dev), projmatrix=camera.projmatrix.to(dev),
        sh_degree=0, campos=camera.viewmatrix[3, :3].to(dev), prefiltered=False, debug=False)
    means2d = torch.zeros_like(gaussians.xyz)
    out = mod.GaussianRasterizer(raster_settings=settings)(
        means3D=gaussians.xyz, means2D=means2d, shs=None, colors_precomp=gaussians.colors,
        opacities=gaussians.opacities, scales=gaussians.scales, rotations=gaussians.rotations, cov3D_precomp=None)
    return out[0], None
