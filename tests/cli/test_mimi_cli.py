"""The Mimi model through the commands: generate (audio, features, --stream), encode-audio, and the
features of one audio encoder refused by a model of the other (tests/fixtures/tiny_mimi)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from artalk_core.options import ModelOptions
from tests.conftest import FIXTURE, assert_clean_error

MIMI = FIXTURE.parent / "tiny_mimi"
WAV = FIXTURE / "speech_16k.wav"  # the tiny_mimi speech is the same file


@pytest.fixture(scope="module")
def mimi_expected() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(MIMI / "expected.safetensors"))


@pytest.fixture(scope="module")
def mimi_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Mimi model in the reference asset layout: config.json naming the encoder, ARTalk_mimi.pt."""
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("mimi_assets")
    torch.save(load_file(str(MIMI / "weights.safetensors")), root / "ARTalk_mimi.pt")
    shutil.copy(MIMI / "model_config.json", root / "config.json")
    (root / "style_motion").mkdir()
    shutil.copy(MIMI / "style_motion.pt", root / "style_motion" / "tiny_0.pt")
    return root


def motion(path: Path | bytes) -> np.ndarray:
    from artalk_core.formats.motion import read_motion

    return np.asarray(read_motion(path).data)


def test_generate_from_audio(artalk, mimi_assets, mimi_expected, tmp_path) -> None:
    # config.json says mimi: the default checkpoint is <assets>/ARTalk_mimi.pt, as the reference names it
    # (the raw motion's parity is tests/core/model/test_mimi_parity.py's)
    final = tmp_path / "final.safetensors"
    res = artalk("generate", WAV, "-s", "tiny_0", "-o", final, "--assets", mimi_assets, "-q")
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(motion(final), mimi_expected["motion_final"], atol=1e-5, rtol=0)


def test_encode_audio_then_generate_from_features(artalk, mimi_assets, mimi_expected, tmp_path) -> None:
    from artalk_core.formats.features import read_features

    feats = tmp_path / "speech.features.safetensors"
    res = artalk("encode-audio", WAV, "-o", feats, "--assets", mimi_assets)
    assert res.returncode == 0, res.stderr
    assert "features [3x50x512]" in res.stderr
    f = read_features(feats)
    assert (f.audio_encoder, f.meta["audio_encoder"], f.frames) == ("mimi", "mimi", 252)
    assert json.loads(f.meta["model_config"])["AR_CONFIG"]["AUDIO_ENCODER"] == "mimi"
    np.testing.assert_allclose(np.asarray(f.data)[0], mimi_expected["audio_features_chunk0"], atol=1e-5, rtol=0)
    info = json.loads(artalk("info", feats, "--json").stdout)
    assert (info["audio_encoder"], info["tokens_per_chunk"], info["shape"]) == ("mimi", 50, [3, 50, 512])
    out = tmp_path / "m.safetensors"
    res = artalk("generate", feats, "-s", "tiny_0", "--raw", "-o", out, "--assets", mimi_assets, "-q")
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(motion(out), mimi_expected["motion_raw_style"], atol=1e-5, rtol=0)


def test_stream_equals_offline(artalk, mimi_assets, mimi_expected) -> None:
    res = artalk("generate", "-", "--stream", "-s", "tiny_0", "-o", "-", "--assets", mimi_assets, "-q",
                 input=WAV.read_bytes())
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(motion(res.stdout), mimi_expected["motion_final"], atol=1e-5, rtol=0)


