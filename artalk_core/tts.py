"""Text to 16 kHz speech: espeak-ng (offline, default) or gTTS (Google, online, as the reference app)."""

from __future__ import annotations

import functools
import re
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


def text_source(text: str) -> str | None:
    """The file the TEXT argument is read from (``-`` for stdin, the path of ``@file.txt``), or
    None for literal text: an input that no output may replace."""
    if is_stdio(text):
        return text
    return text[1:] if text.startswith("@") and len(text) > 1 else None


def _espeak_exe() -> str:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise DependencyError("espeak-ng is not installed: `apt-get install espeak-ng` "
                              "(or use --engine gtts when online)")
    return exe


@functools.lru_cache(maxsize=4)
def _voice_lists(exe: str) -> tuple[dict[str, str], frozenset[str]] | None:
    """(the spellings of a voice espeak-ng accepts, lower-cased, each mapped to its language code;
    the variant names, case-sensitive as espeak-ng matches them), from ``--voices`` and
    ``--voices=variant``; None when the lists cannot be read (an old espeak)."""
    def rows(arg: str) -> list[list[str]]:
        try:
            proc = subprocess.run([exe, arg], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return []
        lines = proc.stdout.decode(errors="replace").splitlines()[1:] if proc.returncode == 0 else []
        return [r for r in (ln.split(maxsplit=5) for ln in lines) if len(r) >= 5]

    voices, variants = rows("--voices"), rows("--voices=variant")
    if not voices or not variants:
        return None
    names: dict[str, str] = {}
    for r in voices:
        lang, file = r[1], r[4]
        # -v takes the language, the voice name (spaces shown as _), the file or its basename,
        # and any of the other languages the voice serves; the letter case does not matter
        for spelling in (lang, r[3], r[3].replace("_", " "), file, file.rsplit("/", 1)[-1],
                         *re.findall(r"\(([^ )]+) \d+\)", r[5] if len(r) > 5 else "")):
            names.setdefault(spelling.lower(), lang)
    return names, frozenset(r[4].rsplit("/", 1)[-1] for r in variants)


def check_voice(voice: str) -> None:
    """Refuse (InputError) an espeak-ng ``voice`` (``NAME`` or ``NAME+VARIANT``) that espeak-ng
    does not have: it would speak another voice without a word (espeak-ng 1.51 does not fail)."""
    from artalk_core.styles import suggest

    lists = _voice_lists(_espeak_exe())
    if lists is None:
        return
    names, variants = lists
    base, plus, variant = voice.partition("+")
    if base.lower() not in names:
        codes = sorted(set(names.values()))
        raise InputError(f"unknown espeak-ng voice '{base}': {suggest(base.lower(), codes)}"
                         f"`espeak-ng --voices` lists them (e.g. en-us, en-gb, de, fr)")
    if plus and variant not in variants:
        raise InputError(f"unknown espeak-ng voice variant '{variant}' in '{voice}': "
                         f"{suggest(variant, sorted(variants))}`espeak-ng --voices=variant` lists them "
                         f"(e.g. f3, m3)")


def _espeak(text: str, voice: str, speed: int | None) -> bytes:
    exe = _espeak_exe()
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


def check_tts_options(*, engine: str = "espeak", voice: str | None = None, speed: int | None = None) -> None:
    """The engine, and the espeak-only options (``voice``, ``speed``) refused with gtts or when
    espeak-ng has no such voice; before any work."""
    if engine not in TTS_ENGINES:
        raise InputError(f"unknown TTS engine '{engine}': choose one of {', '.join(TTS_ENGINES)}")
    if engine != "espeak":
        given = [flag for flag, value in (("--voice", voice), ("--speed", speed)) if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise InputError(f"{' and '.join(given)} {verb} to the espeak engine only (gtts has one voice per "
                             f"language: choose it with --lang)")
    elif voice is not None:
        check_voice(voice)


def synthesize(text: str, *, lang: str = "en", engine: str = "espeak", voice: str | None = None,
               speed: int | None = None):  # -> artalk_core.audio.Audio
    """Speak ``text``; returns 16 kHz mono audio (``Audio.samples`` float32 [S])."""
    from artalk_core.audio import load_audio

    check_tts_options(engine=engine, voice=voice, speed=speed)
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
