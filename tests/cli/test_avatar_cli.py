"""`artalk render --avatar`: the tiny_gaga frames through the real command, clean errors, `artalk info`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_clean_error

GAGA = Path(__file__).resolve().parent.parent / "fixtures" / "tiny_gaga"


@pytest.fixture(scope="module")
def gaga_motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import load_file

    path = tmp_path_factory.mktemp("gaga") / "motion.pt"
    torch.save(load_file(str(GAGA / "expected.safetensors"))["frame.motion_in"].clone(), path)
    return path


@pytest.mark.slow
def test_render_avatar_frames_match_the_reference(artalk, gaga_motion: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from artalk_core.frames import read_frame_png

    res = artalk("render", gaga_motion, "--avatar", "fix.jpg", "--tracked", GAGA / "tracked.pt",
                 "--avatar-checkpoint", GAGA / "weights.safetensors", "--avatar-config", GAGA / "model_config.json",
                 "--flame", GAGA / "flame_synthetic_5023.pt", "--avatar-noise", "stored", "--device", "cpu",
                 "-o", f"{tmp_path / 'frames'}/", env_extra={"ARTALK_CACHE": str(tmp_path / "cache")}, timeout=600)
    assert res.returncode == 0, res.stderr
    final = load_file(str(GAGA / "expected.safetensors"))["frame.final"]
    want = torch.round(final * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy().astype(int)
    names = sorted(p.name for p in (tmp_path / "frames").glob("frame_*.png"))
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    for i, name in enumerate(names):
        got = read_frame_png(tmp_path / "frames" / name).astype(int)
        assert got.shape == (128, 128, 3)
        assert np.abs(got - want[i]).max() <= 1
    meta = json.loads((tmp_path / "frames" / "frames.json").read_text())
    assert meta["avatar"] == "fix.jpg" and meta["avatar_noise"] == "stored"
    assert meta["rasterizer"] in ("torch", "numba")
    assert list((tmp_path / "cache").glob("*.safetensors"))  # the avatar's Gaussians were cached


def test_render_avatar_clean_errors(artalk, gaga_motion: Path, tmp_path: Path) -> None:
    common = ["--tracked", GAGA / "tracked.pt", "--avatar-checkpoint", GAGA / "weights.safetensors",
              "--avatar-config", GAGA / "model_config.json", "--device", "cpu", "--assets", tmp_path / "none"]
    res = artalk("render", gaga_motion, "--avatar", "fix.jpeg", "--flame", GAGA / "flame_synthetic_5023.pt",
                 *common, "-o", tmp_path / "a.mp4")
    assert_clean_error(res, "unknown avatar", "fix.jpg")
    res = artalk("render", gaga_motion, "--avatar", "fix.jpg", *common, "-o", tmp_path / "b.mp4")
    assert_clean_error(res, "stand-in", "FLAME_with_eye.pt")
    assert res.returncode == 3
    assert not list(tmp_path.glob("*.mp4"))


def test_info_lists_tracked_avatars() -> None:
    from artalk_core.info import describe_file, format_description

    d = describe_file(GAGA / "tracked.pt")  # what `artalk info` prints
    assert d["keys"] == ["fix.jpg"] and d["avatar_count"] == 1
    assert "keys: fix.jpg" in format_description(d)
