"""Is an output current? The one freshness check of artalk: ``animate --keep`` reuses its
intermediates by it, and ``batch`` resumes by it.

A record (a small JSON file) says what made one or more outputs: its *recipe*, the sha256 of each
input and the options that change the result, and the sha256 of each output as it was written.
Outputs are current when their record's recipe equals the one they would be made from now and every
output still has its recorded hash. Anything else (no record, another recipe, an output edited,
damaged or gone, a record of any other shape: hand-edited, from another version, a folder) means:
make them again, never fail for it. A record is written atomically after its outputs, so an
interrupted step leaves none, and forgotten before a remake, so a failed remake leaves none either.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core import __version__
from artalk_core.fileio import PathLike, atomic_output, sha256_file

RECORD_FORMAT = "artalk.record"


@dataclass(frozen=True)
class Recipe:
    """What outputs are made from: ``inputs`` (role -> sha256) and ``options`` (JSON values)."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The recipe as it is recorded (JSON round trip: tuples become lists, keys sorted)."""
        return json.loads(json.dumps({"inputs": dict(self.inputs), "options": dict(self.options)}, sort_keys=True,
                                     default=str))


def read_record(path: PathLike) -> dict[str, Any] | None:
    """A record's content, or None when it is missing, unreadable or not a JSON object."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # a folder, damaged text, absurd nesting
        return None
    return rec if isinstance(rec, dict) else None


def recorded_hash(record: Mapping[str, Any] | None, role: str) -> str | None:
    """The sha256 a record gives output ``role`` (None when it has none of the right shape)."""
    outputs = (record or {}).get("outputs")
    entry = outputs.get(role) if isinstance(outputs, dict) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    return sha if isinstance(sha, str) else None


def is_current(record: PathLike, recipe: Recipe, outputs: Mapping[str, PathLike]) -> bool:
    """True when ``record`` holds ``recipe`` and every output (role -> path) has its recorded hash."""
    rec = read_record(record)
    if rec is None or rec.get("format") != RECORD_FORMAT:
        return False
    if {"inputs": rec.get("inputs"), "options": rec.get("options")} != recipe.as_dict():
        return False
    for role, path in outputs.items():
        sha = recorded_hash(rec, role)
        if sha is None or not Path(path).is_file() or sha != sha256_file(path):
            return False
    return True


def write_record(record: PathLike, recipe: Recipe, outputs: Mapping[str, PathLike], **extra: Any) -> None:
    """Record that ``outputs`` (role -> path, all written) were made from ``recipe`` (atomically);
    ``extra`` JSON values are kept beside it for people reading the record."""
    content = {"format": RECORD_FORMAT, "artalk_version": __version__, **recipe.as_dict(),
               "outputs": {role: {"file": Path(p).name, "sha256": sha256_file(p)} for role, p in outputs.items()},
               **extra}
    Path(record).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(record) as tmp:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True, default=str), encoding="utf-8")


def forget(record: PathLike) -> None:
    """Remove a record before its outputs are remade (a failed remake must not look current)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        Path(record).unlink()


class RecordFolder:
    """The records of the files in one folder (``animate --keep``): ``.artalk-records/<file>.json``."""

    DIR = ".artalk-records"

    def __init__(self, folder: PathLike) -> None:
        self.folder = Path(folder)

    def path(self, output: PathLike) -> Path:
        return self.folder / self.DIR / f"{Path(output).name}.json"

    def current(self, output: PathLike, recipe: Recipe) -> bool:
        return is_current(self.path(output), recipe, {"file": output})

    def forget(self, output: PathLike) -> None:
        forget(self.path(output))

    def write(self, output: PathLike, recipe: Recipe) -> None:
        write_record(self.path(output), recipe, {"file": output})


__all__ = ["RECORD_FORMAT", "Recipe", "RecordFolder", "forget", "is_current", "read_record", "recorded_hash",
           "write_record"]
