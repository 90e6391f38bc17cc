"""Reading a jobs file: CSV/TSV (a header row, then one clip per record) or JSONL (one object per line).

The csv and json modules parse the text as written: a quoted CSV cell may hold line breaks (kept),
U+2028 and the other Unicode line separators are characters, not row breaks (only ``\\n``, ``\\r``
and ``\\r\\n`` end a line). Each record carries the number of its first line, so an error names the
line to look at. A record that cannot be parsed fails alone: an unterminated quote is an error of
the row it opens (the rows after it are read again on their own, not swallowed into its cell).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from artalk_core.constants import BATCH_AUDIO_SUFFIXES, BATCH_MAX_CELL_CHARS
from artalk_core.errors import InputError

Record = tuple[int, dict[str, Any] | None, str | None]
"""(first line number, the row's raw mapping or None, why the row cannot be read or None)."""

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def read_text(path: Path, label: str) -> str:
    """The whole jobs file as text (UTF-8, a BOM dropped, line ends kept as written)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError:
        raise InputError(f"{label}: not a text file (a jobs file is CSV or JSONL in UTF-8)") from None
    except OSError as e:
        raise InputError(f"cannot read {label}: {e.strerror}") from None


def file_format(label: str, text: str, *, stream: bool) -> str:
    """``.jsonl``, ``.csv`` or ``.tsv``: from the file name, or for a pipe (no name to go by) from
    its first line (``{`` starts JSONL; a tab and no comma, TSV; else CSV)."""
    suffix = Path(label).suffix.lower()
    if suffix in BATCH_AUDIO_SUFFIXES:
        raise InputError(f"{label} is an audio file: give a jobs file (CSV or JSONL) or a folder of audio files")
    if suffix in JSONL_SUFFIXES:
        return ".jsonl"
    if suffix in CSV_DELIMITERS:
        return suffix
    if not stream:
        raise InputError(f"{label}: a jobs file ends in .csv, .tsv or .jsonl")
    first = next((ln for ln in io.StringIO(text, newline="") if ln.strip()), "")
    if first.lstrip().startswith(("{", "#")):
        return ".jsonl"
    return ".tsv" if "\t" in first and "," not in first else ".csv"


def parse(text: str, fmt: str, label: str) -> list[Record]:
    """The records of a jobs file's text (see the module docstring)."""
    if fmt == ".jsonl":
        return list(_jsonl_records(text))
    return _csv_records(text, CSV_DELIMITERS[fmt], label)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a key given twice is an error, not last-wins."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(f"duplicate field '{key}'")
        obj[key] = value
    return obj


def _jsonl_records(text: str) -> Iterator[Record]:
    # newline="\n": JSON Lines ends a line at \n only (a \r before it is JSON whitespace)
    for number, line in enumerate(io.StringIO(text, newline="\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as e:
            yield number, None, str(e)
            continue
        except json.JSONDecodeError as e:
            yield number, None, f"not valid JSON ({e.msg})"
            continue
        except RecursionError:
            yield number, None, "not valid JSON (nested too deeply)"
            continue
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            yield number, None, f"not valid JSON ({e})"
            continue
        if not isinstance(obj, dict):
            yield number, None, "a row must be a JSON object"
            continue
        yield number, obj, None


@contextlib.contextmanager
def _cell_limit(limit: int) -> Iterator[None]:
    """csv.field_size_limit is process-wide: set for this parse, then restored."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv_records(text: str, delimiter: str, label: str) -> list[Record]:
    lines = list(io.StringIO(text, newline=""))  # physical lines, ends kept; only \n, \r, \r\n end one
    rows = _csv_rows(lines, delimiter)
    header_at = next((i for i, (_, cells, _) in enumerate(rows) if cells), None)
    if header_at is None:
        raise InputError(f"{label}: empty jobs file (a CSV needs a header row, e.g. audio,style)")
    line, header, err = rows[header_at]
    if err is not None or header is None:
        raise InputError(f"{label}: the header row (line {line}) cannot be read: {err}")
    names = [h.strip().lower() for h in header]
    dupes = [h for h in header if names.count(h.strip().lower()) > 1]
    if dupes:
        raise InputError(f"{label}: duplicate columns {', '.join(repr(d) for d in dupes)} "
                         f"(a column may appear once; names ignore case)")
    records: list[Record] = []
    for line, cells, err in rows[header_at + 1:]:
        if err is not None:
            records.append((line, None, err))
        elif cells is None or all(c.strip() == "" for c in cells):
            continue  # a blank line
        elif len(cells) > len(header):
            records.append((line, None, "more cells than header columns"))
        else:
            records.append((line, dict(zip(header, cells)), None))  # missing cells: the defaults apply
    return records


def _csv_rows(lines: list[str], delimiter: str) -> list[tuple[int, list[str] | None, str | None]]:
    """(first line, cells or None, error or None) per CSV record. After a record that cannot be
    parsed, parsing starts again on the next line: one broken row never swallows the others."""
    rows: list[tuple[int, list[str] | None, str | None]] = []
    pos = 0  # index in ``lines`` where the current reader started
    while pos < len(lines):
        reader = csv.reader(lines[pos:], delimiter=delimiter, strict=True)
        read = 0  # lines taken by the records read so far, from ``pos``
        try:
            with _cell_limit(BATCH_MAX_CELL_CHARS):
                for cells in reader:
                    rows.append((pos + read + 1, cells, None))
                    read = reader.line_num
            break
        except csv.Error as e:
            first = pos + read + 1  # the broken record's first line (1-based)
            if "field limit" in str(e):
                rows.append((first, None, f"a cell is longer than {BATCH_MAX_CELL_CHARS} characters"))
                pos = first - 1 + _record_lines(lines[first - 1:], delimiter)
            elif "end of data" in str(e):  # the file ended inside a quoted cell
                rows.append((first, None, f"unterminated quote: the quoted cell opened on line {first} "
                                          f"never ends (write a \" inside a quoted cell as \"\")"))
                pos = first  # the lines after it are rows of their own
            else:
                rows.append((first, None, f"not valid CSV ({e})"))
                pos += reader.line_num
    return rows


def _record_lines(lines: list[str], delimiter: str) -> int:
    """How many lines the first record of ``lines`` spans (read without the cell limit)."""
    import sys

    reader = csv.reader(lines, delimiter=delimiter)
    with _cell_limit(sys.maxsize), contextlib.suppress(csv.Error, StopIteration):
        next(reader)
    return max(1, reader.line_num)
