"""The Gaussian rasterizer against the tiny_gaga scenes (a transcription of the reference CUDA code),
its backends against each other, and golden single-Gaussian cases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.render.avatar import rasterize as R
from artalk_core.render.avatar.camera import Camera, build_camera

FIX = Path(__file__).resolve().parents[3] / "fixtures" / "tiny_gaga"
BACKENDS = ["torch"] + (["numba"] if R.numba_available() else [])


@pytest.fixture(scope="module")
def exp() -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(FIX / "expected.safetensors")).items() if k.startswith("raster.")}


def scene(exp: dict, k: int) -> tuple[SimpleNamespace, Camera]:
    p = f"raster.scene{k}."
    g = SimpleNamespace(xyz=exp[p + "xyz"], colors=exp[p + "colors"], opacities=exp[p + "opacities"],
                        scales=exp[p + "scales"], rotations=exp[p + "rotations"])
    return g, build_camera(exp[p + "cam_matrix"], size=64)


def _preprocess(backend: str) -> Any:
    if backend == "numba":
        from artalk_core.render.avatar.rasterize_numba import preprocess_numba

        return preprocess_numba
    return R.preprocess


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_camera_and_preprocess_match_scenes(exp: dict, k: int, backend: str) -> None:
    p = f"raster.scene{k}."
    g, cam = scene(exp, k)
    torch.testing.assert_close(cam.viewmatrix, exp[p + "viewmatrix"], rtol=0, atol=1e-6)
    torch.testing.assert_close(cam.projmatrix, exp[p + "projmatrix"], rtol=0, atol=1e-5)
    pr = _preprocess(backend)(g.xyz, g.scales, g.rotations, cam)
    valid = exp[p + "valid"].bool()
    assert torch.equal(pr.valid, valid)
    torch.testing.assert_close(pr.means2d[valid], exp[p + "means2d"][valid], rtol=1e-6, atol=2e-5)
    torch.testing.assert_close(pr.depth[valid], exp[p + "depth"][valid], rtol=0, atol=2e-5)
    torch.testing.assert_close(pr.conic[valid], exp[p + "conic"][valid], rtol=1e-5, atol=2e-5)
    assert torch.equal(pr.radius[valid], exp[p + "radius"][valid])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_render_matches_scenes(exp: dict, k: int, backend: str) -> None:
    p = f"raster.scene{k}."
    g, cam = scene(exp, k)
    image, trans = R.render_features(g, cam, backend=backend)
    assert image.shape == (32, 64, 64) and trans.shape == (64, 64)
    torch.testing.assert_close(image, exp[p + "image"], rtol=0, atol=2e-5)
    torch.testing.assert_close(trans, exp[p + "transmittance"], rtol=0, atol=2e-5)


def test_scene1_golden_values(exp: dict) -> None:
    """One isotropic Gaussian at the origin: centred at pixel (31.5, 31.5), sigma^2 = (0.05*384/5)^2 + 0.3."""
    g, cam = scene(exp, 1)
    pr = R.preprocess(g.xyz, g.scales, g.rotations, cam)
    assert pr.means2d[0].tolist() == pytest.approx([31.5, 31.5], abs=1e-5)
    var = (0.05 * 384 / 5) ** 2 + 0.3
    assert pr.conic[0].tolist() == pytest.approx([1 / var, 0.0, 1 / var], rel=1e-5, abs=1e-9)
    image, trans = R.render_features(g, cam, backend="torch")
    # pixel (31, 31) is 0.5 px from the centre on both axes
    alpha = 0.8 * np.exp(-0.5 * (0.25 + 0.25) / var)
    assert image[:, 31, 31].numpy() == pytest.approx(alpha * np.linspace(-1, 2, 32), rel=1e-5, abs=1e-6)
    assert float(trans[31, 31]) == pytest.approx(1 - alpha, rel=1e-6)


def test_early_stop_cull_and_alpha_floor() -> None:
    """Opaque layers stop a pixel before the next Gaussian; z <= 0.2 is culled; alpha < 1/255 adds nothing."""
    cam = build_camera(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5]]), size=32)
    xyz = torch.tensor([[0.0, 0, 0], [0, 0, 0.01], [0, 0, 0.02], [0, 0, 0.03], [0, 0, -4.85]])
    n = xyz.shape[0]
    colors = torch.eye(n, 32)
    opac = torch.tensor([[1.0], [0.5], [1.0], [0.5], [1.0]])
    g = SimpleNamespace(xyz=xyz, colors=colors, opacities=opac, scales=torch.full((n, 3), 0.5),
                        rotations=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1))
    pr = R.preprocess(g.xyz, g.scales, g.rotations, cam)
    assert pr.valid.tolist() == [True, True, True, True, False]  # depth 0.15 is culled
    for backend in BACKENDS:
        image, trans = R.render_features(g, cam, backend=backend)
        c = image[:, 15, 15]
        dx, dy = (pr.means2d[1] - 15.0).tolist()
        con = pr.conic[1].tolist()
        a1 = 0.5 * float(np.exp(-0.5 * (con[0] * dx * dx + con[2] * dy * dy) - con[1] * dx * dy))
        # alpha 0.99 (clamped), then ~0.5; the third (0.99) would bring T below 1e-4: the pixel
        # stops there without adding it, and the fourth (which alone would pass) is never reached.
        assert float(c[0]) == pytest.approx(0.99, rel=1e-6)
        assert float(c[1]) == pytest.approx(a1 * 0.01, rel=1e-4)
        assert float(c[2]) == 0.0 and float(c[3]) == 0.0 and float(c[4]) == 0.0
        assert float(trans[15, 15]) == pytest.approx(0.01 * (1 - a1), rel=1e-4)
    faint = SimpleNamespace(xyz=xyz[:1], colors=colors[:1], opacities=torch.tensor([[0.003]]),
                            scales=g.scales[:1], rotations=g.rotations[:1])
    image, trans = R.render_features(faint, cam, backend="torch")
    assert float(image.abs().max()) == 0.0 and float(trans.min()) == 1.0


def _random_scene(n: int, size: int, seed: int = 0) -> tuple[SimpleNamespace, Camera]:
    gen = torch.Generator().manual_seed(seed)
    g = SimpleNamespace(
        xyz=(torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([1.2, 1.2, 2.0]),
        colors=torch.randn(n, 32, generator=gen),
        opacities=torch.rand(n, 1, generator=gen) * 0.9 + 0.05,
        scales=torch.rand(n, 3, generator=gen) * 0.04 + 0.002,
        rotations=torch.randn(n, 4, generator=gen) * 0.7)
    return g, build_camera(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5]]), size=size)


@pytest.mark.skipif(not R.numba_available(), reason="numba not installed")
def test_numba_equals_torch_on_a_random_scene() -> None:
    from artalk_core.render.avatar.rasterize_numba import bin_tiles_numba

    g, cam = _random_scene(3000, 72)  # 72 px: the last tile row/column is partial
    pr = R.preprocess(g.xyz, g.scales, g.rotations, cam)
    lists = R.bin_tiles(pr, g.opacities, (72, 72))
    lists_nb = bin_tiles_numba(pr, g.opacities, (72, 72))
    assert torch.equal(lists[0], lists_nb[0]) and torch.equal(lists[1], lists_nb[1])
    assert len(lists[0]) < len(R.bin_tiles(pr)[0])  # the faint pairs were left out
    a, ta = R.render_features(g, cam, backend="torch")
    b, tb = R.render_features(g, cam, backend="numba")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(ta, tb, rtol=0, atol=1e-5)


def test_torch_backend_chunking_does_not_change_the_image(exp: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Short list blocks and one tile per chunk carry T and the stop flag across blocks exactly."""
    g, cam = scene(exp, 4)
    ref, tref = R.render_features(g, cam, backend="torch")
    monkeypatch.setattr(R, "LIST_BLOCK", 37)
    monkeypatch.setattr(R, "TILE_BUDGET", {"cpu": 1})
    out, tout = R.render_features(g, cam, backend="torch")
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(tout, tref, rtol=0, atol=1e-7)


