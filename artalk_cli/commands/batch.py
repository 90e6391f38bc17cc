"""artalk batch: many clips from a jobs file (CSV/JSONL) or a folder, on a process pool or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from artalk_cli.console import cli_errors, err, say
from artalk_cli.options import Assets, Checkpoint, ClipLength, Debug, Device, FixPose, ModelConfig, Precision, Quiet
from artalk_core.constants import BATCH_RAY_TIMEOUT_S, BATCH_SUMMARY_ROWS


class _Bar:
    """One progress bar for the whole batch: clips finished of total, with done/skipped/failed/running."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def __call__(self, status: Any) -> None:
        if self.quiet:
            return
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("clips"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[counts]}"), TimeRemainingColumn(), console=err)
            self.progress.__enter__()
            self.task = self.progress.add_task("clips", total=status.total, counts="")
        counts = (f"done {status.done}, skipped {status.skipped}, failed {status.failed}, "
                  f"running {status.running}")
        self.progress.update(self.task, completed=status.finished, total=status.total, counts=counts)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None


def _summary_table(summary: Any) -> None:
    """The clips as a table on stderr: all of a small batch; of a big one only the failures, up to
    BATCH_SUMMARY_ROWS (a rich table's cost grows faster than its rows: 20k rows took 9 s, 100k
    about 100 s), and a line saying what is left out. results.jsonl always has every clip."""
    from rich.table import Table
    from rich.text import Text


    results = summary.results
    if len(results) > BATCH_SUMMARY_ROWS:
        results = [r for r in results if r.status in ("failed", "interrupted")]
    shown = results[:BATCH_SUMMARY_ROWS]
    if shown:
        table = Table(title=None, show_edge=False)
        for col in ("row", "clip", "status", "seconds", "error"):
            table.add_column(col, overflow="fold")
        for r in shown:
            colour = {"done": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow"}[r.status]
            # Text(...) keeps names and messages literal: user text is never read as markup.
            table.add_row(str(r.row), Text(r.name), Text(r.status, style=colour), f"{r.seconds:.1f}",
                          Text(r.error or ""))
        err.print(table)
    parts = []
    if len(results) > len(shown):
        parts.append(f"{len(results) - len(shown)} more failed or interrupted clips")
    if len(summary.results) > len(results):
        parts.append(f"{len(summary.results) - len(results)} made or current clips")
    if parts:
        say(f"not listed here: {' and '.join(parts)} (every clip is in {summary.results_file})")


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch_cmd(
        jobs: Annotated[Path, typer.Argument(help="Jobs: a CSV/TSV or JSONL file (or - for stdin, a FIFO), one clip per row "
                                                  "(audio or text, style, appearance, outputs, any animate option), or a folder of audio files.")],
        output_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the outputs and results.jsonl.")],
        workers: Annotated[int | None, typer.Option("--workers", "-w", min=1, help="Workers, each loading the model once (default: one per two cores; one on a GPU).", show_default=False)] = None,
        threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch threads per worker (default: cores / workers locally, 1 on Ray).", show_default=False)] = None,
        backend: Annotated[str, typer.Option("--backend", help="local (process pool on this machine) or ray.")] = "local",
        ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: start a local Ray instance).", show_default=False)] = None,
        ray_timeout: Annotated[float, typer.Option("--ray-timeout", min=0.001, help="Seconds to wait for the Ray cluster address to answer.")] = BATCH_RAY_TIMEOUT_S,
        gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", min=0.0, help="GPUs per Ray worker (fractions share a GPU).")] = 0.0,
        style: Annotated[str, typer.Option("--style", "-s", help="Style for rows that name none.")] = "default",
        engine: Annotated[str, typer.Option("--engine", "-e", help="artalk or energy, for rows that name none.")] = "artalk",
        outputs: Annotated[str, typer.Option("--outputs", help="Files per clip for rows that name none: any of mp4,motion,vertices,glb.")] = "mp4",
        lang: Annotated[str, typer.Option("--lang", "-l", help="Language of text rows that name none.")] = "en",
        clip_length: ClipLength = None,
        fix_pose: FixPose = False,
        force: Annotated[bool, typer.Option("--force", help="Remake clips whose outputs are current.")] = False,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        assets: Assets = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Animate many clips; a rerun skips the clips whose outputs are current."""
        with cli_errors(debug):
            from artalk_core.batch import run
            from artalk_core.options import ModelOptions

            defaults: dict[str, Any] = {"style": style, "engine": engine, "outputs": outputs, "lang": lang,
                                        "fix_pose": fix_pose, "precision": precision}
            if clip_length is not None:
                defaults["clip_length"] = clip_length
            bar = _Bar(quiet)
            try:
                summary = run(jobs, output_dir=output_dir, workers=workers, threads=threads, backend=backend,
                              ray_address=ray_address, ray_timeout=ray_timeout, gpus_per_worker=gpus_per_worker,
                              defaults=defaults, force=force, on_status=bar,
                              model=ModelOptions(assets=assets, checkpoint=checkpoint, model_config=model_config,
                                                 device=device, precision=precision))
            finally:
                bar.close()
            if not quiet:
                _summary_table(summary)
            c = summary.counts
            say(f"{len(summary.results)} clips in {summary.seconds:.1f} s ({summary.workers} {summary.backend} "
                f"worker(s)): {c['done']} made, {c['skipped']} current, {c['failed']} failed; "
                f"results in {summary.results_file}", quiet=quiet)
            if summary.failed:
                from rich.markup import escape

                err.print(f"[bold red]error:[/] {len(summary.failed)} of {len(summary.results)} clips failed "
                          f"(see {escape(str(summary.results_file))})", soft_wrap=True, highlight=False)
                raise typer.Exit(1)
