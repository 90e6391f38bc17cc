"""The avatar's speed paths on tiny_gaga: the upsampler in bf16/fp16 (a reduced copy, fp32 untouched),
``--precision auto`` measured once and cached, the precision in the output's metadata, and the
two-stage frame pipeline (rasterizer one frame ahead on a worker thread, the same frames)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.errors import InputError
from artalk_core.options import AvatarOptions, ModelOptions, RenderOptions


@pytest.fixture(scope="module")
def renderer(gaga_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from artalk_core.render.avatar.gaussians import Gaussians
    from artalk_core.render.avatar.renderer import open_avatar

    rend = open_avatar(AvatarOptions("fix.jpg", tracked=gaga_dir / "tracked.pt",
                                     avatar_checkpoint=gaga_dir / "weights.safetensors",
                                     avatar_config=gaga_dir / "model_config.json", avatar_noise="seeded", seed=3),
                       flame=gaga_dir / "flame_synthetic_5023.pt", device="cpu",
                       cache_dir=tmp_path_factory.mktemp("gcache"))
    g = rend.gaussians
    few = Gaussians(**{k: v[:6000] for k, v in g.tensors().items()}, n_global=g.n_global)  # cheap frames
    return dataclasses.replace(rend, gaussians=few, meta={})


def test_reduced_precision_upsampler_is_close_and_fp32_is_untouched(gaga_net: Any, gaga_expected: dict) -> None:
    feats = gaga_expected["frame.render"][:2]
    ref = gaga_net.upsample(feats, noise="stored")
    keys = list(gaga_net.state_dict())
    for precision, tol in (("bf16", 3e-2), ("fp16", 4e-3)):
        out = gaga_net.upsample(feats, noise="stored", precision=precision)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert 0 < float((out - ref).abs().max()) < tol
        assert gaga_net._upsampler_in(torch.bfloat16 if precision == "bf16" else torch.float16) is \
            gaga_net._upsampler_in(torch.bfloat16 if precision == "bf16" else torch.float16)  # made once
    assert list(gaga_net.state_dict()) == keys  # the copies are not submodules
    assert all(p.dtype == torch.float32 for p in gaga_net.upsampler.parameters())
    assert torch.equal(gaga_net.upsample(feats, noise="stored"), ref)
    with pytest.raises(InputError, match="unknown upsampler precision"):
        gaga_net.upsample(feats, noise="stored", precision="auto")


def test_auto_is_measured_once_and_cached(gaga_net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from artalk_core.model import precision as model_precision
    from artalk_core.render.avatar import precision as P

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    threads = torch.get_num_threads()
    seconds = P.measure_upsampler(gaga_net, ["bf16", "fp16"], repeat=1)  # the real measurement, small net
    assert "fp32" in seconds and all(s["total"] > 0 for s in seconds.values())
    assert torch.get_num_threads() == threads  # measured on one thread, then put back
    calls: list[int] = []

    def fake(net: Any, precisions: list[str], repeat: int = 3) -> dict[str, dict[str, float]]:
        calls.append(1)
        return {"fp32": {"upsampler": 1.0, "total": 1.0}, "bf16": {"upsampler": 0.5, "total": 0.5},
                "fp16": {"upsampler": 3.0, "total": 3.0}}

    monkeypatch.setattr(P, "measure_upsampler", fake)
    assert P.resolve_upsampler_precision("fp32", gaga_net) == "fp32" and not calls  # fp32 never measures
    assert P.resolve_upsampler_precision("auto", gaga_net) == "bf16"
    model_precision._memo.clear()  # a new process: read back from the file
    assert P.resolve_upsampler_precision("auto", gaga_net) == "bf16" and len(calls) == 1
    assert P.upsampler_key(gaga_net) in (tmp_path / "artalk" / "precision.json").read_text()
    with pytest.warns(Warning, match="slower than fp32 for the avatar upsampler"):
        assert P.resolve_upsampler_precision("fp16", gaga_net) == "fp16"


def test_pipeline_gives_the_same_frames_one_frame_ahead(renderer: Any, gaga_expected: dict) -> None:
    motion = gaga_expected["frame.motion_in"].numpy()
    motion = np.concatenate([motion, motion[:1]])  # 4 frames
    plain = np.stack(list(dataclasses.replace(renderer, overlap=False).frames([motion[:3], motion[3:]])))
    rend = dataclasses.replace(renderer, overlap=True)
    threads: list[str] = []
    calls = [0]
    features = rend._features

    def spy(frames: list[Any]) -> Any:
        calls[0] += 1
        threads.append(threading.current_thread().name)
        return features(frames)

    object.__setattr__(rend, "_features", spy)
    it = rend.frames([motion[:3], motion[3:]])
    first = next(it)
    assert calls[0] <= 2  # frame 0 and at most the next one: nothing piles up
    frames = np.stack([first, *it])
    np.testing.assert_array_equal(frames, plain)
    assert calls[0] == 4 and all(t.startswith("artalk-rasterizer") for t in threads)


def test_a_failing_rasterizer_stops_the_pipeline(renderer: Any, gaga_expected: dict) -> None:
    rend = dataclasses.replace(renderer, overlap=True)
    n = [0]
    features = rend._features

    def flaky(frames: list[Any]) -> Any:
        n[0] += 1
        if n[0] == 2:
            raise InputError("frame 1 is broken")
        return features(frames)

    object.__setattr__(rend, "_features", flaky)
    it = rend.frames([gaga_expected["frame.motion_in"].numpy()])
    next(it)
    with pytest.raises(InputError, match="frame 1 is broken"):
        next(it)


def test_precision_in_the_metadata_and_only_with_an_avatar(artalk: Any, gaga_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from artalk_core.render.avatar import precision as P
    from artalk_core.render.stage import render
    from tests.conftest import assert_clean_error

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ARTALK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(P, "measure_upsampler", lambda net, precisions, repeat=3: {
        "fp32": {"upsampler": 1.0, "total": 1.0}, "bf16": {"upsampler": 0.4, "total": 0.4}})
    motion = tmp_path / "m.pt"
    torch.save(torch.zeros(2, 106), motion)
    files = ["--tracked", gaga_dir / "tracked.pt", "--avatar-checkpoint", gaga_dir / "weights.safetensors",
             "--avatar-config", gaga_dir / "model_config.json", "--flame", gaga_dir / "flame_synthetic_5023.pt",
             "--device", "cpu"]
    res = artalk("render", motion, "--avatar", "fix.jpg", *files, "--precision", "auto", "-o", f"{tmp_path / 'a'}/")
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "a" / "frames.json").read_text())
    assert meta["upsampler_precision"] == "bf16"
    assert json.loads(meta["options"])["precision"] == "bf16"
    assert json.loads(meta["options"])["precision_requested"] == "auto"
    res = render(torch.zeros(2, 106).numpy(), output=f"{tmp_path / 'exact'}/", look=RenderOptions(flame=files[7], avatar=AvatarOptions(avatar="fix.jpg", tracked=files[1], avatar_checkpoint=files[3], avatar_config=files[5])), model=ModelOptions(device="cpu"))
    assert res.meta["upsampler_precision"] == "fp32" and json.loads(res.meta["options"])["precision"] == "fp32"
    res = artalk("render", motion, "--precision", "bf16", "-o", tmp_path / "mesh.mp4")
    assert_clean_error(res, "--precision applies to --avatar")
    assert res.returncode == 2 and not (tmp_path / "mesh.mp4").exists()
    res = artalk("render", motion, "--avatar", "fix.jpg", *files, "--precision", "fp8", "-o", f"{tmp_path / 'x'}/")
    assert_clean_error(res, "unknown precision")


def test_animate_and_the_api_hand_the_precision_to_the_avatar(gaga_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from artalk_core import animate as animate_mod
    from artalk_core.api import Animator
    from artalk_core.render import stage

    seen: list[str] = []

    def fake_render(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["model"].precision)
        raise InputError("stop here")

    monkeypatch.setattr(stage, "render", fake_render)
    files: dict[str, Any] = dict(tracked=gaga_dir / "tracked.pt", avatar_checkpoint=gaga_dir / "weights.safetensors",
                                 avatar_config=gaga_dir / "model_config.json", flame=gaga_dir / "flame_synthetic_5023.pt")
    wav = gaga_dir.parent / "tiny_en" / "speech_16k.wav"
    with pytest.raises(InputError, match="stop here"):
        animate_mod.animate(wav, engine="energy", clip_length=2, avatar="fix.jpg", output=tmp_path / "a.mp4",
                            device="cpu", precision="bf16", **files)
    anim = Animator(engine="energy", device="cpu", avatar="fix.jpg", precision="auto", **files)
    with pytest.raises(InputError, match="stop here"):
        anim.render(torch.zeros(2, 106).numpy(), path=f"{tmp_path / 'png'}/")
    assert seen == ["bf16", "auto"]
