"""JSON Schemas (draft 2020-12) of artalk's file formats, shipped inside the package.

:func:`load` reads one through :mod:`importlib.resources`, so the schemas are found in an
installed wheel as in a checkout (never from the repository folder). What each format holds is
described in the repository's ``schemas/README.md``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from artalk_core.errors import AssetError

SUFFIX = ".schema.json"


def names() -> list[str]:
    """The formats that have a schema (``features``, ``motion``, ``motion-stream``, ``vertices``), sorted."""
    return sorted(p.name[: -len(SUFFIX)] for p in files(__name__).iterdir() if p.name.endswith(SUFFIX))


def load(name: str) -> dict[str, Any]:
    """The JSON Schema of format ``name`` (``motion``, ``features`` ...) as a dict; AssetError if none."""
    res = files(__name__) / f"{name}{SUFFIX}"
    if not res.is_file():
        raise AssetError(f"no JSON Schema for format {name!r} (known: {', '.join(names())})")
    return json.loads(res.read_text(encoding="utf-8"))


__all__ = ["SUFFIX", "load", "names"]
