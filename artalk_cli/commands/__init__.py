"""One module per subcommand; each exposes ``register(app)``."""

from __future__ import annotations

from types import ModuleType

ALL: list[ModuleType] = []
