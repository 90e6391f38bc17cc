"""artalk render: motion (or vertices) -> FLAME mesh video, optionally with the speech muxed in."""

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
    AvatarPrecision,
    Debug,
    Device,
    Quiet,
    Seed,
    Tracked,
    Watermark,
)
from artalk_core.constants import IMAGE_SIZE, MESH_COLOR


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render_cmd(
        input: Annotated[str, typer.Argument(help="Motion file (ours or a reference *_motions.pt), a vertices .h5, or - for stdin (motion).")],
        output: Annotated[str | None, typer.Option("--output", "-o", help="Video (.mp4), DIR/ for PNG frames (frame_000000.png... and frames.json listing them; see --force), or .h5 for vertices only. Default: <input stem>.mp4.", show_default=False)] = None,
        flame: Annotated[Path | None, typer.Option("--flame", help="FLAME head: FLAME_with_eye.pt or generic_model.pkl (default: <assets>/FLAME_with_eye.pt, else the stand-in head).", show_default=False)] = None,
        shape: Annotated[Path | None, typer.Option("--shape", help="File with a [300] or [1,300] FLAME shape vector (default: zeros).", show_default=False)] = None,
        audio: Annotated[Path | None, typer.Option("--audio", "-a", help="Speech to mux in (any audio file).", show_default=False)] = None,
        verts: Annotated[Path | None, typer.Option("--verts", help="Also write the vertices to this .h5 file.", show_default=False)] = None,
        size: Annotated[int, typer.Option("--size", min=16, max=4096, help="Square image size in pixels (even).")] = IMAGE_SIZE,
        renderer: Annotated[str, typer.Option("--renderer", help="gl (moderngl, default) or pytorch3d (if installed).")] = "gl",
        background: Annotated[str, typer.Option("--background", help="Background colour: white, #rrggbb or r,g,b.")] = "white",
        color: Annotated[str, typer.Option("--color", help="Mesh colour (#rrggbb or r,g,b).")] = ",".join(map(str, MESH_COLOR)),
        no_standin: Annotated[bool, typer.Option("--no-standin", help="Fail instead of using the stand-in head when no FLAME file is found.")] = False,
        force: Annotated[bool, typer.Option("--force", help="With -o DIR/: write the frames into a folder that holds other files too (they are kept). Without it DIR must be new, empty or hold only a previous artalk frames set; only the files a previous frames.json lists are ever replaced or removed.")] = False,
        avatar: Avatar = None,
        tracked: Tracked = None,
        avatar_checkpoint: AvatarCheckpoint = None,
        avatar_config: AvatarConfig = None,
        avatar_noise: AvatarNoise = "seeded",
        watermark: Watermark = None,
        seed: Seed = 0,
        precision: AvatarPrecision = "fp32",
        assets: Assets = None,
        device: Device = "auto",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Render the head as the reference mesh video: 512 px, white background, light-blue Phong mesh
        (or, with --avatar, the photoreal GAGAvatar head)."""
        with cli_errors(debug):
            from artalk_core.errors import InputError
            from artalk_core.options import from_flat
            from artalk_core.pipeline import default_output
            from artalk_core.render.stage import render

            if precision != "fp32" and avatar is None:
                raise InputError("--precision applies to --avatar (the photoreal upsampler); the mesh renderer has none")
            model, _, look = from_flat(dict(
                assets=assets, device=device, precision=precision, flame=flame, shape=shape, size=size,
                renderer=renderer, background=background, color=color, avatar=avatar, tracked=tracked,
                avatar_checkpoint=avatar_checkpoint, avatar_config=avatar_config, avatar_noise=avatar_noise,
                watermark=watermark, seed=seed))
            out = output if output is not None else default_output(input, ".mp4")
            with ProgressBars(quiet) as bar:
                res = render(input, output=out, look=look, model=model, audio=audio, verts=verts,
                             allow_standin=not no_standin, force=force, progress=bar)
            extra = " with audio" if res.with_audio else ""
            if res.head_is_standin:
                note("no FLAME_with_eye.pt found: rendered the stand-in head (see README: FLAME needs its licence)",
                     quiet=quiet)
            say(f"wrote {res.output}: {res.frames} frames{extra}, head {res.head}"
                + (f"; vertices in {res.vertices}" if res.vertices else ""), quiet=quiet)
