"""Shared consoles, error reporting, signals and progress bars. stdout stays clean for pipes.

Every message prints user-supplied text (file names, style names, languages, library messages)
literally: nothing here passes text through rich markup, so ``a[bold]b.wav`` shows as is and
``[/]`` never raises; control characters in it are shown escaped (``\x1b``). Styles (a red
``error:``) are applied to fixed prefixes only.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

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
    from artalk_core.text import printable

    text = Text()
    if prefix:
        text.append(prefix, style=style)
        text.append(" ")
    text.append(printable(str(message), keep_lines=True))  # a name with \x1b[... cannot drive the terminal
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

_HANDLED = ("SIGINT", "SIGTERM", "SIGHUP")

stopped_by: list[int] = []
"""Signals that stopped a command in this process (read by :func:`artalk_cli.main.main`)."""


def _on_signal(signo: int, frame: FrameType | None) -> None:
    """Raise :class:`~artalk_core.errors.Interrupted` in the main thread, and remember the signal.

    The exception unwinds the work (temp files removed, outputs left untouched). If it lands in a
    finaliser (a ``__del__`` or weakref callback, where Python can only print it and go on), the
    remembered signal is raised again at the next safe point: the progress callback and every
    output's commit (:func:`artalk_core.fileio.check_interrupted`), so the run still stops.
    """
    from artalk_core.errors import Interrupted
    from artalk_core.fileio import note_interrupt

    note_interrupt(signo)
    raise Interrupted(signo)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP all unwind as an :class:`Interrupted` (main thread only)."""
    from artalk_core.errors import Interrupted
    from artalk_core.fileio import clear_interrupt

    clear_interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for name in _HANDLED:
        signo = getattr(signal, name, None)
        if signo is not None:
            with contextlib.suppress(ValueError, OSError):
                previous[signo] = signal.signal(signo, _on_signal)
    old_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        # An interrupt swallowed by a finaliser: silent here, it is re-raised at the next safe point.
        if isinstance(unraisable.exc_value, Interrupted):
            return
        old_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for signo, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signo, handler if handler is not None else signal.SIG_DFL)
        clear_interrupt()


# ---- errors --------------------------------------------------------------------------------

_OUTPUT_ERRNOS = {"ENOSPC", "EFBIG", "EROFS", "EDQUOT"}


@contextlib.contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn library errors into one red line and the error's exit code (a traceback with --debug).

    Also: warnings of the library as yellow lines, and SIGINT/SIGTERM/SIGHUP as a clean stop
    (exit 130 for SIGINT, 128 + the signal number otherwise; no partial output left).
    """
    import errno
    import warnings

    from artalk_core.errors import ArtalkError, ArtalkWarning, Interrupted

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
    try:
        with _signals():
            yield
    except typer.Exit:
        raise
    except ArtalkError as e:
        if debug:
            err.print_exception()
        error(e)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        signo = e.signo if isinstance(e, Interrupted) else int(signal.SIGINT)
        stopped_by.append(signo)
        error("interrupted" if signo == signal.SIGINT else f"stopped by {signal.Signals(signo).name}")
        raise typer.Exit(130 if signo == signal.SIGINT else 128 + signo) from None
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error of ours.
        with contextlib.suppress(Exception):
            sys.stdout = None
        raise typer.Exit(1) from None
    except OSError as e:
        if e.errno is not None and errno.errorcode.get(e.errno) in _OUTPUT_ERRNOS:
            # A write that failed below the output helpers (a library writing on its own): still
            # the output's fault, said plainly.
            if debug:
                err.print_exception()
            error(f"cannot write the output: {e.strerror}" + (f" ({e.filename})" if e.filename else ""))
            raise typer.Exit(4) from None
        _unexpected(e, debug)
    except Exception as e:  # an unexpected bug: still one line unless --debug
        _unexpected(e, debug)
    finally:
        guard.__exit__(None, None, None)


def _unexpected(e: Exception, debug: bool) -> None:
    if debug:
        err.print_exception()
    else:
        error(f"unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)")
    raise typer.Exit(1) from None


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
        from artalk_core.fileio import check_interrupted

        check_interrupted()
        if self.quiet:
            return
        progress = self._progress or self._start()
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = progress.add_task(stage, total=total)
        progress.update(task, completed=done, total=total)
