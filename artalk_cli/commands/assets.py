"""artalk assets download | verify | list: the released asset files (checkpoint, config, styles)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from artalk_cli.console import ProgressBars, cli_errors, note, say
from artalk_cli.options import Debug, Quiet

assets_app = typer.Typer(
    name="assets", no_args_is_help=True,
    help="Download, verify and list the released asset files (checkpoint, config, style clips).")

Root = Annotated[Path | None, typer.Option(
    "--root", "--assets", help="Asset folder in the reference layout (default: $ARTALK_ASSETS, else ./assets).",
    show_default=False)]
Manifest = Annotated[Path | None, typer.Option(
    "--manifest", help="Release manifest JSON (default: the one shipped with artalk).", show_default=False)]


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _flame(root: Path | None, quiet: bool) -> None:
    from artalk_core.assets import flame_notice, flame_path

    p = flame_path(root)
    if p.is_file():
        say(f"{p.name}: present ({_human(p.stat().st_size)}; licensed FLAME head, not verified)", quiet=quiet)
    else:
        note(flame_notice(root), quiet=quiet)


@assets_app.command("download")
def download_cmd(
    root: Root = None,
    include_optional: Annotated[bool, typer.Option(
        "--include-optional", help="Also fetch the optional files: the photoreal GAGAvatar head (--avatar), about 0.9 GB.")] = False,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="Hub address (default: $HF_ENDPOINT, else https://huggingface.co).",
        show_default=False)] = None,
    manifest: Manifest = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Download the released files from the Hugging Face hub, verified (sha256); files already in place are kept."""
    with cli_errors(debug):
        from artalk_core.assets import assets_dir
        from artalk_core.assets.download import NOT_DOWNLOADABLE, download

        with ProgressBars(quiet) as bar:
            results = download(root, include_optional=include_optional, manifest=manifest, endpoint=endpoint,
                               progress=bar)
        for r in results:
            if r.status == NOT_DOWNLOADABLE:
                say(f"{r.file.local_path}: not downloadable yet ({r.file.description})", quiet=quiet)
                continue
            resumed = f", resumed at {_human(r.resumed_from)}" if r.resumed_from else ""
            word = "downloaded" if r.status == "downloaded" else "present, verified"
            say(f"{r.file.local_path}: {word} ({_human(r.size)}{resumed})", quiet=quiet)
            for note in r.notes():
                say(f"  {note}", quiet=quiet)
        fetched = sum(r.status == "downloaded" for r in results)
        present = sum(r.status == "present" for r in results)
        say(f"{fetched} downloaded, {present} already present in {assets_dir(root)}", quiet=quiet)
        _flame(root, quiet)


@assets_app.command("verify")
def verify_cmd(
    root: Root = None,
    manifest: Manifest = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Check every released file's size and sha256 (exit code 3 if a required one is missing or any is wrong)."""
    with cli_errors(debug):
        from artalk_core.assets import raise_for_problems, verify

        with ProgressBars(quiet) as bar:
            results = verify(root, manifest=manifest, progress=bar)
        for r in results:
            tag = "" if r.file.required else " (optional)"
            why = ""
            if r.status in ("wrong size", "wrong hash"):
                want = _human(r.expected_size) if r.status == "wrong size" else r.expected_sha256
                got = _human(r.size) if r.status == "wrong size" else r.sha256
                why = f": expected {want}, got {got} ({r.source})"
            elif r.status == "unverified":
                why = ": no known sha256; `artalk assets download` checks it against the hub and records it"
            print(f"{r.status:<11} {_human(r.size):>9}  {r.file.local_path}{tag}{why}")
        _flame(root, quiet)
        raise_for_problems(results)
        say(f"{sum(r.status == 'ok' for r in results)} of {len(results)} files verified", quiet=quiet)


@assets_app.command("list")
def list_cmd(
    root: Root = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    manifest: Manifest = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """List the styles and heads available (with sizes), the checkpoint and the config."""
    with cli_errors(debug):
        from artalk_core.assets import list_assets

        info: dict[str, Any] = list_assets(root, manifest=manifest)
        if as_json:
            print(json.dumps(info, indent=2))
        else:
            print(f"asset folder: {info['root']}")
            for key in ("checkpoint", "config"):
                it = info[key]
                print(f"{key + ':':<12} {it['name']} ({_human(it['size']) if it['present'] else 'missing'})")
            print(f"styles ({len(info['styles'])}; plus 'default', no style):")
            for s in info["styles"]:
                print(f"  {s['name']:<20} {_human(s['size']):>9}{'' if s['released'] else '  (not a released style)'}")
            if info["missing_styles"]:
                print(f"  not downloaded: {', '.join(info['missing_styles'])}")
            print("heads:")
            for h in info["heads"]:
                state = ("default" if h["default"] else "available") if h["present"] else "missing"
                size = f", {_human(h['size'])}" if h["size"] is not None else ""
                print(f"  {h['name']:<20} {h['kind']} ({state}{size})")
            if info["optional"]:
                print("optional: " + ", ".join(
                    f"{o['name']} ({_human(o['size']) if o['present'] else 'missing'}"
                    f"{'' if o.get('downloadable', True) else ', not released yet'})" for o in info["optional"]))
        _flame(root, quiet)


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")
