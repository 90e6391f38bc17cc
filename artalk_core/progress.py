"""The progress-callback protocol core functions accept (the CLI draws it as a rich bar)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances; ``total`` may stay constant per stage."""

OptionalProgress = ProgressFn | None


def report(progress: OptionalProgress, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(stage, done, total)
