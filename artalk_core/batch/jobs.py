"""Batch jobs: one clip per row of a CSV or JSONL file, or one per audio file of a folder.

A row names its input (``audio`` or ``text``) and any per-clip option of ``animate``; options the
row leaves out come from the batch's defaults. Rows are validated one by one: a bad row becomes a
:class:`Job` carrying its error, so it fails alone while the others run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core.batch.jobfile import Record, file_format, parse, read_text
from artalk_core.constants import BATCH_AUDIO_SUFFIXES as AUDIO_SUFFIXES
from artalk_core.constants import BATCH_MAX_CELL_CHARS
from artalk_core.constants import BATCH_OUTPUT_KINDS as OUTPUT_KINDS
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, input_file, is_stdio, is_stream_path
from artalk_core.text import slug

BATCH_LEVEL: frozenset[str] = frozenset({"output", "keep", "glb", "assets", "checkpoint", "model_config", "device",
                                        "avatar"})
"""Options of ``animate`` a row does not set: the batch names the outputs (``outputs``, ``name``), the
model files and device are the batch's (``--assets``...), the avatar is the row's ``appearance``."""
ROW_FIELDS: tuple[str, ...] = ("appearance", "name", "outputs")
MESH_LOOK: frozenset[str] = frozenset({"shape", "size", "renderer", "background", "color"})
"""The options of the mesh's look, which a photoreal avatar does not take."""
"""Columns of a jobs file that are not options of ``animate``."""


def _column_kinds() -> dict[str, str]:
    """Every option column -> how a cell is read (``path``, ``int``, ``bool`` or ``str``), from the
    type of its field in :class:`~artalk_core.animate.AnimateOptions` and :mod:`artalk_core.options`."""
    import dataclasses

    from artalk_core.animate import AnimateOptions
    from artalk_core.options import GROUPS

    kinds: dict[str, str] = {}
    for cls in (AnimateOptions, *GROUPS):
        for f in dataclasses.fields(cls):
            if f.name in BATCH_LEVEL or f.name in ("motion", "look", "model"):
                continue
            ann = str(f.type)
            kinds[f.name] = ("path" if "PathLike" in ann else "bool" if ann == "bool" else
                             "int" if ann.split(" ")[0] == "int" else "str")
    return kinds


COLUMNS: dict[str, str] = {**_column_kinds(), "appearance": "str", "name": "str", "outputs": "outputs"}
"""Every column a jobs file may have, and how its cells are read."""
FIELDS: tuple[str, ...] = tuple(COLUMNS)
PATH_FIELDS: tuple[str, ...] = tuple(k for k, kind in COLUMNS.items() if kind == "path")

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class Job:
    """One clip to make: ``row`` is its first line in the jobs file (its position in a list or folder).

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


def _name_part(text: str) -> str:
    return slug(text, max_len=80)


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


def _shown(value: Any) -> str:
    """A JSON value as a message shows it (a long list cut short)."""
    import reprlib

    return reprlib.repr(value)


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _parse_fields(raw: Mapping[str, Any], *, base: Path) -> tuple[dict[str, Any], tuple[str, ...] | None]:
    """The fields of one row (or of the batch's defaults) parsed: (options, outputs or None when not set).

    Column names ignore case and surrounding spaces, so ``audio`` and ``Audio`` are the same
    column: a row naming one twice is refused rather than silently last-wins.
    """
    from artalk_core.engines import check_engine
    from artalk_core.tts import check_tts_options, normalize_lang

    opts: dict[str, Any] = {}
    outputs: tuple[str, ...] | None = None
    seen: dict[str, str] = {}
    for raw_key, value in raw.items():
        key = str(raw_key).strip().lower()
        if key in seen:
            raise InputError(f"duplicate field: '{seen[key]}' and '{raw_key}' are the same column "
                             f"(names ignore case)")
        seen[key] = str(raw_key)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue  # an empty cell: the default applies
        if key not in FIELDS:
            raise InputError(f"unknown field '{key}'{_suggest(key)}")
        if isinstance(value, str) and len(value) > BATCH_MAX_CELL_CHARS:
            raise InputError(f"{key}: longer than {BATCH_MAX_CELL_CHARS} characters")
        kind = COLUMNS[key]
        if kind == "path":
            if not isinstance(value, str):  # a JSONL number, list or object is no path (not "./5")
                raise InputError(f"{key} must be a file path (a string), got {_shown(value)}")
            path = Path(value.strip()).expanduser()
            opts[key] = str(path if path.is_absolute() else (base / path))
        elif kind == "int":
            opts[key] = _parse_int(value, key)
        elif kind == "bool":
            opts[key] = _parse_bool(value, key)
        elif key == "outputs":
            outputs = _parse_outputs(value)
        else:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):  # a number reads as its digits
                raise InputError(f"{key} must be text, got {_shown(value)}")
            opts[key] = str(value)
            # misspelt names fail their row now (or the batch, as a default), not in a worker
            if key == "engine":
                check_engine(opts[key])
            elif key == "lang":
                normalize_lang(opts[key])
            elif key == "tts_engine":
                check_tts_options(engine=opts[key])
    options_of(opts)  # every value checked as animate checks it (sizes, colours, seeds, precisions...)
    return opts, outputs


def options_of(row: Mapping[str, Any]) -> Any:
    """The :class:`~artalk_core.animate.AnimateOptions` of a row's (or the defaults') options: each
    checked by the option groups (OptionsError, an InputError, naming the option); the model files
    and device are the batch's, added by the worker."""
    from artalk_core.animate import AnimateOptions

    appearance = str(row.get("appearance") or "mesh")
    flat = {k: v for k, v in row.items() if k not in ROW_FIELDS}
    return AnimateOptions.from_flat(**flat, avatar=None if appearance == "mesh" else appearance)


