"""`artalk tts` and `artalk animate`: text or speech to video, offline."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import FIXTURE, assert_clean_error

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SENTENCES = {
    "en": "Hello, this is a test.",
    "zh": "你好，这是一个测试。",
    "ja": "こんにちは、これはテストです。",
    "de": "Hallo, das ist ein Test.",
    "fr": "Bonjour, ceci est un test.",
    "es": "Hola, esto es una prueba.",
}


@needs_espeak
@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_tts_six_languages_offline(artalk, tmp_path, lang):
    from artalk_core.audio import load_audio

    out = tmp_path / f"{lang}.wav"
    res = artalk("tts", SENTENCES[lang], "--lang", lang, "-o", out)
    assert res.returncode == 0, res.stderr
    audio = load_audio(out)
    assert audio.source_rate == 16000 and audio.source_channels == 1
    assert 0.5 < audio.duration < 10 and np.abs(audio.samples).max() > 0.05


@needs_espeak
def test_tts_text_from_stdin_and_file_to_stdout(artalk, tmp_path):
    (tmp_path / "t.txt").write_text("Reading from a file.", encoding="utf-8")
    res = artalk("tts", "@" + str(tmp_path / "t.txt"), "-o", "-", "-q")
    assert res.returncode == 0 and res.stdout[:4] == b"RIFF"
    res = artalk("tts", "-", "-o", tmp_path / "s.wav", input=b"From stdin.")
    assert res.returncode == 0 and (tmp_path / "s.wav").stat().st_size > 1000


def test_tts_bad_input(artalk, tmp_path):
    assert_clean_error(artalk("tts", "   ", "-o", tmp_path / "x.wav"), "empty")
    assert_clean_error(artalk("tts", "hello", "--lang", "klingon", "-o", tmp_path / "x.wav"), "unsupported language")
    assert_clean_error(artalk("tts", "hello", "--engine", "nope", "-o", tmp_path / "x.wav"), "engine")
    assert not (tmp_path / "x.wav").exists()


def test_tts_gtts_offline_fails_clearly(artalk, tmp_path):
    res = artalk("tts", "hello", "--engine", "gtts", "-o", tmp_path / "x.wav")
    assert_clean_error(res, "gtts")
    assert not (tmp_path / "x.wav").exists()


@needs_espeak
def test_animate_text_with_energy_engine_and_keep(artalk, tmp_path):
    from artalk_core.video import probe_video

    out, keep = tmp_path / "a.mp4", tmp_path / "keep"
    res = artalk("animate", "--text", "Hello there, this is artalk.", "--engine", "energy", "-o", out,
                 "--keep", keep, "--size", "128")
    assert res.returncode == 0, res.stderr
    info = probe_video(out)
    assert info["frames"] > 25 and info["audio_codec"] == "aac"
    kept = sorted(p.suffix for p in keep.iterdir() if not p.name.startswith("."))
    assert kept == [".h5", ".safetensors", ".wav"]
    records = sorted(p.name for p in (keep / ".artalk-records").iterdir())  # what made each (artalk_core.records)
    assert records == sorted(f"{p.name}.json" for p in keep.iterdir() if not p.name.startswith("."))
    res = artalk("animate", "--text", "Hello there, this is artalk.", "--engine", "energy", "-o", out,
                 "--keep", keep, "--size", "128")
    assert res.returncode == 0 and "reused" in res.stderr and "speech, motion, vertices" in res.stderr
    # a kept file damaged in place is made again, not reused (its record holds its hash)
    motion = next(keep.glob("*.motion.safetensors"))
    data = bytearray(motion.read_bytes())
    data[-100] ^= 0xFF  # one byte of the frames (the file's last bytes are the zeroed jaw channels)
    motion.write_bytes(bytes(data))
    res = artalk("animate", "--text", "Hello there, this is artalk.", "--engine", "energy", "-o", out,
                 "--keep", keep, "--size", "128")
    assert res.returncode == 0 and "reused from" in res.stderr and "speech" in res.stderr
    assert "motion" not in res.stderr.split("reused from", 1)[1].splitlines()[0]


def test_animate_with_the_model_reuses_features_across_styles(artalk, tiny_assets, tmp_path):
    from artalk_core.formats.motion import read_motion
    from artalk_core.video import probe_video

    keep = tmp_path / "keep"
    res = artalk("animate", FIXTURE / "speech_16k.wav", "-s", "tiny_0", "--assets", tiny_assets,
                 "--keep", keep, "--size", "64", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "speech_16k_tiny_0_mesh.mp4"  # the reference tool's naming
    assert probe_video(out)["frames"] == 252
    res = artalk("animate", FIXTURE / "speech_16k.wav", "-s", "default", "--assets", tiny_assets,
                 "--keep", keep, "--size", "64", "-o", tmp_path / "b.mp4")
    assert res.returncode == 0 and "reused" in res.stderr and "features" in res.stderr
    m = read_motion(keep / "speech_16k_tiny_0.motion.safetensors")
    assert m.meta["style"] == "tiny_0" and m.frames == 252


def test_animate_needs_exactly_one_input(artalk, tmp_path):
    assert_clean_error(artalk("animate", "-o", tmp_path / "x.mp4", "--engine", "energy"), "--text")
