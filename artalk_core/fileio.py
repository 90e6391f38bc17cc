"""Atomic output, hashing, stdin/stdout handling and provenance metadata shared by every format.

Every writer goes through :func:`atomic_output`: the file is written to a temporary name in the
target folder and renamed over the target only when complete, so a failed or interrupted step
never leaves a half-written file and never clobbers a good one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Union

from artalk_core import __version__
from artalk_core.errors import InputError, OutputError

PathLike = Union[str, os.PathLike]
STDIO = "-"


def is_stdio(path: PathLike | None) -> bool:
    """True for the ``-`` placeholder that means stdin (inputs) or stdout (outputs)."""
    return path is not None and str(path) == STDIO


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike, *, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are 2 GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_input_bytes(path: PathLike) -> bytes:
    """All bytes of a file, or of stdin for ``-``."""
    if is_stdio(path):
        return sys.stdin.buffer.read()
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a file: {p}")
    return p.read_bytes()


@contextlib.contextmanager
def input_file(source: PathLike | bytes | bytearray | memoryview) -> Iterator[tuple[Path, str, str]]:
    """Yield (path, sha256, name for messages) of an input, so it can be sniffed and read in blocks.

    A path is yielded as it is (sha256 "": not computed here). ``-`` (stdin) is copied to a temp
    file and hashed on the way; bytes are written to a temp file. Either is named ``<stdin>`` /
    ``<bytes>`` and removed when the block ends, so a piped hour of audio or motion is read from
    disk in blocks rather than held. An empty stdin raises InputError.
    """
    if not isinstance(source, (bytes, bytearray, memoryview)) and not is_stdio(source):
        yield Path(source), "", str(source)
        return
    fd, name = tempfile.mkstemp(prefix="artalk-input-")
    path = Path(name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            if isinstance(source, (bytes, bytearray, memoryview)):
                f.write(source)
                h.update(source)
                label = "<bytes>"
            else:
                src = sys.stdin.buffer
                while block := src.read(1 << 22):
                    h.update(block)
                    f.write(block)
                label = "<stdin>"
        if label == "<stdin>" and path.stat().st_size == 0:
            raise InputError("<stdin> is empty (0 bytes): pipe a file into it")
        yield path, h.hexdigest(), label
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _check_writable_dir(folder: Path, target: Path) -> None:
    if not folder.exists():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: {folder} is not a folder")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {target}: folder {folder} is not writable")


@contextlib.contextmanager
def atomic_output(path: PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    For ``-`` the temporary file lives in the system temp folder and its bytes are copied to
    stdout when the block succeeds. On any exception the temporary file is removed and the
    target is left untouched.
    """
    to_stdout = is_stdio(path)
    target = Path(tempfile.gettempdir()) / "artalk-stdout" if to_stdout else Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder")
    if not to_stdout and target.exists() and not target.is_file():
        # A device or pipe (/dev/null, /dev/stdout, a FIFO): renaming over it would replace the
        # device itself, so stream into it instead, after the work succeeded.
        yield from _special_output(target, suffix if suffix is not None else "")
        return
    folder = Path(tempfile.gettempdir()) if to_stdout else (target.parent if str(target.parent) else Path("."))
    _check_writable_dir(folder, target)
    sfx = suffix if suffix is not None else "".join(target.suffixes[-1:])
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{sfx}", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror}") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if to_stdout:
            with open(tmp, "rb") as f:
                out = sys.stdout.buffer
                while block := f.read(1 << 20):
                    out.write(block)
                out.flush()
            tmp.unlink()
        else:
            try:
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except OSError as e:
                raise OutputError(f"cannot write {target}: {e.strerror}") from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _special_output(target: Path, suffix: str) -> Iterator[Path]:
    """Body of :func:`atomic_output` for a non-regular target: write a temp file, then copy it in."""
    if not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {target}: permission denied")
    fd, tmp_name = tempfile.mkstemp(prefix="artalk-", suffix=f".part{suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def open_atomic_binary(path: PathLike) -> contextlib.AbstractContextManager[BinaryIO]:
    """Context manager yielding a binary file object written atomically to ``path`` (or stdout)."""

    @contextlib.contextmanager
    def _cm() -> Iterator[BinaryIO]:
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            yield f

    return _cm()


def provenance(tool: str, *, options: Mapping[str, Any] | None = None,
               inputs: Mapping[str, str] | None = None) -> dict[str, str]:
    """String metadata saying what made a file: tool, artalk version, options and input hashes.

    ``inputs`` maps a role (``audio``, ``checkpoint``...) to a sha256 hex digest.
    """
    meta = {
        "artalk_version": __version__,
        "created_by": tool,
        "created_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "options": json.dumps(dict(options or {}), sort_keys=True, default=str),
    }
    for role, digest in (inputs or {}).items():
        meta[f"{role}_sha256"] = digest
    return meta


def sha256_file_cached(path: PathLike) -> str:
    """sha256 of a large file (a 2 GB checkpoint), remembered per (path, size, mtime) in the user cache."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "artalk" / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return str(cache[key])
    digest = sha256_file(p)
    cache[key] = digest
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache_file) as tmp:
            tmp.write_text(json.dumps(cache))
    except Exception:  # the cache is an optimisation only
        pass
    return digest
