"""artalk info: what any artalk (or reference) file holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from artalk_cli.console import cli_errors
from artalk_cli.options import Debug, Quiet


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info_cmd(
        file: Annotated[str, typer.Argument(help="A motion, features, vertices, audio or video file, or - for stdin.")],
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Shape, duration and metadata of a file."""
        with cli_errors(debug):
            from artalk_core.info import describe_file, format_description

            desc = describe_file(file)
            if as_json:
                print(json.dumps(desc, indent=2, sort_keys=True, default=str))
            else:
                print(format_description(desc))
