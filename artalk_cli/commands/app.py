"""artalk app: the web page of the reference tool (its Gradio app), served on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from artalk_cli.console import cli_errors, note, say
from artalk_cli.options import Assets, Debug, Device, Quiet
from artalk_core.constants import IMAGE_SIZE


def register(app: typer.Typer) -> None:
    @app.command("app")
    def app_cmd(
        host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 = every interface).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")] = 8960,
        assets: Assets = None,
        share: Annotated[str, typer.Option("--share", help="Public share link, as the reference's Gradio app: only 'off' is supported.")] = "off",
        engine: Annotated[str, typer.Option("--engine", "-e", help="auto (the model if <assets>/ARTalk_wav2vec.pt exists, else energy), artalk or energy.")] = "auto",
        device: Device = "auto",
        max_seconds: Annotated[float, typer.Option("--max-seconds", min=0.1, help="Longest speech accepted (seconds).")] = 60.0,
        max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest upload accepted (MB); larger requests get HTTP 413.")] = 50.0,
        clip_length: Annotated[int | None, typer.Option("--clip-length", min=0, help="Keep at most this many frames; 0 keeps all (default 750 = 30 s, as the reference).", show_default=False)] = None,
        size: Annotated[int, typer.Option("--size", min=16, max=4096, help="Video size in pixels.")] = IMAGE_SIZE,
        keep_minutes: Annotated[float, typer.Option("--keep-minutes", min=0.0, help="Remove a finished job's files this long after it finished.")] = 60.0,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Serve the ARTalk web page: speech or text in, talking-head video and motion files out."""
        with cli_errors(debug):
            from artalk_core.webapp import AppConfig, AppServer, check_share, serve

            check_share(share)
            config = AppConfig(assets=assets, device=device, engine=engine, max_seconds=max_seconds,
                               max_upload_bytes=int(max_upload_mb * 1024 * 1024), size=size,
                               clip_length=clip_length, keep_seconds=keep_minutes * 60.0)

            def ready(server: AppServer) -> None:
                if server.app.notice:
                    note(server.app.notice, quiet=quiet)
                say(f"artalk app: serving on {server.url} (engine {server.app.engine}; Ctrl+C to stop)",
                    quiet=quiet)
                if host not in ("127.0.0.1", "localhost", "::1"):
                    note("listening beyond this machine: anyone who can reach it can use it", quiet=quiet)

            if not quiet:
                say("starting (loading the model if present)...")
            serve(host=host, port=port, share=share, config=config,
                  log=None if quiet else (lambda message: say(message)), ready=ready)
