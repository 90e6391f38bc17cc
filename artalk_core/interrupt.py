"""Stopping cleanly: the one mechanism by which a stop signal ends work, for every front end.

SIGINT (Ctrl-C), SIGTERM and SIGHUP unwind the work as an :class:`~artalk_core.errors.Interrupted`
(a KeyboardInterrupt): temporary files are removed, no output is replaced. :func:`stop_signals`
installs that for a block of work in the main thread: the CLI around each command, a batch worker
around its clips, the web app and the live server around their serving loop (uvicorn then shuts
down gracefully and the Interrupted ends the loop). If the exception lands in a finaliser (a
``__del__`` or weakref callback, where Python can only print it and go on), the signal was noted:
:func:`check_interrupted`, called at safe points (every progress report, every output's commit),
raises it again.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from artalk_core.errors import Interrupted

STOP_SIGNALS: tuple[str, ...] = ("SIGINT", "SIGTERM", "SIGHUP")
"""The signals that stop work (each exits 128 + its number; SIGINT 130)."""

_noted: list[int] = []


def note_interrupt(signo: int) -> None:
    """Remember that a stop signal arrived (so :func:`check_interrupted` raises it again)."""
    _noted.append(signo)


def clear_interrupt() -> None:
    """Forget the noted signals (the interrupt was handled)."""
    _noted.clear()


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a stop signal arrived and its exception was swallowed. Called at
    safe points, above all before an output replaces an existing file."""
    if _noted:
        raise Interrupted(_noted[0])


def _raise(signo: int, frame: FrameType | None) -> None:
    note_interrupt(signo)
    raise Interrupted(signo)


@contextlib.contextmanager
def stop_signals(signals: Iterable[str] = STOP_SIGNALS, *, ignore: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, each of ``signals`` raises :class:`Interrupted` in the main thread and
    ``ignore`` signals are ignored (a batch worker leaves Ctrl-C to its parent). Previous handlers
    come back afterwards; noted signals are forgotten at both ends. Off the main thread (where
    Python cannot set handlers) the block runs as it is."""
    clear_interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    handlers: list[tuple[str, Any]] = [*((n, _raise) for n in signals), *((n, signal.SIG_IGN) for n in ignore)]
    for name, handler in handlers:
        signo = getattr(signal, name, None)
        if signo is not None:
            with contextlib.suppress(ValueError, OSError):
                previous.setdefault(signo, signal.signal(signo, handler))
    old_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        # An interrupt swallowed by a finaliser: silent here, raised again at the next safe point.
        if not isinstance(unraisable.exc_value, Interrupted):
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


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Within the block a stop signal is only noted; it takes effect when the block ends (through
    the handler it would have met: :func:`stop_signals`' raises :class:`Interrupted`), even when
    the block failed. For work that must not be cut in the middle: a C library calling back into
    Python (an exception raised inside HDF5's write callback leaves the file in a state that
    crashes the process later), or an output's commit (the rename and its record). Only Python
    handlers are held (an ignored signal stays ignored); off the main thread the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signo: int, frame: FrameType | None) -> None:
        held.append(signo)

    previous: dict[int, Any] = {}
    for name in STOP_SIGNALS:
        signo = getattr(signal, name, None)
        if signo is not None and callable(signal.getsignal(signo)):
            with contextlib.suppress(ValueError, OSError):
                previous[signo] = signal.signal(signo, hold)
    try:
        yield
    finally:
        for signo, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signo, handler)
        if held:  # now, outside the block: the handler raises (Interrupted, KeyboardInterrupt)
            previous[held[0]](held[0], None)


__all__ = ["STOP_SIGNALS", "check_interrupted", "clear_interrupt", "note_interrupt", "signals_held", "stop_signals"]
