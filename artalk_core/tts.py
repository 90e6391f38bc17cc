"""Text to 16 kHz speech: espeak-ng (offline, default) or gTTS (Google, online, as the reference app)."""

from __future__ import annotations

import shutil
import subprocess

from artalk_core.errors import DependencyError, InputError
from artalk_core.fileio import PathLike, is_stdio, provenance, read_input_bytes, sha256_bytes

TTS_ENGINES = ("espeak", "gtts")
# The reference app's six languages -> (espeak-ng voice, gTTS language code).
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("en-us", "en"),
    "zh": ("cmn", "zh"),
    "ja": ("ja", "ja"),
    "de": ("de", "de"),
    "fr": ("fr", "fr"),
    "es": ("es", "es"),
}
_ALIASES = {
    "english": "en", "en-us": "en", "en-gb": "en", "中文": "zh", "chinese": "zh", "cmn": "zh", "zh-cn": "zh",
    "mandarin": "zh", "日本語": "ja", "japanese": "ja", "deutsch": "de", "german": "de", "français": "fr",
    "francais": "fr", "french": "fr", "español": "es", "espanol": "es", "spanish": "es",
}
MAX_TEXT_CHARS = 20000


def normalize_lang(lang: str) -> str:
    """'en', 'English', '中文', 'zh-cn'... -> one of LANGUAGES' keys; InputError otherwise."""
    key = lang.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise InputError(f"unsupported language '{lang}': choose one of {', '.join(LANGUAGES)}")
    return key


def read_text(text: str) -> str:
    """The TEXT argument: literal text, ``-`` for stdin, or ``@file.txt``."""
    if is_stdio(text):
        raw = read_input_bytes("-")
    elif text.startswith("@") and len(text) > 1:
        raw = read_input_bytes(text[1:])
    else:
        return text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"text is not UTF-8: {e}") from e


def _espeak(text: str, voice: str, speed: int | None) -> bytes:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise DependencyError("espeak-ng is not installed: `apt-get install espeak-ng` "
                              "(or use --engine gtts when online)")
    cmd = [exe, "-v", voice, "--stdout", "-b", "1"]  # -b 1: input is UTF-8
    if speed is not None:
        cmd += ["-s", str(speed)]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=600)
    problem = proc.stderr.decode(errors="replace").strip()
    if "voice does not exist" in problem.lower():  # bad input, not a broken installation
        raise InputError(f"unknown espeak-ng voice '{voice}': `espeak-ng --voices` lists them")
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise DependencyError(f"espeak-ng failed for voice '{voice}': "
                              f"{problem or 'no audio produced'}")
    return proc.stdout


def _gtts(text: str, lang: str) -> bytes:
    try:
        from gtts import gTTS
        from gtts.tts import gTTSError
    except ImportError as e:
        raise DependencyError("the gtts engine needs the gTTS package: pip install 'artalk[gtts]'") from e
    import io

    buf = io.BytesIO()
    try:
        gTTS(text=text, lang=lang).write_to_fp(buf)
    except (gTTSError, OSError) as e:
        raise DependencyError(f"gtts could not reach Google's TTS service (it needs internet; "
                              f"--engine espeak works offline): {e}") from e
    return buf.getvalue()


def synthesize(text: str, *, lang: str = "en", engine: str = "espeak", voice: str | None = None,
               speed: int | None = None):  # -> artalk_core.audio.Audio
    """Speak ``text``; returns 16 kHz mono audio (``Audio.samples`` float32 [S])."""
    from artalk_core.audio import load_audio

    if engine not in TTS_ENGINES:
        raise InputError(f"unknown TTS engine '{engine}': choose one of {', '.join(TTS_ENGINES)}")
    text = text.strip()
    if not text:
        raise InputError("the text is empty: nothing to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the text is too long ({len(text)} characters, at most {MAX_TEXT_CHARS})")
    code = normalize_lang(lang)
    espeak_voice, gtts_lang = LANGUAGES[code]
    data = _espeak(text, voice or espeak_voice, speed) if engine == "espeak" else _gtts(text, gtts_lang)
    return load_audio(data)


def tts(text: str, *, output: PathLike, lang: str = "en", engine: str = "espeak", voice: str | None = None,
        speed: int | None = None):  # -> artalk_core.audio.Audio
    """Speak ``text`` into a 16 kHz mono PCM16 WAV at ``output`` (``-`` = stdout)."""
    from artalk_core.audio import write_wav

    audio = synthesize(text, lang=lang, engine=engine, voice=voice, speed=speed)
    meta = provenance("artalk tts", options={"lang": normalize_lang(lang), "engine": engine, "voice": voice,
                                             "speed": speed}, inputs={"text": sha256_bytes(text.encode())})
    write_wav(output, audio.samples, metadata=meta)
    return audio
