"""Batch jobs: one clip per row of a CSV or JSONL file, or one per audio file of a folder.

A row names its input (``audio`` or ``text``) and any per-clip option of ``animate``; options the
row leaves out come from the batch's defaults. Rows are validated one by one: a bad row becomes a
:class:`Job` carrying its error, so it fails alone while the others run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core.constants import BATCH_AUDIO_SUFFIXES as AUDIO_SUFFIXES
from artalk_core.constants import BATCH_OUTPUT_KINDS as OUTPUT_KINDS
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike

# Per-row options: name -> parser. Paths are resolved against the jobs file's folder.
_STR = ("text", "lang", "voice", "tts_engine", "style", "appearance", "engine", "renderer", "background",
        "color", "precision", "name")
_PATHS = ("audio", "shape", "flame")
_INTS = ("clip_length", "size", "seed")
_BOOLS = ("fix_pose",)
FIELDS: tuple[str, ...] = (*_PATHS, *_STR, *_INTS, *_BOOLS, "outputs")
"""Every column a jobs file may have."""

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class Job:
    """One clip to make: ``row`` is its 1-based row number in the jobs source (line for JSONL).

    ``options`` are the effective ``animate`` options (defaults merged, paths absolute);
    ``outputs`` the files wanted (``mp4``, ``motion``, ``vertices``, ``glb``); ``error`` is set when
    the row itself is unusable (the clip then fails without running).
    """

    row: int
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("mp4",)
    error: str | None = None

    @property
    def key(self) -> str:
        """sha256 of what defines the clip (options + outputs): a changed row gets a new key."""
        blob = json.dumps({"options": self.options, "outputs": list(self.outputs)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe description (what the results file records as ``row``)."""
        return {"row": self.row, "name": self.name, "options": self.options, "outputs": list(self.outputs)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:80] or "x"


def _parse_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{key}: expected true or false, got {value!r}")


def _parse_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{key}: expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InputError(f"{key}: expected a whole number, got {value!r}") from None
    if number < 0:
        raise InputError(f"{key}: must not be negative, got {number}")
    return number


