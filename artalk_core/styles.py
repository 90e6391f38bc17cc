"""Style clips: ``default`` (no style), a name in ``<assets>/style_motion/``, or a path to any motion file."""

from __future__ import annotations

import contextlib
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.assets import available_styles, style_dir
from artalk_core.errors import StyleError
from artalk_core.fileio import PathLike, is_stream_path, sha256_bytes, sha256_file, spooled
from artalk_core.stdio import given_name

NO_STYLE_NAMES = ("default", "none")


@dataclass
class Style:
    """A resolved style condition; ``motion`` is None for the null (default) style."""

    motion: np.ndarray | None  # float32 [50,106] or None
    label: str  # what the user asked for, recorded in output metadata
    sha256: str  # of the style file ("" for the default style)


def suggest(name: str, choices: list[str]) -> str:
    """A 'did you mean' phrase for a mistyped name (may be empty)."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}? " if close else ""


def style_label(style: Any) -> str:
    """The label a style is recorded (and named in files) under, as :func:`resolve_style` gives it:
    ``default`` for no style, the name or path as given, a :class:`Style`'s own label, ``array``."""
    if isinstance(style, Style):
        return style.label
    if isinstance(style, os.PathLike):
        style = os.fspath(style)
    if style is None or (isinstance(style, str) and style.lower() in NO_STYLE_NAMES):
        return "default"
    return style if isinstance(style, str) else "array"


def style_file(style: Any, *, assets: PathLike | None = None) -> Path | None:
    """The file ``--style`` names without reading it: an existing path, else
    ``<assets>/style_motion/<name>.pt`` if present; None for the default style, an unknown name or
    a style that is not a name (an array, a :class:`Style`)."""
    if isinstance(style, os.PathLike):
        style = os.fspath(style)
    if not isinstance(style, str) or style.lower() in NO_STYLE_NAMES:
        return None
    path = Path(style)
    if path.is_file() or is_stream_path(path):  # a FIFO, <(...): read by resolve_style through a temp copy
        return path
    candidate = style_dir(assets) / f"{style}.pt"
    return candidate if candidate.is_file() else None


def resolve_style(style: None | str | np.ndarray | Style, *, assets: PathLike | None = None,
                  style_start: int = 0) -> Style:
    """Turn ``-s/--style`` into a [50,106] clip.

    ``None``/``default``/``none`` -> the null style; an existing path -> that file (a reference style
    ``.pt`` or any motion file, frames ``style_start`` .. +50); otherwise a name looked up in
    ``<assets>/style_motion/<name>.pt``.
    """
    from artalk_core.formats.motion import read_style

    if isinstance(style, Style):
        return style
    if not isinstance(style, str) and style is not None:
        return style_from_array(style)
    if style is None or style.lower() in NO_STYLE_NAMES:
        return Style(motion=None, label="default", sha256="")
    path = style_file(style, assets=assets)
    if path is None:
        names = available_styles(assets)
        looks_like_path = any(sep in style for sep in ("/", "\\")) or Path(style).suffix != ""
        if looks_like_path:
            raise StyleError(f"style file not found: {style}")
        if names:
            listing = f"available in {style_dir(assets)}: {', '.join(['default', *names])}"
        else:
            listing = (f"no style files in {style_dir(assets)} (only 'default' is available; "
                       f"get the released styles with `artalk assets download`)")
        raise StyleError(f"unknown style '{style}': {suggest(style, names)}{listing}")
    with contextlib.ExitStack() as stack:
        path = spooled(stack, path)  # a pipe is read once, into a temp file: read, then hashed
        motion = read_style(path, style_start=style_start)
        sha = sha256_file(path)
    return Style(motion=np.asarray(motion, dtype=np.float32), label=given_name(style), sha256=sha)


def style_from_array(motion: Any, *, label: str = "array") -> Style:
    """A style from an in-memory [50,106] array (numpy or torch)."""
    from artalk_core.constants import MOTION_DIM, STYLE_FRAMES

    arr = np.asarray(motion.detach().cpu() if hasattr(motion, "detach") else motion, dtype=np.float32)
    if arr.shape != (STYLE_FRAMES, MOTION_DIM):
        raise StyleError(f"a style clip must be [{STYLE_FRAMES}, {MOTION_DIM}], got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise StyleError("the style clip holds NaN or Inf values")
    arr = np.ascontiguousarray(arr)
    return Style(motion=arr, label=label, sha256=sha256_bytes(arr.tobytes()))
