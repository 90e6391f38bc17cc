"""The standard streams, which a process may have been started without, and the names the user
gave to the inputs artalk reads through temp copies (stdin, pipes: see :func:`artalk_core.fileio.input_file`)."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

from artalk_core.errors import ArtalkError, InputError, OutputError


def stdin_binary() -> BinaryIO:
    """The binary stdin; InputError when the process was started with stdin closed (``<&-``)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError("cannot read stdin: it is closed (give a file, or pipe one into -)")
    return stream


def stdout_binary() -> BinaryIO:
    """The binary stdout; :func:`stdout_closed` when the process was started with stdout closed
    (``>&-``: Python then has no ``sys.stdout``). Every write of data to stdout starts here."""
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:
        raise stdout_closed()
    return stream


def stdout_closed() -> OutputError:
    """The error of writing to a stdout the process was started without."""
    return OutputError("cannot write stdout: it is closed (give -o FILE, or redirect stdout)")


_given: dict[str, str] = {}
"""Temp copy of a spooled stream or stdin -> the name the user gave (``/dev/fd/63``, ``<stdin>``).
Kept after the copy is gone: an error naming it is printed once the work has unwound. A few
entries a process (one per stream path given)."""


def note_given(copy: str | os.PathLike[str], name: str) -> None:
    """Remember that the temp file ``copy`` holds what the user gave as ``name``."""
    _given[os.fspath(copy)] = name


def given_name(path: str | os.PathLike[str]) -> str:
    """The name the user gave for ``path``: for the temp copy of a spooled input the stream path or
    ``<stdin>``, else ``path`` itself. For labels recorded in outputs and messages
    (``head FLAME (/dev/fd/63)``)."""
    return _given.get(os.fspath(path), os.fspath(path))


def given_names(text: str) -> str:
    """``text`` with each temp copy of a spooled input named as the user gave it (what a front end
    prints: a message from deep in a reader names the copy it read)."""
    for tmp, name in _given.items():
        if tmp in text:
            text = text.replace(tmp, name)
    return text


@contextlib.contextmanager
def errors_as_given() -> Iterator[None]:
    """An :class:`ArtalkError` raised in the block names each spooled input as the user gave it
    (:func:`given_names`), not its temp copy: for a library caller, who has no console doing it."""
    try:
        yield
    except ArtalkError as e:
        text = given_names(str(e))
        if text == str(e):
            raise
        renamed = copy.copy(e)
        renamed.args = (text,)
        raise renamed from None


__all__ = ["errors_as_given", "given_name", "given_names", "note_given", "stdin_binary", "stdout_binary", "stdout_closed"]