def _parse_outputs(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else re.split(r"[\s,;+]+", str(value).strip())
    wanted = [str(x).strip().lower() for x in items if str(x).strip()]
    if not wanted:
        raise InputError("outputs: name at least one of " + ", ".join(OUTPUT_KINDS))
    unknown = [w for w in wanted if w not in OUTPUT_KINDS]
    if unknown:
        raise InputError(f"outputs: unknown {', '.join(unknown)} (choose from {', '.join(OUTPUT_KINDS)})")
    return tuple(k for k in OUTPUT_KINDS if k in wanted)  # a fixed order: stable keys


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_row(raw: Mapping[str, Any], *, base: Path, defaults: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One row -> (effective options, outputs). Raises InputError naming the bad field."""
    opts: dict[str, Any] = {k: v for k, v in defaults.items() if k != "outputs"}
    outputs: tuple[str, ...] = _parse_outputs(defaults.get("outputs", ["mp4"]))
    for key, value in raw.items():
        key = str(key).strip().lower()
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue  # an empty cell: the default applies
        if key not in FIELDS:
            raise InputError(f"unknown field '{key}'{_suggest(key)}")
        if key in _PATHS:
            path = Path(str(value).strip()).expanduser()
            opts[key] = str(path if path.is_absolute() else (base / path))
        elif key in _INTS:
            opts[key] = _parse_int(value, key)
        elif key in _BOOLS:
            opts[key] = _parse_bool(value, key)
        elif key == "outputs":
            outputs = _parse_outputs(value)
        else:
            opts[key] = str(value)
    has_audio, has_text = opts.get("audio") is not None, opts.get("text") is not None
    if has_audio == has_text:
        raise InputError("each row needs exactly one of 'audio' or 'text'")
    if has_audio and not Path(opts["audio"]).is_file():
        raise InputError(f"audio file not found: {opts['audio']}")
    return opts, outputs


def _base_name(opts: Mapping[str, Any]) -> str:
    if opts.get("name"):
        return _slug(str(opts["name"]))
    if opts.get("audio"):
        stem = _slug(Path(str(opts["audio"])).stem)
    else:
        stem = "text-" + hashlib.sha256(str(opts.get("text")).encode()).hexdigest()[:8]
    parts = [stem, _slug(str(opts.get("style") or "default"))]
    appearance = str(opts.get("appearance") or "mesh")
    if appearance != "mesh":
        parts.append(_slug(Path(appearance).stem))
    return "_".join(parts)


def _name_jobs(entries: list[tuple[int, dict[str, Any], tuple[str, ...], str | None]]) -> list[Job]:
    """Give every clip a stable, collision-free output name.

    The name comes from the row (``name``, else audio stem or a text hash, plus style and
    appearance). Rows that would share a name all get a short hash of their options appended, so
    a name does not depend on the order of the rows.
    """
    bases = [_base_name(opts) if err is None else f"row{row}" for row, opts, _, err in entries]
    counts = Counter(bases)
    jobs = []
    for (row, opts, outputs, err), base in zip(entries, bases):
        name = base
        if counts[base] > 1:
            digest = hashlib.sha256(json.dumps([opts, outputs, row if err else 0], sort_keys=True,
                                               default=str).encode()).hexdigest()[:8]
            name = f"{base}-{digest}"
        jobs.append(Job(row=row, name=name, options=opts, outputs=outputs, error=err))
    names = Counter(j.name for j in jobs)
    dup = [n for n, c in names.items() if c > 1]
    if dup:  # identical rows: the same clip asked for twice; make the later ones fail clearly
        seen: set[str] = set()
        unique = []
        for j in jobs:
            if j.name in dup and j.name in seen and j.error is None:
                j = Job(row=j.row, name=f"{j.name}-row{j.row}", options=j.options, outputs=j.outputs,
                        error="the same clip as an earlier row")
            seen.add(j.name)
            unique.append(j)
        jobs = unique
    return jobs


def _raw_rows(source: Path) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """(row number, raw mapping or None, parse error) for a CSV or JSONL file."""
    if source.suffix.lower() in AUDIO_SUFFIXES:
        raise InputError(f"{source} is an audio file: give a jobs file (CSV or JSONL) or a folder of audio files")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source}: not a text file (a jobs file is CSV or JSONL)") from None
    except OSError as e:
        raise InputError(f"cannot read {source}: {e.strerror}") from None
    rows: list[tuple[int, dict[str, Any] | None, str | None]] = []
    if source.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                rows.append((number, None, f"not valid JSON ({e.msg})"))
                continue
            if not isinstance(obj, dict):
                rows.append((number, None, "a row must be a JSON object"))
                continue
            rows.append((number, obj, None))
        return rows
    if source.suffix.lower() not in (".csv", ".tsv"):
        raise InputError(f"{source}: a jobs file ends in .csv, .tsv or .jsonl")
    reader = csv.DictReader(text.splitlines(), delimiter="\t" if source.suffix.lower() == ".tsv" else ",")
    if not reader.fieldnames:
        raise InputError(f"{source}: empty jobs file (a CSV needs a header row, e.g. audio,style)")
    for number, rec in enumerate(reader, start=2):  # row 1 is the header
        if None in rec:
            rows.append((number, None, "more cells than header columns"))
            continue
        if all((v or "").strip() == "" for v in rec.values()):
            continue
        rows.append((number, dict(rec), None))
    return rows


def load_jobs(source: PathLike | list[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None,
              base: PathLike | None = None) -> list[Job]:
    """Jobs from a CSV/TSV/JSONL file, a folder of audio files, or a list of row mappings.

    ``defaults`` hold the options a row does not set (``style``, ``engine``, ``outputs``, ...).
    Relative paths in rows are relative to the jobs file's folder (``base`` for a list).
    Raises InputError only when the source as a whole is unusable; a bad row becomes a Job with
    ``error`` set.
    """
    defaults = dict(defaults or {})
    raw: list[tuple[int, dict[str, Any] | None, str | None]]
    if isinstance(source, list):
        folder = Path(base) if base is not None else Path.cwd()
        raw = [(i, dict(r), None) for i, r in enumerate(source, start=1)]
    else:
        path = Path(source)
        if path.is_dir():
            folder = path
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise InputError(f"no audio files in {path} ({', '.join(sorted(AUDIO_SUFFIXES))})")
            raw = [(i, {"audio": str(p.resolve())}, None) for i, p in enumerate(files, start=1)]
        elif path.is_file():
            folder = path.resolve().parent
            raw = _raw_rows(path)
        else:
            raise InputError(f"jobs file not found: {path}")
    if not raw:
        raise InputError("the jobs list is empty")
    entries: list[tuple[int, dict[str, Any], tuple[str, ...], str | None]] = []
    for row, rec, err in raw:
        if err is None and rec is not None:
            try:
                opts, outputs = parse_row(rec, base=folder.resolve(), defaults=defaults)
                entries.append((row, opts, outputs, None))
                continue
            except InputError as e:
                err = str(e)
        entries.append((row, dict(rec or {}), (), err))
    return _name_jobs(entries)
