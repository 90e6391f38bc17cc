"""artalk mux: add the speech to a rendered video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import cli_errors, say
from artalk_cli.options import Debug, Quiet


def register(app: typer.Typer) -> None:
    @app.command("mux")
    def mux_cmd(
        video: Annotated[Path, typer.Argument(help="Video from `artalk render`.")],
        audio: Annotated[Path, typer.Argument(help="Speech (any audio file).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Output video (.mp4).")],
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Mux speech into a video as AAC, cut to the video's length exactly as the reference does."""
        with cli_errors(debug):
            from artalk_core.render.stage import mux

            info = mux(video, audio, output=output)
            say(f"wrote {output}: {info.get('frames')} frames with audio", quiet=quiet)
