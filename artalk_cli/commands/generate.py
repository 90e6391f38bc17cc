"""artalk generate: speech (audio or features) -> FLAME motion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from artalk_cli.console import ProgressBars, cli_errors, say, where
from artalk_cli.options import (
    Assets,
    Checkpoint,
    ClipLength,
    Debug,
    Device,
    FixPose,
    ModelConfig,
    Precision,
    Quiet,
    Seed,
)


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(
        input: Annotated[str, typer.Argument(help="Speech (any audio/video file), a features file from encode-audio, or - for stdin.")],
        style: Annotated[str, typer.Option("--style", "-s", help="'default' (no style), a name in <assets>/style_motion/, or a path to a style/motion file.")] = "default",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Motion file (.safetensors); - for stdout. Default: <input stem>.motion.safetensors.", show_default=False)] = None,
        raw: Annotated[bool, typer.Option("--raw", help="Write the model output without post-processing (for `artalk smooth`).")] = False,
        clip_length: ClipLength = None,
        fix_pose: FixPose = False,
        style_start: Annotated[int, typer.Option("--style-start", min=0, help="First frame of the 50-frame style clip taken from a motion file.")] = 0,
        engine: Annotated[str, typer.Option("--engine", "-e", help="artalk (the model) or energy (weight-free preview from loudness).")] = "artalk",
        seed: Seed = 0,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        assets: Assets = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        stream: Annotated[bool, typer.Option("--stream", help="Read the speech progressively (stdin or a pipe: a WAV stream, or raw PCM with --stream-format raw) and write the frames as soon as they are made (each 4-s chunk's with the model, each 40-ms frame's with the energy engine), as an NDJSON motion stream (default -o -; see schemas/README.md). Same numbers as without --stream; post-processing runs with a 4-frame delay.")] = False,
        stream_format: Annotated[str, typer.Option("--stream-format", help="With --stream: wav (a RIFF/WAVE stream at any rate, any channels, PCM or float; resampled as files are) or raw (headerless 16-bit little-endian mono PCM at 16 kHz).")] = "wav",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Generate FLAME motion (25 fps, 106 channels) from speech, like the reference tool."""
        with cli_errors(debug):
            from artalk_core.options import ModelOptions, MotionOptions

            motion_options = MotionOptions(style=style, style_start=style_start, engine=engine,
                                           clip_length=clip_length, fix_pose=fix_pose, seed=seed)
            model = ModelOptions(assets=assets, checkpoint=checkpoint, model_config=model_config, device=device,
                                 precision=precision)
            if stream or stream_format != "wav":
                _stream(input, output=output, raw=raw, motion=motion_options, model=model, stream=stream,
                        stream_format=stream_format, quiet=quiet)
                return
            from artalk_core.pipeline import default_output, generate

            out = output if output is not None else default_output(input, ".motion.safetensors")
            with ProgressBars(quiet) as bar:
                motion = generate(input, output=out, raw=raw, motion=motion_options, model=model, progress=bar)
            kind = "raw" if raw else "post-processed"
            say(f"wrote {where(out)}: {motion.frames} frames ({motion.duration:.2f} s), {kind}, "
                f"engine {engine}, style {motion.meta.get('style')}", quiet=quiet)


def _stream(input: str, *, output: Path | None, raw: bool, motion: Any, model: Any, stream: bool,
            stream_format: str, quiet: bool) -> None:
    """`generate --stream`: the motion stream goes to stdout unless -o names a file."""
    from artalk_core.constants import FPS
    from artalk_core.errors import InputError
    from artalk_core.streaming import STREAM_FORMATS, stream_generate

    if not stream:
        raise InputError("--stream-format applies to --stream only")
    if stream_format not in STREAM_FORMATS:
        raise InputError(f"unknown --stream-format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
    out = output if output is not None else "-"
    result = stream_generate(input, out, stream_format=stream_format, raw=raw, motion=motion, model=model)
    kind = "raw" if result.raw else "post-processed"
    first = "" if result.first_output_s is None else f", first frames after {result.first_output_s:.2f} s"
    stop = " (clip length reached: input not read further)" if result.stopped_early else ""
    say(f"streamed {result.frames} frames ({result.frames / FPS:.2f} s, {result.chunks} chunk(s)) to {where(out)}, "
        f"{kind}{first}{stop}", quiet=quiet)
