"""`--voice` is checked against espeak-ng's own lists (issue 18.16): espeak-ng 1.51 speaks another
voice without a word for an unknown name or variant, so artalk refuses it before speaking; and the
espeak-only options are refused with the gtts engine instead of being ignored."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import FIXTURE, assert_clean_error

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
@pytest.mark.parametrize(("voice", "words"), [
    ("no-such-voice", ["unknown espeak-ng voice 'no-such-voice'", "espeak-ng --voices"]),
    ("en-zzzz", ["unknown espeak-ng voice 'en-zzzz'", "did you mean", "en-us"]),
    ("en+zzzz", ["unknown espeak-ng voice variant 'zzzz'", "--voices=variant"]),
    ("de+F3", ["variant 'F3'", "f3"]),  # espeak-ng matches variant names by case
])
def test_unknown_voices_are_refused_with_the_closest_names(artalk, tmp_path, voice, words) -> None:
    res = artalk("tts", "hello", "--voice", voice, "-o", tmp_path / "x.wav")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, *words)
    assert not list(tmp_path.iterdir())


@needs_espeak
@pytest.mark.parametrize("voice", ["en-gb", "EN-US", "de+f3", "gmw/en-US", "English (America)", "zh"])
def test_known_voices_speak(artalk, tmp_path, voice) -> None:
    res = artalk("tts", "hello", "--voice", voice, "-o", tmp_path / "x.wav")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "x.wav").stat().st_size > 1000


def test_espeak_options_are_refused_with_gtts(artalk, tmp_path) -> None:
    """No network is touched: the refusal comes before the engine is used."""
    res = artalk("tts", "hello", "--engine", "gtts", "--voice", "en-gb", "-o", tmp_path / "x.wav")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "--voice applies to the espeak engine only")
    res = artalk("tts", "hello", "--engine", "gtts", "--voice", "en-gb", "--speed", "200", "-o", tmp_path / "x.wav")
    assert_clean_error(res, "--voice and --speed apply to the espeak engine only")
    res = artalk("animate", "--text", "hello", "--tts-engine", "gtts", "--voice", "en-gb", "-e", "energy",
                 "-o", tmp_path / "a.mp4")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "--voice applies to the espeak engine only")
    assert not list(tmp_path.iterdir())


def test_voice_without_text_is_refused(artalk, tmp_path) -> None:
    res = artalk("animate", FIXTURE / "speech_16k.wav", "--voice", "en-gb", "-e", "energy", "-o", tmp_path / "a.mp4")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "--voice applies to --text")
    assert not list(tmp_path.iterdir())


@needs_espeak
def test_animate_checks_the_voice_before_any_work(artalk, tmp_path) -> None:
    res = artalk("animate", "--text", "hello", "--voice", "en+zzzz", "-e", "energy", "--keep", tmp_path / "work",
                 "-o", tmp_path / "a.mp4")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "variant 'zzzz'")
    assert not list(tmp_path.iterdir())
