"""Shared consoles, error reporting, signals and progress bars. stdout stays clean for pipes.

Every message prints user-supplied text (file names, style names, languages, library messages)
literally: nothing here passes text through rich markup, so ``a[bold]b.wav`` shows as is and
``[/]`` never raises; control characters in it are shown escaped (``\x1b``). Styles (a red
``error:``) are applied to fixed prefixes only.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

err = Console(stderr=True, highlight=False)
"""Everything human-readable goes to stderr; stdout carries data only."""


def reset_consoles() -> None:
    """Re-read the environment (NO_COLOR, COLUMNS) and the current ``sys.stderr`` into :data:`err`.

    For the in-process test runner, which swaps the standard streams between runs; the object is
    kept, since commands hold it by name.
    """
    err.__init__(stderr=True, highlight=False)  # type: ignore[misc]


def _line(prefix: str, style: str, message: object) -> Text:
    from artalk_core.stdio import given_names
    from artalk_core.text import printable

    text = Text()
    if prefix:
        text.append(prefix, style=style)
        text.append(" ")
    # a name with \x1b[... cannot drive the terminal; a spooled pipe is named as the user gave it
    text.append(printable(given_names(str(message)), keep_lines=True))
    return text


def say(message: object, *, quiet: bool = False) -> None:
    """A status line on stderr unless quiet, printed literally (never as markup)."""
    if not quiet:
        err.print(_line("", "", message), soft_wrap=True)


def note(message: object, *, quiet: bool = False) -> None:
    """A yellow ``note:`` line on stderr unless quiet; ``message`` printed literally."""
    if not quiet:
        err.print(_line("note:", "yellow", message), soft_wrap=True)


def warning(message: object) -> None:
    """A yellow ``warning:`` line on stderr (also under --quiet: a warning is not progress)."""
    err.print(_line("warning:", "yellow", message), soft_wrap=True)


def error(message: object) -> None:
    """The one red ``error:`` line of a failed command; ``message`` printed literally."""
    err.print(_line("error:", "bold red", message), soft_wrap=True)


def fail(message: object, code: int) -> typer.Exit:
    """Print the error line; the Exit to raise (for option callbacks, which run before the command)."""
    error(message)
    return typer.Exit(code)


def where(path: object) -> str:
    """How to name an output in a status line (``-`` is stdout)."""
    return "stdout" if str(path) == "-" else str(path)


# ---- signals -------------------------------------------------------------------------------

stopped_by: list[int] = []
"""Signals that stopped a command in this process (read by :func:`artalk_cli.main.main`)."""


# ---- stdout --------------------------------------------------------------------------------

class ClosedStdout(io.TextIOBase):
    """``sys.stdout`` of a command whose process was started without one (``>&-``: Python then
    sets it to None, and ``print`` writes nothing, silently): any write, text or binary
    (``.buffer``), raises the OutputError ``cannot write stdout``, so every command that writes
    to stdout fails with exit 4 instead of losing its output or crashing."""

    def _closed(self) -> NoReturn:
        from artalk_core.stdio import stdout_closed

        raise stdout_closed()

    def write(self, text: str) -> int:
        self._closed()

    @property
    def buffer(self) -> Any:
        self._closed()

    def writable(self) -> bool:
        return True


class CheckedStdout:
    """``sys.stdout`` of a command: the real one, whose failed text writes (``> /dev/full``, a
    descriptor open for reading only) are the OutputError ``cannot write stdout`` rather than an
    unexpected OSError. A closed pipe (BrokenPipeError) passes as it is: the reader went away."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _checked(self, method: str, *args: Any) -> Any:
        from artalk_core.fileio import output_error

        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise output_error("stdout", e) from e

    def write(self, text: str) -> int:
        return int(self._checked("write", text))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._checked("flush")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _stdout_checked() -> Iterator[None]:
    """Within the block ``sys.stdout`` is a :class:`CheckedStdout` (a :class:`ClosedStdout` when
    there is none); what the command printed is flushed at its end, inside the block, so a write
    that fails is still the command's error."""
    real = sys.stdout
    sys.stdout = ClosedStdout() if real is None else CheckedStdout(real)
    try:
        yield
        sys.stdout.flush()
    finally:
        if isinstance(sys.stdout, (ClosedStdout, CheckedStdout)):
            sys.stdout = real


# ---- errors --------------------------------------------------------------------------------

@contextlib.contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn any exception into one red line and an exit code (a traceback with --debug), as
    :func:`artalk_core.errors.explain` says: the library's typed errors with their codes, a stop
    signal (SIGINT/SIGTERM/SIGHUP, through :func:`artalk_core.interrupt.stop_signals`) as 130 or
    128 + N with no partial output left, a bug as "unexpected ...". Warnings of the library are
    yellow lines. A closed stdout is an output error when written (:class:`ClosedStdout`).

    A stop signal is never lost: one swallowed on the way (in a finaliser) stops the command at its
    end. Outputs are committed atomically, so a signal before an output's commit leaves no output
    and one after it finds the output complete: the line then names the outputs that were complete
    (``interrupted after writing x.h5 (complete)``); the status is 130 / 128 + N either way.
    """
    import warnings

    from artalk_core.errors import ArtalkWarning, Interrupted, explain
    from artalk_core.fileio import recording_commits
    from artalk_core.interrupt import check_interrupted, stop_signals

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, ArtalkWarning):
            warning(message)
        else:
            previous(message, category, *args, **kwargs)  # type: ignore[arg-type]

    stopped_by.clear()
    guard = warnings.catch_warnings()  # restores the filters and showwarning afterwards
    guard.__enter__()
    previous = warnings.showwarning
    warnings.simplefilter("always", ArtalkWarning)
    warnings.showwarning = show
    written: list[tuple[int, str]] = []
    try:
        with stop_signals(), recording_commits() as written, _stdout_checked():
            yield
            check_interrupted()  # a signal swallowed by a finaliser after the last safe point
    except typer.Exit:
        raise
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error of ours.
        with contextlib.suppress(Exception):
            sys.stdout = None
        raise typer.Exit(1) from None
    except (Exception, KeyboardInterrupt) as e:
        said = explain(e)
        text = said.text
        if isinstance(e, KeyboardInterrupt):
            stopped_by.append(e.signo if isinstance(e, Interrupted) else int(signal.SIGINT))
            # the outputs complete when the signal came (not those written in answer to it, as a
            # batch's results file)
            before = [name for seq, name in written if seq < getattr(e, "sequence", float("inf"))]
            if before:
                text += f" after writing {_names(before)} (complete)"
        elif debug:
            err.print_exception()
        error(text if said.expected or debug else f"{text} (rerun with --debug for the traceback)")
        raise typer.Exit(said.exit_code) from None
    finally:
        guard.__exit__(None, None, None)


def _names(paths: list[str], most: int = 3) -> str:
    names = list(dict.fromkeys(paths))  # in order, each once
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


class ProgressBars:
    """A rich progress display on stderr usable as the core's ``progress(stage, done, total)``.

    The display starts on the first report, so a step with nothing to report prints nothing.
    Each report is also a safe point where an interrupt swallowed by a finaliser is raised again.
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

        # markup=False: a stage name is shown as written
        self._progress = Progress(TextColumn("{task.description:<14}", markup=False), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                  console=err, transient=False)
        self._progress.__enter__()
        return self._progress

    def __call__(self, stage: str, done: int, total: int) -> None:
        from artalk_core.interrupt import check_interrupted

        check_interrupted()
        if self.quiet:
            return
        progress = self._progress or self._start()
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = progress.add_task(stage, total=total)
        progress.update(task, completed=done, total=total)
