"""Text from files and users shown on a terminal: control characters escaped, so a file's metadata
or a name cannot move the cursor, recolour the terminal or reorder what is shown (``\\x1b[2J``,
bidi overrides)."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with control characters (C0, DEL, C1, bidi overrides) shown as ``\\x1b`` /
    ``\\u202e``; tabs and newlines too unless ``keep_lines`` (a message of several lines)."""
    text = _CONTROL.sub(_escape, text)
    return text if keep_lines else _LINE_BREAKS.sub(_escape, text)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(text: str, *, max_len: int | None = None, default: str = "x") -> str:
    """``text`` as a file-name part: runs of anything but ASCII letters, digits, ``_`` and ``-``
    become ``_`` (so no path separator, dot or space survives), cut to ``max_len``; ``default``
    when nothing is left (``speech.wav`` -> ``speech_wav``, ``happy 1`` -> ``happy_1``)."""
    out = _UNSAFE.sub("_", text).strip("_")[:max_len]
    return out or default


__all__ = ["printable", "slug"]