def parse_defaults(defaults: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The batch's defaults checked like a row (relative paths: to the current folder), so a bad
    ``--outputs``/``--engine``/... is one InputError before any work, not a failure of every row."""
    opts, outputs = _parse_fields(defaults, base=Path.cwd())
    return opts, outputs or ("mp4",)


def parse_row(raw: Mapping[str, Any], *, base: Path, defaults: Mapping[str, Any],
              default_outputs: tuple[str, ...] = ("mp4",)) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One row -> (effective options, outputs). ``defaults`` are parsed options
    (:func:`parse_defaults`). Raises InputError naming the bad field."""
    fields, outputs = _parse_fields(raw, base=base)
    opts = {**defaults, **fields}
    if str(opts.get("appearance") or "mesh") != "mesh":
        # the batch's mesh look (--size...) is for its mesh rows; an avatar row naming one is refused
        opts = {k: v for k, v in opts.items() if k not in MESH_LOOK or k in fields}
        options_of(opts)
    has_audio, has_text = opts.get("audio") is not None, opts.get("text") is not None
    if has_audio == has_text:
        raise InputError("each row needs exactly one of 'audio' or 'text'")
    if has_audio:
        audio = Path(opts["audio"])
        if not audio.exists():
            raise InputError(f"audio file not found: {audio}")
        if audio.is_dir():
            raise InputError(f"audio {audio} is a folder, not a file")
        if not audio.is_file():
            raise InputError(f"audio {audio}: not a regular file (a batch reads and hashes each input more "
                             f"than once: a pipe or device cannot be one)")
    return opts, outputs or default_outputs


def _base_name(opts: Mapping[str, Any]) -> str:
    if opts.get("name"):
        return _name_part(str(opts["name"]))
    if opts.get("audio"):
        stem = _name_part(Path(str(opts["audio"])).stem)
    else:
        stem = "text-" + hashlib.sha256(str(opts.get("text")).encode()).hexdigest()[:8]
    parts = [stem, _name_part(str(opts.get("style") or "default"))]
    appearance = str(opts.get("appearance") or "mesh")
    if appearance != "mesh":
        parts.append(_name_part(Path(appearance).stem))
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
    dup = {n for n, c in names.items() if c > 1}  # a set: 100k rows in pairs must not be quadratic
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


def _read_source(path: Path) -> tuple[list[Record], Path]:
    """(records, folder its relative paths start from) of a jobs file. A pipe (``-``, a FIFO,
    ``<(...)``) is spooled once (:func:`artalk_core.fileio.input_file`); its relative paths start
    from the current folder."""

    stream = is_stdio(path) or is_stream_path(path)
    if not stream and not path.is_file():
        raise InputError(f"jobs file not found: {path}")
    fmt = None if stream else file_format(str(path), "", stream=False)  # by its name, before reading it
    with input_file(path) as (spooled, _sha, label):
        text = read_text(spooled, label)
    fmt = fmt or file_format(label, text, stream=True)
    return parse(text, fmt, label), (Path.cwd() if stream else path.resolve().parent)


def load_jobs(source: PathLike | list[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None,
              base: PathLike | None = None) -> list[Job]:
    """Jobs from a CSV/TSV/JSONL file (or ``-``, a FIFO, ``<(...)``), a folder of audio files, or a
    list of row mappings.

    ``defaults`` hold the options a row does not set (``style``, ``engine``, ``outputs``, ...).
    Relative paths in rows are relative to the jobs file's folder (``base`` for a list, the current
    folder for a pipe). A row's ``row`` is its first line in the file (its position in a list or
    folder). Raises InputError when the source as a whole, or a default, is unusable; a bad row
    becomes a Job with ``error`` set.
    """

    base_opts, base_outputs = parse_defaults(defaults or {})
    raw: list[Record]
    if isinstance(source, list):
        folder = Path(base) if base is not None else Path.cwd()
        raw = [(i, dict(r), None) for i, r in enumerate(source, start=1)]
    else:
        path = Path(source)
        if path.is_dir() and not (is_stdio(path) or is_stream_path(path)):
            folder = path
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise InputError(f"no audio files in {path} ({', '.join(sorted(AUDIO_SUFFIXES))})")
            raw = [(i, {"audio": str(p.resolve())}, None) for i, p in enumerate(files, start=1)]
        else:
            raw, folder = _read_source(path)
    if not raw:
        raise InputError("the jobs list is empty")
    entries: list[tuple[int, dict[str, Any], tuple[str, ...], str | None]] = []
    resolved = folder.resolve()
    for row, rec, err in raw:
        if err is None and rec is not None:
            try:
                opts, outputs = parse_row(rec, base=resolved, defaults=base_opts, default_outputs=base_outputs)
                entries.append((row, opts, outputs, None))
                continue
            except InputError as e:
                err = str(e)
        entries.append((row, _safe_options(rec), (), err))
    return _name_jobs(entries)


def _safe_options(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A failed row's fields as the results file records them (cells cut to a readable length)."""
    return {str(k): (v[:200] + "...") if isinstance(v, str) and len(v) > 200 else v for k, v in (rec or {}).items()}
