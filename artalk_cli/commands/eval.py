"""artalk eval: LVE, MHD and FDD of predicted motion or vertices against the ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from artalk_cli.console import ProgressBars, cli_errors, note
from artalk_cli.options import Assets, Debug, Quiet

if TYPE_CHECKING:
    from artalk_core.eval import EvalResult


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _table(result: EvalResult) -> None:
    """The metrics as a table on stdout (a row per clip, and their mean for folders)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from artalk_core.eval import METRICS
    from artalk_core.text import printable

    table = Table(title=None, show_edge=True, header_style="bold")
    table.add_column("clip")
    table.add_column("frames", justify="right")
    for key, unit in zip(METRICS, ("mm", "mm", "x100")):
        table.add_column(f"{key} ({unit})", justify="right")
    for clip in result.clips:  # names are printed literally, never as markup, control characters escaped
        table.add_row(Text(printable(clip.name)), str(clip.frames), *(_number(clip.metrics[k]) for k in METRICS))
    if result.folders:
        table.add_section()
        table.add_row(Text(f"mean of {len(result.clips)} clips"), str(result.frames),
                      *(_number(result.metrics[k]) for k in METRICS))
    Console(highlight=False, soft_wrap=False).print(table)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        pred: Annotated[Path, typer.Argument(help="Predicted clip: a vertices .h5 (render -o x.h5) or a motion file; or a folder of them.")],
        gt: Annotated[Path, typer.Argument(help="Ground truth, the same way (a folder pairs clips by file name).")],
        as_json: Annotated[bool, typer.Option("--json", help='Print {"metrics": {"LVE", "MHD", "FDD"}, "frames"} (plus "clips" for folders) as JSON.')] = False,
        masks: Annotated[Path | None, typer.Option("--masks", help='Lip and upper-face vertex index lists, JSON {"lip": [...], "upper": [...]} or .npz (default: the reference\'s, for FLAME\'s 5023 vertices).', show_default=False)] = None,
        flame: Annotated[Path | None, typer.Option("--flame", help="FLAME head for motion inputs (default: <assets>/FLAME_with_eye.pt).", show_default=False)] = None,
        shape: Annotated[Path | None, typer.Option("--shape", help="FLAME shape [300] for motion inputs (default: zeros).", show_default=False)] = None,
        head_pose: Annotated[bool, typer.Option("--head-pose", help="Keep the global head rotation when motion becomes vertices (the reference's metrics leave it out).")] = False,
        assets: Assets = None,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Compare predicted motion with the ground truth in ARTalk's metrics: LVE and MHD in mm, FDD x100,
        on FLAME vertices (frame counts that differ: the common prefix)."""
        with cli_errors(debug):
            from artalk_core.eval import evaluate

            with ProgressBars(quiet) as bar:
                result = evaluate(pred, gt, masks=masks, flame=flame, shape=shape, assets=assets,
                                  head_pose=head_pose, progress=bar)
            for line in result.notes:
                note(line, quiet=quiet)
            if as_json:
                print(json.dumps(result.to_json()))
            else:
                _table(result)
