"""Typed exceptions of the library, and :func:`explain`: the one mapping of any exception to what a
front end says (the CLI's exit code and line, the web's plain sentence for a visitor)."""

from __future__ import annotations

import errno
import itertools
import signal
from dataclasses import dataclass


class ArtalkError(Exception):
    """Base of every error the library raises on purpose; ``exit_code`` is the CLI's exit status."""

    exit_code: int = 1


class InputError(ArtalkError):
    """A user-given value or file is unusable (wrong shape, NaN, empty, unknown name)."""

    exit_code = 2


class OptionsError(InputError, ValueError):
    """An option value, or a combination of options, that cannot work (raised when the options are
    made, before any work; a ValueError too, as configuration classes raise)."""


class AudioError(InputError):
    """Audio that cannot be decoded, is empty, or is shorter than one frame."""


class FormatError(InputError):
    """A file is not of the expected artalk (or reference) format."""


class StyleError(InputError):
    """An unknown style name or a malformed style clip."""


class ConfigError(InputError):
    """A model config that is malformed."""


class AssetError(ArtalkError):
    """A required asset file (checkpoint, FLAME head, style folder) is missing or wrong."""

    exit_code = 3


class CheckpointError(AssetError):
    """A checkpoint that does not match the model (missing / unexpected / mis-shaped keys)."""


class OutputError(ArtalkError):
    """An output path cannot be written."""

    exit_code = 4


class RenderError(ArtalkError):
    """The renderer cannot run (no OpenGL, bad mesh)."""

    exit_code = 5


class DependencyError(ArtalkError):
    """An optional dependency or system tool is not installed."""

    exit_code = 6


_SEQUENCE = itertools.count()


def sequence() -> int:
    """The next number of a process-wide sequence, to order events: an output's commit, a stop signal."""
    return next(_SEQUENCE)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: the step unwinds like Ctrl-C (temp files removed, no
    output replaced). ``signo`` is the signal; the CLI exits with 130 (SIGINT) or 128 + signo.
    ``sequence`` (:func:`sequence`) orders it after the outputs committed before it."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo
        self.sequence = sequence()


class ArtalkWarning(UserWarning):
    """Something the user should know that does not stop the step (damaged audio, silence, clipping).

    Raised through :func:`warnings.warn`; the CLI prints each as one yellow line.
    """


WRITE_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT})
"""OS errors of a write that only the output explains (disk full, file too large, read-only disk)."""


@dataclass(frozen=True)
class Explanation:
    """What a front end says about an exception (see :func:`explain`)."""

    exit_code: int
    """The CLI's exit status: the error's own code, 130 / 128 + N for a signal, 1 for a bug."""
    text: str
    """The one-line message (the CLI prints it after ``error:``)."""
    summary: str
    """For a visitor who cannot see the server (the web): the kind of problem in plain words."""
    about_input: bool
    """True when ``text`` is about what the user gave (so a visitor may read it, paths hidden);
    False for the server's own problems (files, programs, bugs), whose text is for its log."""
    expected: bool = True
    """False for a bug (an exception artalk did not raise on purpose)."""


_SUMMARIES: tuple[tuple[type[BaseException], str, bool], ...] = (
    (AudioError, "The speech could not be used.", True),
    (StyleError, "The style could not be used.", True),
    (InputError, "The input could not be used.", True),
    (AssetError, "The server's model files are missing or damaged, so it cannot make videos right now.", False),
    (DependencyError, "This server lacks a program it needs for that, so it cannot do it right now.", False),
    (RenderError, "The video could not be made on this server; its log has the details.", False),
    (OutputError, "The video could not be made on this server; its log has the details.", False),
)
BUG_SUMMARY = "Something went wrong on the server while making the video; its log has the details."


def explain(e: BaseException) -> Explanation:
    """The one mapping of an exception to what is said about it, for every front end.

    An :class:`ArtalkError` says its own text with its exit code; a stop signal (:class:`Interrupted`,
    KeyboardInterrupt) ``interrupted`` / ``stopped by SIGTERM`` with 130 / 128 + N; an OS error of
    a write that only the output explains (:data:`WRITE_ERRNOS`) is an output error (exit 4); anything
    else is a bug (exit 1, ``unexpected ...``).
    """
    if isinstance(e, KeyboardInterrupt):
        signo = e.signo if isinstance(e, Interrupted) else int(signal.SIGINT)
        text = "interrupted" if signo == signal.SIGINT else f"stopped by {signal.Signals(signo).name}"
        return Explanation(130 if signo == signal.SIGINT else 128 + signo, text, "Stopped.", False)
    if isinstance(e, ArtalkError):
        summary, about_input = next(((s, a) for kind, s, a in _SUMMARIES if isinstance(e, kind)), (BUG_SUMMARY, False))
        return Explanation(e.exit_code, str(e), summary, about_input)
    if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
        where = f" ({e.filename})" if e.filename else ""
        return Explanation(OutputError.exit_code, f"cannot write the output: {e.strerror}{where}",
                           dict((k, s) for k, s, _ in _SUMMARIES)[OutputError], False)
    return Explanation(1, f"unexpected {type(e).__name__}: {e}", BUG_SUMMARY, False, expected=False)


def warn(message: str) -> None:
    """Emit an :class:`ArtalkWarning` attributed to the caller's caller."""
    import warnings

    warnings.warn(message, ArtalkWarning, stacklevel=3)
