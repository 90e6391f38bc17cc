"""artalk frame: one frame of a video as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import cli_errors, say
from artalk_cli.options import Debug, Quiet


def register(app: typer.Typer) -> None:
    @app.command("frame")
    def frame_cmd(
        video: Annotated[Path, typer.Argument(help="A video file.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="PNG file.")],
        index: Annotated[int, typer.Option("--index", "-i", min=0, help="Frame number (0 = first).")] = 0,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Save one frame of a video as a PNG (a thumbnail, or a look at a render)."""
        with cli_errors(debug):
            from artalk_core.video import extract_frame

            w, h = extract_frame(video, output, index=index)
            say(f"wrote {output}: frame {index}, {w}x{h}", quiet=quiet)
