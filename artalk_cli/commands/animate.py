"""artalk animate: speech or text -> talking-head MP4 in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import ProgressBars, cli_errors, note, say
from artalk_cli.options import (
    Assets,
    Avatar,
    AvatarCheckpoint,
    AvatarConfig,
    AvatarNoise,
    Checkpoint,
    ClipLength,
    Debug,
    Device,
    FixPose,
    ModelConfig,
    Precision,
    Quiet,
    Seed,
    Tracked,
    Watermark,
)
from artalk_core.constants import FPS, IMAGE_SIZE, MESH_COLOR

MESH_COLOR_ARG = ",".join(map(str, MESH_COLOR))


def register(app: typer.Typer) -> None:
    @app.command("animate")
    def animate_cmd(
        audio: Annotated[Path | None, typer.Argument(help="Speech (any audio/video file). Or use --text.", show_default=False)] = None,
        text: Annotated[str | None, typer.Option("--text", "-t", help="Text to speak instead of AUDIO (- for stdin, @file.txt).", show_default=False)] = None,
        style: Annotated[str, typer.Option("--style", "-s", help="'default', a style name in <assets>/style_motion/, or a path.")] = "default",
        style_start: Annotated[int, typer.Option("--style-start", min=0, help="First frame of the 50-frame style clip taken from a motion file.")] = 0,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Video file. Default: <audio stem>_<style>_<mesh or avatar>.mp4 (the reference's name).", show_default=False)] = None,
        lang: Annotated[str, typer.Option("--lang", "-l", help="Language of --text: en, zh, ja, de, fr, es.")] = "en",
        tts_engine: Annotated[str, typer.Option("--tts-engine", help="espeak (offline) or gtts (online).")] = "espeak",
        voice: Annotated[str | None, typer.Option("--voice", help="espeak-ng voice for --text (e.g. en-gb, de+f3; `espeak-ng --voices` lists them); espeak only.", show_default=False)] = None,
        engine: Annotated[str, typer.Option("--engine", "-e", help="artalk (the model) or energy (weight-free preview).")] = "artalk",
        glb: Annotated[Path | None, typer.Option("--glb", help="Also export the animation as glTF (talk.glb, or talk.gltf + .bin; see `artalk export`).", show_default=False)] = None,
        keep: Annotated[Path | None, typer.Option("--keep", help="Keep intermediates (WAV, features, motion, vertices) here and reuse those still valid.", show_default=False)] = None,
        clip_length: ClipLength = None,
        fix_pose: FixPose = False,
        shape: Annotated[Path | None, typer.Option("--shape", help="FLAME shape vector file ([300]).", show_default=False)] = None,
        flame: Annotated[Path | None, typer.Option("--flame", help="FLAME head file (default: <assets>/FLAME_with_eye.pt, else the stand-in).", show_default=False)] = None,
        size: Annotated[int, typer.Option("--size", min=16, max=4096, help="Image size in pixels.")] = IMAGE_SIZE,
        renderer: Annotated[str, typer.Option("--renderer", help="gl or pytorch3d.")] = "gl",
        background: Annotated[str, typer.Option("--background", help="Background colour.")] = "white",
        color: Annotated[str, typer.Option("--color", help="Mesh colour.")] = MESH_COLOR_ARG,
        avatar: Avatar = None,
        tracked: Tracked = None,
        avatar_checkpoint: AvatarCheckpoint = None,
        avatar_config: AvatarConfig = None,
        avatar_noise: AvatarNoise = "seeded",
        watermark: Watermark = None,
        seed: Seed = 0,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        assets: Assets = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """tts -> generate -> render -> mux: the reference `inference.py -a speech.wav -s style`."""
        with cli_errors(debug):
            from artalk_core.animate import AnimateOptions, animate
            from artalk_core.tts import read_text, text_source

            options = AnimateOptions.from_flat(
                audio=audio, text=None if text is None else read_text(text), output=output, lang=lang,
                tts_engine=tts_engine, voice=voice, keep=keep, glb=glb, style=style, style_start=style_start,
                engine=engine, clip_length=clip_length, fix_pose=fix_pose, seed=seed, flame=flame, shape=shape,
                size=size, renderer=renderer, background=background, color=color, avatar=avatar, tracked=tracked,
                avatar_checkpoint=avatar_checkpoint, avatar_config=avatar_config, avatar_noise=avatar_noise,
                watermark=watermark, assets=assets, checkpoint=checkpoint, model_config=model_config,
                device=device, precision=precision)
            with ProgressBars(quiet) as bar:
                res = animate(options, read_from={"--text": None if text is None else text_source(text)},
                              progress=bar)
            if res.reused:
                say(f"reused from {keep}: {', '.join(res.reused)}", quiet=quiet)
            if res.head_is_standin:
                note("no FLAME_with_eye.pt found: rendered the stand-in head", quiet=quiet)
            say(f"wrote {res.output}: {res.frames} frames ({res.frames / FPS:.2f} s) with audio", quiet=quiet)
            if res.glb is not None:
                say(f"wrote {res.glb}: the animation as glTF", quiet=quiet)
