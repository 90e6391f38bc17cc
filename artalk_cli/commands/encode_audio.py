"""artalk encode-audio: speech -> per-chunk audio features of the model's encoder, wav2vec2 or Mimi (cache them,
reuse across styles)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import ProgressBars, cli_errors, say, where
from artalk_cli.options import Assets, Checkpoint, Debug, Device, ModelConfig, Precision, Quiet


def register(app: typer.Typer) -> None:
    @app.command("encode-audio")
    def encode_audio_cmd(
        audio: Annotated[str, typer.Argument(help="Speech: any audio or video file FFmpeg reads, or - for stdin.")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Features file (.safetensors); - for stdout. Default: <audio stem>.features.safetensors.", show_default=False)] = None,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        assets: Assets = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Run the audio encoder once and save its features, so `generate` can reuse them."""
        with cli_errors(debug):
            from artalk_core.options import ModelOptions
            from artalk_core.pipeline import default_output, encode_audio

            model = ModelOptions(assets=assets, checkpoint=checkpoint, model_config=model_config, device=device,
                                 precision=precision)
            out = output if output is not None else default_output(audio, ".features.safetensors")
            with ProgressBars(quiet) as bar:
                feats = encode_audio(audio, output=out, model=model, progress=bar)
            shape = "x".join(str(n) for n in feats.data.shape)
            say(f"wrote {where(out)}: features [{shape}] for {feats.meta['frames']} frames", quiet=quiet)