def test_background_and_backend_choice() -> None:
    g, cam = _random_scene(50, 32)
    image, trans = R.render_features(g, cam, backend="torch", bg=0.5)
    plain, _ = R.render_features(g, cam, backend="torch")
    torch.testing.assert_close(image, plain + 0.5 * trans.unsqueeze(0))
    assert R.choose_backend("auto", "cpu") == ("numba" if R.numba_available() else "torch")
    with pytest.raises(Exception, match="unknown rasterizer backend"):
        R.choose_backend("vulkan", "cpu")
    with pytest.raises(Exception, match="CUDA device"):
        R.choose_backend("cuda", "cpu")


def test_faint_pair_culling_changes_nothing() -> None:
    g, cam = _random_scene(1500, 48, seed=3)
    g.opacities = g.opacities * 0.05  # many Gaussians too faint for parts of their tiles
    pr = R.preprocess(g.xyz, g.scales, g.rotations, cam)
    all_pairs = R.bin_tiles(pr)
    culled = R.bin_tiles(pr, g.opacities, (48, 48))
    assert len(culled[0]) < 0.9 * len(all_pairs[0])
    a = R._composite_torch(pr, *all_pairs, g.colors, g.opacities, 48, 48)
    b = R._composite_torch(pr, *culled, g.colors, g.opacities, 48, 48)
    # the culled factors are exactly 1; only the list blocks moved (torch's CPU cumprod and the colour
    # sums round per block), so the values agree to the last bit or two
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=2e-7)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)


def test_frames_rendered_together_equal_frames_one_by_one() -> None:
    g, _ = _random_scene(800, 40, seed=5)  # 40 px: each frame's last tile row is partial
    cams = [build_camera(torch.tensor([[1.0, 0, 0, dx], [0, 1, 0, dy], [0, 0, 1, 5]]), size=40)
            for dx, dy in ((0.0, 0.0), (0.05, -0.1), (-0.1, 0.07))]
    xyz = torch.stack([g.xyz, g.xyz * 1.02, g.xyz + 0.01])
    images, trans = R.render_features_batch(g, xyz, cams, backend="torch", bg=0.25)
    assert images.shape == (3, 32, 40, 40) and trans.shape == (3, 40, 40)
    for b, cam in enumerate(cams):
        one = SimpleNamespace(**{**vars(g), "xyz": xyz[b]})
        image, t = R.render_features(one, cam, backend="torch", bg=0.25)
        torch.testing.assert_close(images[b], image, rtol=0, atol=1e-6)
        torch.testing.assert_close(trans[b], t, rtol=0, atol=1e-7)
