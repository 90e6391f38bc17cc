"""artalk app: the web page of the reference tool (its Gradio app), served on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from artalk_cli.console import cli_errors, note, say, warning
from artalk_cli.options import Assets, ClipLength, Debug, Device, Quiet
from artalk_core.constants import IMAGE_SIZE


def _log_to_console(*, quiet: bool, debug: bool) -> None:
    """The app's job log (``artalk.app``) as status lines on stderr; tracebacks only with --debug."""
    import logging

    class Say(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                e = record.exc_info[1]
                line += f": unexpected {type(e).__name__}: {e}"
                if debug:
                    line += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.WARNING:
                warning(line)
            else:
                say(line, quiet=quiet)

    logger = logging.getLogger("artalk.app")
    logger.setLevel(logging.INFO)
    logger.handlers = [Say()]
    logger.propagate = False


def register(app: typer.Typer) -> None:
    @app.command("app")
    def app_cmd(
        host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 = every interface: anyone who can reach this machine can use it).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")] = 8960,
        share: Annotated[bool, typer.Option("--share", help="Also open a public *.gradio.live link through Gradio's share server (needs internet).")] = False,
        assets: Assets = None,
        engine: Annotated[str, typer.Option("--engine", "-e", help="auto (the model if <assets>/ARTalk_wav2vec.pt exists, else energy), artalk or energy.")] = "auto",
        device: Device = "auto",
        max_seconds: Annotated[float, typer.Option("--max-seconds", min=0.1, help="Longest speech accepted (seconds); longer input is refused before it is decoded.")] = 60.0,
        max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest upload accepted (MB); larger requests get HTTP 413.")] = 50.0,
        queue_size: Annotated[int, typer.Option("--queue-size", min=1, help="Generations that may wait for the model; more are refused (queue full).")] = 16,
        clip_length: ClipLength = None,
        size: Annotated[int, typer.Option("--size", min=16, max=4096, help="Video size in pixels.")] = IMAGE_SIZE,
        keep_minutes: Annotated[float, typer.Option("--keep-minutes", min=0.0, help="Remove a job's files (and cached uploads) this long after they were made.")] = 60.0,
        client_connections: Annotated[int, typer.Option("--client-connections", min=1, help="Connections one client address may hold at once (more get HTTP 429); raise it when many visitors share one address (NAT, a proxy).")] = 32,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Serve the ARTalk web page: speech or text in, talking-head video and motion files out.

        Its generate function is also an HTTP API for gradio_client (api_name "generate"; see docs/web.md).
        """
        with cli_errors(debug):
            from artalk_core.app import AppConfig
            from artalk_core.app.server import AppServer
            from artalk_core.options import ModelOptions

            config = AppConfig(model=ModelOptions(assets=assets, device=device), engine=engine, max_seconds=max_seconds,
                               max_upload_mb=max_upload_mb, queue_size=queue_size, clip_length=clip_length,
                               size=size, keep_seconds=keep_minutes * 60.0, client_connections=client_connections)
            _log_to_console(quiet=quiet, debug=debug)
            say("starting (loading the model if present)...", quiet=quiet)
            server = AppServer(config, host=host, port=port, share=share)

            def ready(s: AppServer) -> None:
                if s.parts.catalog.notice:
                    note(s.parts.catalog.notice, quiet=quiet)
                say(f"artalk app: serving on {s.url} (engine {s.parts.catalog.engine}; Ctrl+C to stop)", quiet=quiet)
                if s.share_url:
                    say(f"public link: {s.share_url} (anyone with it can use this app)", quiet=quiet)
                if s.share_error:
                    warning(s.share_error)
                if host not in ("127.0.0.1", "localhost", "::1"):
                    note("listening beyond this machine: anyone who can reach it can use it", quiet=quiet)

            server.run(ready=ready)
