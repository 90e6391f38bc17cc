"""artalk serve: the live endpoint (ws://HOST:PORT/live) and its page, headless (no Gradio)."""

from __future__ import annotations

from typing import Annotated

import typer

from artalk_cli.console import cli_errors, note, say
from artalk_cli.options import Assets, Checkpoint, Debug, Device, ModelConfig, Precision, Quiet
from artalk_core.constants import LIVE_IDLE_SECONDS, LIVE_MAX_STREAMS, LIVE_PORT


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: Annotated[str, typer.Option("--host", help="Address to listen on; beyond 127.0.0.1 (e.g. 0.0.0.0) --token is required.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0 picks a free one).")] = LIVE_PORT,
        engine: Annotated[str, typer.Option("--engine", "-e", help="The engine of streams that name none: auto (the model if its checkpoint is found, else energy), artalk or energy.")] = "auto",
        max_streams: Annotated[int, typer.Option("--max-streams", min=1, help="Streams served at once; more are refused (close 1013, try again later).")] = LIVE_MAX_STREAMS,
        allowed_origin: Annotated[list[str] | None, typer.Option("--allowed-origin", help="A web page origin (https://example.org) allowed to open streams besides this server's own page; repeatable.", show_default=False)] = None,
        token: Annotated[str | None, typer.Option("--token", help="A secret every stream must send as \"token\" in its start message (required beyond loopback).", show_default=False)] = None,
        idle_seconds: Annotated[float, typer.Option("--idle-seconds", min=1.0, help="Close a stream whose client sends nothing for this long.")] = LIVE_IDLE_SECONDS,
        batch: Annotated[int, typer.Option("--batch", min=1, help="Model chunks of waiting streams encoded together (1: each alone, the exact mode; more pays on a GPU).")] = 1,
        assets: Assets = None,
        checkpoint: Checkpoint = None,
        model_config: ModelConfig = None,
        device: Device = "auto",
        precision: Precision = "fp32",
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Serve live streams: speech in over a WebSocket as it is spoken, motion out as it is made.

        The protocol, the page at /live and the Python client are described in docs/live.md.
        """
        with cli_errors(debug):
            from artalk_core.engines import check_engine
            from artalk_core.live.service import LiveConfig
            from artalk_core.options import ModelOptions
            from artalk_web.live.server import LiveServer

            if engine != "auto":
                check_engine(engine)
            model = ModelOptions(assets=assets, checkpoint=checkpoint, model_config=model_config, device=device,
                                 precision=precision)
            config = LiveConfig(model=model, engine=engine, max_streams=max_streams, token=token,
                                idle_seconds=idle_seconds, batch=batch)
            say("starting (loading the model if present)...", quiet=quiet)
            server = LiveServer(config, host=host, port=port, allowed_origins=allowed_origin or ())

            def ready(s: LiveServer) -> None:
                if s.service.model_note:
                    note(s.service.model_note, quiet=quiet)
                say(f"artalk serve: streams on {s.ws_url}, the page on {s.url}/live (engine "
                    f"{s.service.default_engine}, at most {max_streams} streams; Ctrl+C to stop)", quiet=quiet)

            server.run(ready=ready)
