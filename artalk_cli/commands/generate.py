"""artalk generate: speech (audio or features) -> FLAME motion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from artalk_cli.console import ProgressBars, cli_errors, say, where
from artalk_cli.options import (Assets, Checkpoint, ClipLength, Debug, Device, FixPose, ModelConfig, Precision,
                                 Quiet)


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(
        input: Annotated[str, typer.Argument(help="Speech (any audio/video file), a features file from encode-audio, or - for stdin.")],
        style: Annotated[str, typer.Option("--style", "-s", help="'default' (no style), a name in <assets>/style_motion/, or a path to a style/motion file.")] = "default",
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Motion file (.safetensors); - for stdout. Default: <input stem>.motion.safetensors.", show_default=False)] = None,
        raw: Annotated[bool, typer.Option("--raw", help="Write the model output without post-processing (for `artalk smooth`).")] = False,
        clip_length: ClipLength = None,
        fix_pose: FixPose = False,
        style_start: Annotated[int, typer.Option("--style-start", min=0, help="First frame of the 50-frame style clip taken from a motion file.")] = 0,
        engine: Annotated[str, typer.Option("--engine", "-e", help="artalk (the model) or energy (weight-free preview from loudness).")] = "artalk",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the energy engine's head sway.")] = 0,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        assets: Assets = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Generate FLAME motion (25 fps, 106 channels) from speech, like the reference tool."""
        with cli_errors(debug):
            from artalk_core.pipeline import default_output, generate

            out = output if output is not None else default_output(input, ".motion.safetensors")
            with ProgressBars(quiet) as bar:
                motion = generate(input, style=style, style_start=style_start, output=out, raw=raw,
                                  clip_length=clip_length, fix_pose=fix_pose, engine=engine, seed=seed,
                                  checkpoint=checkpoint, model_config=model_config, assets=assets,
                                  device=device, precision=precision, progress=bar)
            kind = "raw" if raw else "post-processed"
            say(f"wrote {where(out)}: {motion.frames} frames ({motion.duration:.2f} s), {kind}, "
                f"engine {engine}, style {motion.meta.get('style')}", quiet=quiet)
