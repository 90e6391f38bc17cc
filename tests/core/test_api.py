"""The Python API: Animator mirrors the reference engine."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURE


def test_animator_matches_the_reference_engine(tiny_assets, expected):
    from artalk_core.api import Animator

    anim = Animator(assets=tiny_assets, device="cpu")
    anim.set_style("tiny_0")
    motion = anim.generate(expected["audio"])  # a 16 kHz float array
    np.testing.assert_allclose(motion.data, expected["motion_final"], atol=1e-4, rtol=0)
    anim.set_style(None)
    raw = anim.generate(FIXTURE / "speech_16k.wav", raw=True)
    np.testing.assert_allclose(raw.data, expected["motion_raw_nostyle"], atol=1e-4, rtol=0)
    anim.set_style(expected["style_motion"])  # an array works too
    raw = anim.generate(FIXTURE / "speech_16k.wav", raw=True)
    np.testing.assert_allclose(raw.data, expected["motion_raw_style"], atol=1e-4, rtol=0)
    assert anim.generate(expected["audio"], clip_length=100).frames == 100


def test_animator_render_and_animate(tmp_path):
    from artalk_core.api import Animator
    from artalk_core.video import probe_video

    anim = Animator(engine="energy")
    motion = anim.generate(FIXTURE / "speech_16k.wav", clip_length=30)
    res = anim.render(motion, path=tmp_path / "a.mp4", size=64)
    assert res.frames == 30 and probe_video(tmp_path / "a.mp4").get("audio_codec") in (None, "")
    res = anim.animate(FIXTURE / "speech_16k.wav", path=tmp_path / "b.mp4", size=64)
    info = probe_video(tmp_path / "b.mp4")
    assert res.frames == 252 and info["audio_codec"] == "aac"


def test_animator_errors_early_without_weights(tmp_path):
    from artalk_core.api import Animator
    from artalk_core.errors import AssetError

    with pytest.raises(AssetError, match="ARTalk_wav2vec.pt"):
        Animator(assets=tmp_path)
