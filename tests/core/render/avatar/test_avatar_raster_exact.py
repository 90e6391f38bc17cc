"""The numba rasterizer against the CUDA compositing loop transcribed literally, bit for bit.

The literal loop (below, compiled by numba without any culling) runs every pixel over its tile's
whole list (no faint-pair culling) in depth order until T would fall below 1e-4, with the
reference's float32 expressions. The production kernel culls pairs, rows, columns and pixels and
splits the per-pixel work into passes; each pixel must still get exactly the same float32 sum.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.render.avatar import rasterize as R
from artalk_core.render.avatar import rasterize_numba as nb
from artalk_core.render.avatar.camera import build_camera

FIX = Path(__file__).resolve().parents[3] / "fixtures" / "tiny_gaga"


@pytest.fixture(scope="module")
def literal() -> Any:
    import math

    import numba

    f32 = np.float32
    amax, amin, tmin, half, one = f32(R.ALPHA_MAX), f32(R.ALPHA_MIN), f32(R.T_MIN), f32(-0.5), f32(1.0)
    block = R.BLOCK

    @numba.njit
    def composite(point_list: Any, offsets: Any, xy: Any, conic: Any, opac: Any, feats: Any, gx: int,
                  width: int, height: int) -> tuple[Any, Any]:  # pragma: no cover - compiled
        out = np.zeros((feats.shape[1], height, width), np.float32)
        out_t = np.ones((height, width), np.float32)
        for py in range(height):
            for px in range(width):
                tile = (py // block) * gx + px // block
                t = one
                for k in range(offsets[tile], offsets[tile + 1]):
                    g = point_list[k]
                    dx = xy[g, 0] - np.float32(px)
                    dy = xy[g, 1] - np.float32(py)
                    power = half * (conic[g, 0] * dx * dx + conic[g, 2] * dy * dy) - conic[g, 1] * dx * dy
                    if power > 0:
                        continue
                    alpha = min(amax, opac[g] * math.exp(power))
                    if alpha < amin:
                        continue
                    test_t = t * (one - alpha)
                    if test_t < tmin:
                        break
                    for c in range(feats.shape[1]):
                        out[c, py, px] += feats[g, c] * alpha * t
                    t = test_t
                out_t[py, px] = t
        return out, out_t

    def run(g: Any, cam: Any) -> tuple[Any, Any]:
        pr = nb.preprocess_numba(g.xyz, g.scales, g.rotations, cam)  # the kernel's own projection
        point_list, offsets = R.bin_tiles(pr)  # every pair: no culling at all
        return composite(point_list.numpy(), offsets.numpy(), pr.means2d.numpy(), pr.conic.numpy(),
                         g.opacities.reshape(-1).numpy(), g.colors.numpy(), pr.grid[0], cam.width, cam.height)

    return run


def _scene(n: int, size: int, seed: int, *, scale: float = 0.04, opacity: float = 0.9) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    g = SimpleNamespace(
        xyz=(torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([1.2, 1.2, 2.0]),
        colors=torch.randn(n, 32, generator=gen),
        opacities=torch.rand(n, 1, generator=gen) * opacity + 0.002,
        scales=torch.rand(n, 3, generator=gen) * scale + 0.002,
        rotations=torch.randn(n, 4, generator=gen) * 0.7)
    return g, build_camera(torch.tensor([[1.0, 0, 0, 0.02], [0, 1, 0, -0.03], [0, 0, 1, 5]]), size=size)


@pytest.mark.parametrize(("n", "size", "seed", "scale", "opacity"), [
    (3000, 72, 0, 0.04, 0.9),    # dense: most pixels stop early; 72 px: partial last tiles
    (1500, 40, 1, 0.01, 0.9),    # small Gaussians: bounding boxes inside tiles
    (2000, 48, 2, 0.08, 0.05),   # large and faint: pairs, rows and pixels culled by the 1/255 floor
    (600, 33, 3, 0.3, 0.6),      # huge: every Gaussian covers several tiles
])
def test_numba_kernel_equals_the_literal_loop_bit_for_bit(literal: Any, n: int, size: int, seed: int,
                                                          scale: float, opacity: float) -> None:
    g, cam = _scene(n, size, seed, scale=scale, opacity=opacity)
    want, want_t = literal(g, cam)
    got, got_t = R.render_features(g, cam, backend="numba")
    assert np.array_equal(got.numpy(), want) and np.array_equal(got_t.numpy(), want_t)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fixture_scenes_bit_for_bit(literal: Any, k: int) -> None:
    from safetensors.torch import load_file

    exp = load_file(str(FIX / "expected.safetensors"))
    p = f"raster.scene{k}."
    g = SimpleNamespace(xyz=exp[p + "xyz"], colors=exp[p + "colors"], opacities=exp[p + "opacities"],
                        scales=exp[p + "scales"], rotations=exp[p + "rotations"])
    cam = build_camera(exp[p + "cam_matrix"], size=64)
    want, want_t = literal(g, cam)
    got, got_t = R.render_features(g, cam, backend="numba")
    assert np.array_equal(got.numpy(), want) and np.array_equal(got_t.numpy(), want_t)


def test_parallel_binning_equals_the_sorted_pairs() -> None:
    """The binning in slices (any number of them) lists each tile's pairs in depth order, as the
    stable sort of the torch backend does."""
    g, cam = _scene(2500, 56, 4, scale=0.05, opacity=0.5)
    pr = R.preprocess(g.xyz, g.scales, g.rotations, cam)
    want = R.bin_tiles(pr, g.opacities, (56, 56))
    for parts in (1, 3, 16):
        got = nb.bin_tiles_numba(pr, g.opacities, (56, 56), parts=parts)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_kernels_load_from_numba_disk_cache_in_a_new_process() -> None:
    """A new process loads the compiled kernels instead of compiling them again (seconds at every
    `render --avatar` start: a cached kernel calling another jitted function missed its cache)."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from artalk_core.render.avatar import rasterize_numba as nb\n"
        "project, bin_pairs, reach_of = nb._build_prep()\n"
        "composite = nb._build_kernel()\n"
        "f = np.zeros((1, 2), np.float32)\n"
        "reach = np.zeros(1)\n"
        "reach_of(np.ones(1, np.float32), reach)\n"
        "project(np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32), np.ones((1, 4), np.float32),\n"
        "        np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32), np.float32(1), np.float32(1),\n"
        "        np.float32(8), np.float32(8), 16, 16, f, np.zeros(1, np.float32), np.zeros((1, 3), np.float32),\n"
        "        np.zeros(1, np.float32), np.zeros((1, 4), np.int64), np.zeros(1, np.bool_))\n"
        "pl, off = bin_pairs(np.zeros(1, np.int64), np.zeros((1, 4), np.int64), f, np.ones((1, 3), np.float32),\n"
        "                    np.ones(1, np.float32), 16, 16, 2)\n"
        "composite(np.zeros(1, np.int64), pl, off, f, np.ones((1, 3), np.float32), np.ones(1, np.float32), reach,\n"
        "          np.ones((1, 32), np.float32), 1, 16, 16, np.zeros((32, 16, 16), np.float32),\n"
        "          np.ones((16, 16), np.float32))\n")
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1"}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]  # the first may compile (a fresh checkout); the second must not
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "data loaded" in runs[1].stdout + runs[1].stderr
    assert "data saved" not in runs[1].stdout + runs[1].stderr
