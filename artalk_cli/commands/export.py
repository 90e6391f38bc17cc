"""artalk export: motion -> glTF 2.0 (.glb / .gltf + .bin) for Blender, game engines and the web."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import ProgressBars, cli_errors, note, say
from artalk_cli.options import Assets, Debug, Quiet, checked
from artalk_core.constants import FPS

NO_AUDIO = ("", "no", "none", "false", "off")


def _fps(value: float) -> None:
    from artalk_core.export import check_fps

    check_fps(value)


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        input: Annotated[str, typer.Argument(help="Motion file (ours, a reference *_motions.pt, a motion stream), or - for stdin.")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help="talk.glb (binary, one file) or talk.gltf (JSON + talk.bin beside it). Default: <input stem>.glb.", show_default=False)] = None,
        flame: Annotated[Path | None, typer.Option("--flame", help="FLAME head: FLAME_with_eye.pt or generic_model.pkl (default: <assets>/FLAME_with_eye.pt, else the stand-in head).", show_default=False)] = None,
        shape: Annotated[Path | None, typer.Option("--shape", help="File with a [300] or [1,300] FLAME shape vector (default: zeros).", show_default=False)] = None,
        fps: Annotated[float, typer.Option("--fps", callback=checked(_fps), help="Keyframes per second of the animation (motion is made at 25): from 1 to 1000.")] = float(FPS),
        embed_audio: Annotated[str, typer.Option("--embed-audio", help="An audio file to store in the glTF buffer (asset.extras.audio), or no.")] = "no",
        no_standin: Annotated[bool, typer.Option("--no-standin", help="Fail instead of using the stand-in head when no FLAME file is found.")] = False,
        assets: Assets = None,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Skinned FLAME mesh + 136 morph targets (100 expressions, 36 pose correctives) + the animation."""
        with cli_errors(debug):
            from artalk_core.export import export
            from artalk_core.pipeline import default_output

            out = output if output is not None else default_output(input, ".glb")
            audio = None if embed_audio.strip().lower() in NO_AUDIO else Path(embed_audio)
            with ProgressBars(quiet) as bar:
                res = export(input, output=out, flame=flame, shape=shape, fps=fps, embed_audio=audio,
                             assets=assets, allow_standin=not no_standin, progress=bar)
            if res.head_is_standin:
                note("no FLAME_with_eye.pt found: exported the stand-in head "
                     "(no expression blend shapes; see README: FLAME needs its licence)", quiet=quiet)
            extra = f" + {res.bin}" if res.bin is not None else ""
            say(f"wrote {res.output}{extra}: {res.frames} frames at {res.fps:g} fps ({res.duration:.2f} s), "
                f"{res.morph_targets} morph targets, head {res.head}", quiet=quiet)
