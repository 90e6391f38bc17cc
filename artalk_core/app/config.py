"""What one app instance offers: its settings, engine, appearances, styles, languages and examples.

Nothing here imports Gradio; :mod:`artalk_core.app.layout` turns a :class:`Catalog` into the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from artalk_core.constants import FLAME_NAME, IMAGE_SIZE, TRACKED_FILE
from artalk_core.errors import ArtalkError, InputError
from artalk_core.fileio import PathLike
from artalk_core.options import ModelOptions

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout holding ``assets/speech_sample.wav`` and ``examples/`` (absent in an installed wheel)."""

LANGUAGES: list[tuple[str, str]] = [
    ("English", "en"), ("中文", "zh"), ("日本語", "ja"), ("Deutsch", "de"), ("Français", "fr"), ("Español", "es"),
]
"""The reference page's language menu: (label, code of :mod:`artalk_core.tts`)."""
MESH = "mesh"
"""The appearance id of the FLAME mesh head (the reference's ``shape_id='mesh'``)."""
CHARS_PER_SECOND = 25
"""Generous upper bound of speech rate: texts longer than max_seconds * this are refused before TTS."""


@dataclass
class AppConfig:
    """Settings of one app instance (the ``artalk app`` options)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    """The asset folder (model, styles, head, avatars), the device and the precision."""
    engine: str = "auto"  # auto: the model when <assets>/ARTalk_wav2vec.pt exists, else the energy engine
    tts_engine: str = "espeak"
    max_seconds: float = 60.0
    """Longest speech accepted (decoding stops there)."""
    max_upload_mb: float = 50.0
    """Largest file accepted, and the bound of a whole request body."""
    queue_size: int = 16
    """Generations that may wait; a request beyond that is refused (queue full)."""
    size: int = IMAGE_SIZE
    clip_length: int | None = None
    keep_seconds: float = 3600.0
    """Delivered results and uploads (Gradio's cache) are removed this long after they were made."""
    preload: bool = True
    """Load the model at start (fail then, not on the first visitor)."""
    examples: list[PathLike] | None = None
    """Example files (speech, or .txt texts); None: the project's bundled ones."""
    header_seconds: float = 10.0
    """A request's head must arrive within this long (after connecting, or after the previous response)."""
    body_seconds: float = 10.0
    """A request's body gets this long, plus a second per ``body_min_rate`` bytes received (then 408)."""
    body_min_rate: float = 16384.0
    """The slowest body upload accepted after the ``body_seconds`` grace, in bytes per second."""
    body_max_seconds: float = 600.0
    """The longest any request body may take."""
    client_connections: int = 32
    """Connections one client address may hold at once: for one more, its least recently heard-from
    stalled connection is closed; 429 only when all of them are being served (one client cannot take them all)."""
    max_connections: int = 256
    """Connections the server holds at once: for one more, a stalled one of the address holding the
    most is closed; 503 only when every connection is being served."""

    def check(self) -> None:
        if self.max_seconds <= 0:
            raise InputError(f"--max-seconds must be > 0, got {self.max_seconds:g}")
        if self.max_upload_mb <= 0:
            raise InputError(f"--max-upload-mb must be > 0, got {self.max_upload_mb:g}")
        if self.queue_size < 1:
            raise InputError(f"--queue-size must be at least 1, got {self.queue_size}")
        for name in ("header_seconds", "body_seconds", "body_min_rate", "body_max_seconds"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("client_connections", "max_connections"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.engine not in ("auto", "artalk", "energy"):
            raise InputError(f"unknown engine '{self.engine}': choose auto, artalk or energy")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass
class Example:
    """One row of the page's examples: speech file or text, with a preset style and appearance."""

    label: str
    audio: Path | None = None
    text: str | None = None
    language: str = "en"
    style: str = "default"
    appearance: str = MESH


@dataclass
class Catalog:
    """What the page offers, found once at start."""

    assets: Path
    engine: str  # artalk | energy
    has_model: bool
    has_flame: bool
    styles: list[str] = field(default_factory=list)
    appearances: list[tuple[str, str]] = field(default_factory=list)  # (label, id)
    examples: list[Example] = field(default_factory=list)
    notice: str = ""
    """A banner for visitors (engine or head stand-ins), in words; never a server path."""


def photoreal_avatars(assets: Path) -> list[str]:
    """Names of the photoreal (GAGAvatar) identities in ``<assets>/GAGAvatar/tracked.pt`` (empty when
    there is none, or it cannot be read)."""
    from artalk_core.render.avatar.tracked import load_tracked

    tracked = assets / TRACKED_FILE
    if not tracked.is_file():
        return []
    try:
        return sorted(str(name) for name in load_tracked(tracked))
    except ArtalkError:
        return []


def _example_language(path: Path) -> str:
    """``hello.txt`` -> en; ``bonjour.fr.txt`` / ``hallo_de.txt`` -> that language."""
    codes = {code for _, code in LANGUAGES}
    m = re.search(r"[._-]([a-z]{2})$", path.stem)
    return m.group(1) if m and m.group(1) in codes else "en"


def find_examples(paths: list[PathLike] | None, style: str) -> list[Example]:
    """Example rows from ``paths`` (None: the project's assets/*.wav, examples/speech/*, examples/text/*.txt)."""
    if paths is None:
        found: list[Path] = []
        for folder, pattern in ((PROJECT_ROOT / "assets", "*.wav"), (PROJECT_ROOT / "examples" / "speech", "*"),
                                (PROJECT_ROOT / "examples" / "text", "*.txt")):
            if folder.is_dir():
                found += sorted(folder.glob(pattern))
    else:
        found = [Path(p) for p in paths]
    rows: list[Example] = []
    seen: set[Path] = set()
    for p in found:
        real = p.resolve()
        if real in seen or not real.is_file() or real.stat().st_size > 8 * 1024 * 1024:
            continue
        seen.add(real)
        if p.suffix.lower() == ".txt":
            text = real.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                rows.append(Example(label=p.name, text=text, language=_example_language(p), style=style))
        elif p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"):
            rows.append(Example(label=p.name, audio=real, style=style))
    return rows


def _has_model(folder: Path) -> bool:
    """Whether the asset folder holds the checkpoint its config names (ARTalk_wav2vec.pt, or ARTalk_mimi.pt
    for a config saying AUDIO_ENCODER mimi)."""
    from artalk_core.assets import checkpoint_path

    try:
        checkpoint_path(None, folder)
    except ArtalkError:  # absent, or a config.json that cannot be read: no model
        return False
    return True


def build_catalog(config: AppConfig) -> Catalog:
    """Look at the asset folder once: engine, heads, styles, examples and the visitor banner."""
    from artalk_core.assets import assets_dir, available_styles

    config.check()
    folder = assets_dir(config.model.assets)
    has_model = _has_model(folder)
    has_flame = (folder / FLAME_NAME).is_file()
    engine = ("artalk" if has_model else "energy") if config.engine == "auto" else config.engine
    styles = available_styles(folder)
    head = "FLAME mesh head" if has_flame else "Mesh head (stand-in)"
    appearances = [(head, MESH)] + [(f"Photoreal: {name}", name) for name in photoreal_avatars(folder)]
    examples = find_examples(config.examples, styles[0] if styles else "default")
    notes = []
    if engine == "energy":
        notes.append("the released ARTalk model is not installed on this server, so the motion comes from a "
                     "simple stand-in (the energy engine: the jaw follows loudness)" if not has_model else
                     "this server runs the simple energy engine (the jaw follows loudness), not the model")
    if not has_flame:
        notes.append("the head is a stand-in mesh (the licensed FLAME head is not installed)")
    notice = ("Preview mode: " + "; ".join(notes) + ".") if notes else ""
    return Catalog(assets=folder, engine=engine, has_model=has_model, has_flame=has_flame, styles=styles,
                   appearances=appearances, examples=examples, notice=notice)


__all__ = ["AppConfig", "Catalog", "Example", "LANGUAGES", "MESH", "build_catalog",
           "find_examples", "photoreal_avatars"]
