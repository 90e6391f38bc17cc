"""artalk live: stream speech to a live server (artalk serve) and write the motion stream it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import cli_errors, say, where
from artalk_cli.options import Debug, FixPose, Quiet, Seed


def register(app: typer.Typer) -> None:
    @app.command("live")
    def live_cmd(
        url: Annotated[str, typer.Argument(help="The server: ws://HOST:PORT/live (or http://HOST:PORT, or HOST:PORT).")],
        input: Annotated[str, typer.Argument(help="Speech: any audio/video file (decoded as generate decodes it), or - for stdin (a WAV stream, or raw PCM with --stream-format raw).")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help="The motion stream (NDJSON; - for stdout, the default).", show_default=False)] = None,
        fast: Annotated[bool, typer.Option("--fast", help="Send the audio as fast as the server takes it, not at the pace of speech.")] = False,
        style: Annotated[str, typer.Option("--style", "-s", help="'default' or a style name the server has (its <assets>/style_motion/).")] = "default",
        engine: Annotated[str | None, typer.Option("--engine", "-e", help="artalk or energy (default: the server's).", show_default=False)] = None,
        clip_length: Annotated[int, typer.Option("--clip-length", min=0, help="Stop after this many frames; 0 keeps all (the default of live streams).")] = 0,
        fix_pose: FixPose = False,
        raw: Annotated[bool, typer.Option("--raw", help="Motion without post-processing (frames with no delay).")] = False,
        seed: Seed = 0,
        token: Annotated[str | None, typer.Option("--token", help="The server's token, if it has one.", show_default=False)] = None,
        stream_format: Annotated[str, typer.Option("--stream-format", help="For stdin: wav (a WAV stream, any rate) or raw (headerless 16-bit mono PCM at 16 kHz).")] = "wav",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Stream speech to `artalk serve` at the pace of speech and write the motion as it comes back.

        The frames equal `artalk generate --clip-length 0` of the same audio; the stream composes
        with `artalk render -` and `artalk export -`.
        """
        with cli_errors(debug):
            from artalk_core.constants import FPS
            from artalk_core.fileio import check_not_input
            from artalk_core.live.send import lag_summary, live_stream
            from artalk_core.streaming import STREAM_FORMATS

            if stream_format not in STREAM_FORMATS:
                from artalk_core.errors import InputError

                raise InputError(f"unknown --stream-format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
            out = output if output is not None else "-"
            check_not_input({"-o": out}, {"INPUT": input})
            result = live_stream(url, input, out, stream_format=stream_format, fast=fast, style=style, engine=engine,
                                 clip_length=clip_length, fix_pose=fix_pose, raw=raw, seed=seed, token=token)
            lag = lag_summary(result.lags)
            say(f"streamed {result.audio_seconds:.2f} s of speech in {result.seconds:.2f} s: {result.frames} frames "
                f"({result.frames / FPS:.2f} s) to {where(out)}" + (f", {lag}" if lag else ""), quiet=quiet)
