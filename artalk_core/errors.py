"""Typed exceptions of the library. The CLI turns each into one red line and an exit code."""

from __future__ import annotations


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


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: the step unwinds like Ctrl-C (temp files removed, no
    output replaced). ``signo`` is the signal; the CLI exits with 130 (SIGINT) or 128 + signo."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo


class ArtalkWarning(UserWarning):
    """Something the user should know that does not stop the step (damaged audio, silence, clipping).

    Raised through :func:`warnings.warn`; the CLI prints each as one yellow line.
    """


def warn(message: str) -> None:
    """Emit an :class:`ArtalkWarning` attributed to the caller's caller."""
    import warnings

    warnings.warn(message, ArtalkWarning, stacklevel=3)