def test_checkpoint_alone_selects_mimi(artalk, mimi_expected, tmp_path) -> None:
    # The released config.json names no encoder: --checkpoint of a Mimi model is enough.
    cfg = json.loads((MIMI / "model_config.json").read_text())
    del cfg["AR_CONFIG"]["AUDIO_ENCODER"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "m.safetensors"
    res = artalk("generate", WAV, "--raw", "-o", out, "--checkpoint", MIMI / "weights.safetensors",
                 "--assets", tmp_path, "-q")
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(motion(out), mimi_expected["motion_raw_nostyle"], atol=1e-5, rtol=0)


def test_features_of_one_encoder_are_refused_by_the_other(artalk, mimi_assets, tiny_assets, tmp_path) -> None:
    w2v, mimi = tmp_path / "w2v.features.safetensors", tmp_path / "mimi.features.safetensors"
    assert artalk("encode-audio", WAV, "-o", w2v, "--assets", tiny_assets, "-q").returncode == 0
    assert artalk("encode-audio", WAV, "-o", mimi, "--assets", mimi_assets, "-q").returncode == 0
    res = artalk("generate", w2v, "-o", tmp_path / "a.safetensors", "--assets", mimi_assets)
    assert res.returncode == 2
    assert_clean_error(res, "made by the wav2vec audio encoder but the model uses mimi", "encode-audio")
    res = artalk("generate", mimi, "-o", tmp_path / "b.safetensors", "--assets", tiny_assets)
    assert res.returncode == 2
    assert_clean_error(res, "made by the mimi audio encoder but the model uses wav2vec")
    assert not (tmp_path / "a.safetensors").exists() and not (tmp_path / "b.safetensors").exists()


def test_missing_mimi_checkpoint_says_it_is_not_released(artalk, tmp_path) -> None:
    shutil.copy(MIMI / "model_config.json", tmp_path / "config.json")
    res = artalk("generate", WAV, "-o", tmp_path / "m.safetensors", "--assets", tmp_path)
    assert res.returncode == 3
    assert_clean_error(res, "ARTalk_mimi.pt", "not released yet", "--checkpoint")


def test_api_and_animate_take_the_mimi_model(artalk, mimi_assets, mimi_expected, tmp_path) -> None:
    from artalk_core.api import Animator
    from artalk_core.formats.features import read_features

    anim = Animator(assets=mimi_assets, device="cpu")
    anim.set_style("tiny_0")
    motion_api = anim.generate(WAV)
    np.testing.assert_allclose(np.asarray(motion_api.data), mimi_expected["motion_final"], atol=1e-5, rtol=0)
    res = artalk("animate", WAV, "-s", "tiny_0", "--assets", mimi_assets, "--keep", tmp_path / "work",
                 "--size", "64", "-o", tmp_path / "a.mp4", "-q")
    assert res.returncode == 0, res.stderr
    kept = read_features(tmp_path / "work" / "speech_16k.features.safetensors")
    assert kept.audio_encoder == "mimi" and kept.data.shape == (3, 50, 512)
    np.testing.assert_allclose(motion(tmp_path / "work" / "speech_16k_tiny_0.motion.safetensors"),
                               mimi_expected["motion_final"], atol=1e-5, rtol=0)


def test_batch_takes_the_mimi_model(artalk, mimi_assets, mimi_expected, tmp_path) -> None:
    # the model config given with --model-config (the asset folder has none): its encoder names the
    # checkpoint the batch hashes and loads, ARTalk_mimi.pt
    assets = tmp_path / "assets"
    shutil.copytree(mimi_assets, assets)
    (assets / "config.json").rename(tmp_path / "mimi.json")
    (tmp_path / "in").mkdir()
    shutil.copy(WAV, tmp_path / "in" / "speech.wav")
    res = artalk("batch", tmp_path / "in", "-o", tmp_path / "out", "-s", "tiny_0", "--outputs", "motion",
                 "--workers", "1", "--assets", assets, "--model-config", tmp_path / "mimi.json", "-q")
    assert res.returncode == 0, res.stderr
    (made,) = (tmp_path / "out").glob("*.motion.safetensors")
    np.testing.assert_allclose(motion(made), mimi_expected["motion_final"], atol=1e-5, rtol=0)


def test_the_app_finds_the_mimi_model(mimi_assets, tmp_path) -> None:
    # The web app's "auto" engine is the model when the asset folder holds the checkpoint its config names.
    from artalk_core.app.config import AppConfig, build_catalog

    catalog = build_catalog(AppConfig(model=ModelOptions(assets=mimi_assets)))
    assert catalog.has_model and catalog.engine == "artalk"
    shutil.copy(MIMI / "model_config.json", tmp_path / "config.json")  # says mimi, no ARTalk_mimi.pt
    assert build_catalog(AppConfig(model=ModelOptions(assets=tmp_path))).engine == "energy"


def test_assets_list_names_the_configs_checkpoint(artalk, mimi_assets) -> None:
    res = artalk("assets", "list", "--root", mimi_assets, "--json")
    assert res.returncode == 0, res.stderr
    ckpt = json.loads(res.stdout)["checkpoint"]
    assert ckpt["name"] == "ARTalk_mimi.pt" and ckpt["present"]
