"""The ``artalk`` command: registers the subcommands. Heavy imports happen inside the commands."""

from __future__ import annotations

import contextlib

import typer

from artalk_core import __version__

app = typer.Typer(
    name="artalk",
    help="Speech-driven 3D head animation (ARTalk) as composable steps: "
         "tts -> encode-audio -> generate -> smooth -> render -> mux.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from artalk_cli.console import cli_errors

        with cli_errors():
            print(f"artalk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """artalk: speech -> FLAME motion -> mesh video."""


def _register() -> None:
    from artalk_cli.commands import ALL

    for module in ALL:
        module.register(app)


_register()


def _hold_standard_fds() -> None:
    """Open /dev/null on a standard descriptor (0, 1, 2) the process was started without (``>&-``).

    Otherwise the next file opened takes its number: an output's temp file would become "fd 1",
    and whatever a library or a child process writes to its stdout would land in that file.
    Python has already set the matching ``sys.std*`` to None, which stays so: writing a closed
    stdout is still the command's output error (:class:`artalk_cli.console.ClosedStdout`).
    """
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:  # the lowest free number is fd itself, unless a lower one is closed too
                    os.dup2(null, fd)
                    os.close(null)


def main() -> None:
    _hold_standard_fds()
    try:
        app()
    except SystemExit as e:
        from artalk_cli.console import stopped_by

        if stopped_by:
            # Stopped by a signal, cleanup done: leave now. A reader thread may still be blocked
            # on stdin (a stream input), and the interpreter's shutdown would then abort on
            # stdin's lock instead of exiting with our status.
            import os
            import sys

            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(e.code if isinstance(e.code, int) else 1)
        raise


if __name__ == "__main__":
    main()
