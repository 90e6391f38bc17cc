"""The avatar renderer end to end on tiny_gaga (in process): frame.render / frame.final parity,
determinism of the seeded noise, streaming, the watermark, and bad input failing before output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.errors import AssetError, InputError
from artalk_core.options import AvatarOptions


@pytest.fixture(scope="module")
def renderer(gaga_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from artalk_core.render.avatar.renderer import open_avatar

    return open_avatar(AvatarOptions("fix.jpg", tracked=gaga_dir / "tracked.pt",
                                     avatar_checkpoint=gaga_dir / "weights.safetensors",
                                     avatar_config=gaga_dir / "model_config.json", avatar_noise="stored"),
                       flame=gaga_dir / "flame_synthetic_5023.pt", device="cpu",
                       cache_dir=tmp_path_factory.mktemp("gcache"))


def _final_u8(gaga_expected: dict) -> np.ndarray:
    return torch.round(gaga_expected["frame.final"] * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_feature_images_and_final_frames_match(renderer: Any, gaga_expected: dict) -> None:
    e = gaga_expected
    motion = e["frame.motion_in"].clone()
    renderer.driver.reset()
    points, transforms = renderer.driver(motion)
    frames = [(points[i], transforms[i]) for i in range(3)]
    used = renderer.backend_used
    try:
        for backend in {used, "torch"}:  # torch: the three frames composited together (the GPU path)
            renderer.backend_used = backend
            feats = renderer._features(frames)
            diff = (feats - e["frame.render"][e["frame.render_frames"].long()]).abs()
            assert float(diff.max()) < 5e-3
            assert float((diff <= 1e-4).float().mean()) >= 0.99
    finally:
        renderer.backend_used = used
    frames = renderer.render(motion)
    assert frames.shape == (3, 128, 128, 3) and frames.dtype == np.uint8
    assert int(np.abs(frames.astype(int) - _final_u8(e).astype(int)).max()) <= 1
    assert torch.equal(motion, e["frame.motion_in"])  # never written
    assert renderer.meta["rasterizer"] == renderer.backend_used


def test_seeded_noise_is_deterministic_and_frames_stream(renderer: Any, gaga_expected: dict) -> None:
    import dataclasses

    from artalk_core.render.avatar.gaussians import Gaussians

    g = renderer.gaussians
    few = Gaussians(**{k: v[:6000] for k, v in g.tensors().items()}, n_global=g.n_global)  # cheap frames
    rend = dataclasses.replace(renderer, gaussians=few, noise="seeded", seed=7, meta={})
    motion = gaga_expected["frame.motion_in"].numpy()[:2]
    it = rend.frames([motion[:1], motion[1:]])
    assert not isinstance(it, (list, tuple))
    a = np.stack(list(it))
    b = rend.render(motion)  # a new clip, cut differently: the generator and the smoothing start afresh
    np.testing.assert_array_equal(a, b)
    c = dataclasses.replace(rend, seed=8).render(motion[:1])
    assert np.abs(a[:1].astype(int) - c.astype(int)).max() > 0
    assert rend.meta["avatar_noise"] == "seeded" and rend.meta["seed"] == "7"


def test_watermark_blends_bottom_right(tmp_path: Path) -> None:
    from artalk_core.render.avatar.watermark import apply_watermark, load_watermark

    # an RGBA logo: opaque red left half, transparent right half (written as PNG through av)
    logo_rgba = np.zeros((41, 128, 4), np.uint8)
    logo_rgba[:, :64] = (255, 0, 0, 255)
    import av

    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 128, 41, "rgba"
    (tmp_path / "logo.png").write_bytes(b"".join(bytes(p) for p in ctx.encode(
        av.VideoFrame.from_ndarray(logo_rgba, format="rgba"))))
    logo = load_watermark(tmp_path / "logo.png")
    assert logo.shape == (4, 82, 256)
    img = torch.full((1, 3, 512, 512), 0.5)
    out = apply_watermark(img, logo)
    assert torch.equal(out[..., :430, :], img[..., :430, :]) and torch.equal(out[..., :, :256], img[..., :, :256])
    assert out[0, :, 470, 300].tolist() == pytest.approx([0.5 * 0.2 + 0.8, 0.1, 0.1], abs=1e-6)
    assert out[0, :, 470, 500].tolist() == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    assert torch.equal(img, torch.full((1, 3, 512, 512), 0.5))
    with pytest.raises(InputError, match="does not fit"):
        apply_watermark(torch.zeros(1, 3, 128, 128), logo)


def test_bad_input_fails_before_any_output(gaga_dir: Path, tmp_path: Path) -> None:
    from artalk_core.options import from_flat
    from artalk_core.render.stage import render as render_stage

    def render(input: Any, *, output: Any, audio: Any = None, **flat: Any) -> Any:
        model, _, look = from_flat(flat)
        return render_stage(input, output=output, look=look, model=model, audio=audio)

    motion = tmp_path / "m.pt"
    torch.save(torch.zeros(3, 106), motion)
    common: dict[str, Any] = dict(tracked=gaga_dir / "tracked.pt", avatar_checkpoint=gaga_dir / "weights.safetensors",
                  avatar_config=gaga_dir / "model_config.json", flame=gaga_dir / "flame_synthetic_5023.pt",
                  device="cpu")
    out = tmp_path / "frames"
    with pytest.raises(InputError, match=r"unknown avatar 'fix.jgp'.*closest: fix\.jpg"):
        render(motion, output=f"{out}/", avatar="fix.jgp", **common)
    with pytest.raises(AssetError, match="real FLAME head"):
        render(motion, output=f"{out}/", avatar="fix.jpg", **{**common, "flame": None},
               assets=tmp_path / "no_assets")
    with pytest.raises(AssetError, match=r"GAGAvatar\.pt not found.*download"):
        render(motion, output=f"{out}/", avatar="fix.jpg", **{**common, "avatar_checkpoint": None},
               assets=tmp_path / "no_assets")
    with pytest.raises(AssetError, match=r"tracked\.pt not found"):
        render(motion, output=f"{out}/", avatar="fix.jpg", **{**common, "tracked": None},
               assets=tmp_path / "no_assets")
    bad = torch.zeros(3, 106)
    bad[1, 4] = float("nan")
    torch.save(bad, tmp_path / "nan.pt")
    with pytest.raises(InputError, match="non-finite"):
        render(tmp_path / "nan.pt", output=f"{out}/", avatar="fix.jpg", **common)
    with pytest.raises(InputError, match="tracked avatar file not found"):
        render(motion, output=f"{out}/", avatar=str(tmp_path / "me.pt"), **{**common, "tracked": None})
    with pytest.raises(InputError, match="vertices only"):
        render(motion, output=tmp_path / "v.h5", avatar="fix.jpg", **common)
    with pytest.raises(InputError, match="--audio needs a video"):
        render(motion, output=f"{out}/", avatar="fix.jpg", audio=gaga_dir.parent / "tiny_en" / "speech_16k.wav",
               **common)
    with pytest.raises(InputError, match="--size"):
        render(motion, output=f"{out}/", avatar="fix.jpg", size=256, **common)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".frames")]


@pytest.mark.slow
def test_animate_and_the_api_pass_the_avatar_through(gaga_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from artalk_core.animate import animate
    from artalk_core.api import Animator
    from artalk_core.frames import read_frame_png
    from artalk_core.video import probe_video

    monkeypatch.setenv("ARTALK_CACHE", str(tmp_path / "cache"))  # the avatar cache, not the user's
    wav = gaga_dir.parent / "tiny_en" / "speech_16k.wav"
    files: dict[str, Any] = dict(tracked=gaga_dir / "tracked.pt", avatar_checkpoint=gaga_dir / "weights.safetensors",
                                 avatar_config=gaga_dir / "model_config.json", flame=gaga_dir / "flame_synthetic_5023.pt")
    res = animate(wav, engine="energy", clip_length=2, avatar="fix.jpg", output=tmp_path / "a.mp4", device="cpu",
                  **files)
    info = probe_video(tmp_path / "a.mp4")
    assert res.frames == 2 and info["frames"] == 2 and (info["width"], info["height"]) == (128, 128)
    assert info["audio_codec"] == "aac" and info["metadata"]["avatar"] == "fix.jpg"
    with pytest.raises(InputError, match="unknown avatar"):
        Animator(engine="energy", avatar="nobody.jpg", **{k: v for k, v in files.items() if k != "flame"},
                 flame=files["flame"])
    anim = Animator(engine="energy", device="cpu", avatar="fix.jpg", avatar_noise="none", **files)
    motion = anim.generate(wav, clip_length=1)
    anim.render(motion, path=f"{tmp_path / 'png'}/")
    assert read_frame_png(tmp_path / "png" / "frame_000000.png").shape == (128, 128, 3)
