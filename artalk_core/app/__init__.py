"""`artalk app`: the reference tool's Gradio page, served on this machine.

- :mod:`~artalk_core.app.config`: settings and what the page offers (engine, heads, styles, examples);
- :mod:`~artalk_core.app.handlers`: the generate callback around the core ``animate`` stage;
- :mod:`~artalk_core.app.layout`: the ``gr.Blocks`` page;
- :mod:`~artalk_core.app.jobs`: per-job folders and their cleanup;
- :mod:`~artalk_core.app.inputs`: what a request may hand the page's functions (uploads only);
- :mod:`~artalk_core.app.connections`: deadlines, and room for newcomers made by closing stalled connections;
- :mod:`~artalk_core.app.server`: the guard in front of Gradio, uvicorn, signals.

Gradio (the ``artalk[app]`` extra) is imported only when an app is built.
"""

from __future__ import annotations

from artalk_core.app.config import AppConfig

__all__ = ["AppConfig"]
