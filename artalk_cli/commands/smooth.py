"""artalk smooth: the reference post-processing of a raw motion file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import cli_errors, say, where
from artalk_cli.options import ClipLength, Debug, FixPose, Quiet


def register(app: typer.Typer) -> None:
    @app.command("smooth")
    def smooth_cmd(
        motion: Annotated[str, typer.Argument(help="Raw motion file (ours or a reference .pt), or - for stdin.")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Output motion file; - for stdout. Default: <input stem>.smooth.motion.safetensors.", show_default=False)] = None,
        clip_length: ClipLength = None,
        fix_pose: FixPose = False,
        force: Annotated[bool, typer.Option("--force", help="Smooth even if the file is already smoothed.")] = False,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Savitzky-Golay smoothing (window 5/order 2; head rotation 9/3), clip, fix-pose, jaw y/z zeroed."""
        with cli_errors(debug):
            from artalk_core.pipeline import default_output, smooth

            out = output if output is not None else default_output(motion, ".smooth.motion.safetensors")
            result = smooth(motion, output=out, clip_length=clip_length, fix_pose=fix_pose, force=force)
            say(f"wrote {where(out)}: {result.frames} frames, smoothed", quiet=quiet)
