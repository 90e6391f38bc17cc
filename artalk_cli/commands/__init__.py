"""One module per subcommand; each exposes ``register(app)``."""

from __future__ import annotations

from types import ModuleType

from artalk_cli.commands import (
    animate,
    app,
    assets,
    batch,
    encode_audio,
    eval,
    export,
    frame,
    generate,
    info,
    live,
    mux,
    render,
    serve,
    smooth,
    tts,
)

ALL: list[ModuleType] = [animate, tts, encode_audio, generate, smooth, render, export, mux, info, frame, assets, app,
                         batch, eval, serve, live]
