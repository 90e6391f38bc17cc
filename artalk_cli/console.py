"""Shared consoles, error reporting and progress bars. stdout stays clean for pipes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False)
"""Everything human-readable goes to stderr; stdout carries data only."""


def say(message: str, *, quiet: bool = False) -> None:
    """A status line on stderr unless quiet."""
    if not quiet:
        err.print(message, soft_wrap=True)


def where(path: object) -> str:
    """How to name an output in a status line (``-`` is stdout)."""
    return "stdout" if str(path) == "-" else str(path)


@contextlib.contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn library errors into one red line and the error's exit code (a traceback with --debug)."""
    import warnings

    from artalk_core.errors import ArtalkError, ArtalkWarning

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, ArtalkWarning):
            err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)
        else:
            previous(message, category, *args, **kwargs)  # type: ignore[arg-type]

    guard = warnings.catch_warnings()  # restores the filters and showwarning afterwards
    guard.__enter__()
    previous = warnings.showwarning
    warnings.simplefilter("always", ArtalkWarning)
    warnings.showwarning = show  # type: ignore[assignment]
    try:
        yield
    except typer.Exit:
        raise
    except ArtalkError as e:
        if debug:
            err.print_exception()
        err.print(f"[bold red]error:[/] {e}", markup=True, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error of ours.
        with contextlib.suppress(Exception):
            sys.stdout = None  # type: ignore[assignment]
        raise typer.Exit(1) from None
    except Exception as e:  # an unexpected bug: still one line unless --debug
        if debug:
            err.print_exception()
        else:
            err.print(f"[bold red]error:[/] unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                      markup=True, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        guard.__exit__(None, None, None)


class ProgressBars:
    """A rich progress display on stderr usable as the core's ``progress(stage, done, total)``.

    The display starts on the first report, so a step with nothing to report prints nothing.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def _start(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
        self._progress.__enter__()
        return self._progress

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        progress = self._progress or self._start()
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = progress.add_task(stage, total=total)
        progress.update(task, completed=done, total=total)
