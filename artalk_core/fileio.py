"""Atomic output, hashing, stdin/stdout handling and provenance metadata shared by every format.

Every writer goes through :func:`atomic_output`: the file is written to a temporary name in the
target folder and renamed over the target only when complete, so a failed or interrupted step
never leaves a half-written file and never clobbers a good one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from artalk_core import __version__
from artalk_core.constants import JSON_MAX_INT_DIGITS
from artalk_core.errors import WRITE_ERRNOS, ArtalkError, FormatError, InputError, OutputError, sequence
from artalk_core.interrupt import check_interrupted, signals_held
from artalk_core.stdio import note_given, stdin_binary, stdout_binary

PathLike = str | os.PathLike
STDIO = "-"


def is_stdio(path: PathLike | None) -> bool:
    """True for the ``-`` placeholder that means stdin (inputs) or stdout (outputs)."""
    return path is not None and str(path) == STDIO


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > JSON_MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {JSON_MAX_INT_DIGITS} are read)")
    return int(text)


def parse_json(data: str | bytes | bytearray, problem: str, *, error: type[ArtalkError] = FormatError) -> Any:
    """JSON from a file, any failure as one ``error`` saying ``problem`` (``"x.gltf is not a glTF
    file"``) and why: invalid JSON or UTF-8, an integer over :data:`JSON_MAX_INT_DIGITS` digits
    (Python converts long integers in quadratic time) or nesting deeper than Python's recursion
    limit (json raises RecursionError there)."""
    try:
        return json.loads(data, parse_int=_bounded_int)
    except RecursionError:
        raise error(f"{problem}: its JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise error(f"{problem}: it is not UTF-8 JSON") from None
    except ValueError as e:  # JSONDecodeError, or an integer refused above
        raise error(f"{problem}: its JSON cannot be read ({e})") from None


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
        try:
            return stdin_binary().read()
        except OSError as e:
            raise InputError(f"cannot read stdin: {e.strerror}") from e
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a folder, not a file: {p}")
    try:
        return p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror}") from e


def existing_file(path: PathLike, what: str = "input file") -> Path:
    """``path`` as a Path if it is a file to read; InputError ``{what} not found`` for a missing
    path and ``{what} is a folder`` for a folder (before any hashing or decoding trips on them)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} is a folder, not a file: {p}")
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    return p


def is_stream_path(path: PathLike) -> bool:
    """True for a path that can be read only once, front to back: a FIFO, ``/dev/stdin`` on a
    pipe, a bash ``<(...)`` (pipes), a socket. Such inputs are spooled like ``-``. Devices are not:
    ``/dev/zero`` would never end."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, TypeError, ValueError):  # not a path (decoded audio, a file object)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def input_file(source: PathLike | bytes | bytearray | memoryview) -> Iterator[tuple[Path, str, str]]:
    """Yield (path, sha256, name for messages) of an input, so it can be sniffed and read in blocks.

    A regular file is yielded as it is (sha256 "": not computed here). ``-`` (stdin) and any path
    that reads as a stream (a FIFO, ``/dev/stdin``, ``<(...)``: see :func:`is_stream_path`) are
    copied to a temp file and hashed on the way; bytes are written to a temp file. Stdin is named
    ``<stdin>``, bytes ``<bytes>``, a stream path keeps its name; the copy is removed when the
    block ends, so a piped hour of audio or motion is read from disk in blocks rather than held
    (and a FIFO is read once, never opened twice). Empty streams raise InputError.
    """
    data: bytes | None = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    path_in: PathLike | None = None if isinstance(source, (bytes, bytearray, memoryview)) else source
    if path_in is not None and not is_stdio(path_in) and not is_stream_path(path_in):
        yield Path(path_in), "", str(path_in)
        return
    # a named FIFO keeps its extension (shape.npy), for readers that go by it
    sfx = Path(str(path_in)).suffix if path_in is not None and not is_stdio(path_in) else ""
    fd, name = tempfile.mkstemp(prefix="artalk-input-", suffix=sfx if sfx.isascii() and len(sfx) <= 16 else "")
    path = Path(name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
                h.update(data)
                label = "<bytes>"
            else:
                label = "<stdin>" if is_stdio(path_in) else str(path_in)
                note_given(path, label)
                with contextlib.ExitStack() as stack:
                    src: BinaryIO = stdin_binary() if is_stdio(path_in) or path_in is None else \
                        stack.enter_context(open(path_in, "rb"))
                    try:
                        while block := src.read(1 << 22):
                            h.update(block)
                            f.write(block)
                    except OSError as e:
                        if e.errno in WRITE_ERRNOS:
                            raise OutputError(f"cannot spool {label} to the temp folder: {e.strerror}") from e
                        raise InputError(f"cannot read {label}: {e.strerror}") from e
        if label != "<bytes>" and path.stat().st_size == 0:
            what = "pipe a file into it" if label == "<stdin>" else "nothing was written into it"
            raise InputError(f"{label} is empty (0 bytes): {what}")
        yield path, h.hexdigest(), label
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def spooled(stack: contextlib.ExitStack, path: Any) -> Any:
    """``path`` as it is, or for a stream path (a FIFO, ``<(...)``: see :func:`is_stream_path`) a
    temp copy living as long as ``stack``: side inputs (``--shape``, ``--flame``, ``--style``,
    ``--checkpoint``...) are read more than once (checked, loaded, hashed), which a pipe cannot
    be. The one way a command takes an input path that is not its main input (that one goes
    through :func:`input_file`), so any of them may be a pipe; anything else (None, a style name,
    an array) is returned as it is. Labels and messages name the copy as the user gave it
    (:func:`artalk_core.stdio.given_name`)."""
    if not isinstance(path, (str, os.PathLike)) or is_stdio(path) or not is_stream_path(path):
        return path
    copy = stack.enter_context(input_file(path))[0]
    return str(copy) if isinstance(path, str) else copy  # a style given as text stays text


# ---- outputs ------------------------------------------------------------------------------



def output_error(target: PathLike, e: OSError) -> OutputError:
    """The OutputError for an OS error while writing ``target``."""
    return OutputError(f"cannot write {target}: {e.strerror or e}")


@contextlib.contextmanager
def writing(target: PathLike) -> Iterator[None]:
    """Around writes to an output's temp file by a writer that aborts its :func:`atomic_output`
    on its own: disk full, file too large and read-only disk become an OutputError naming ``target``."""
    try:
        yield
    except OSError as e:
        if e.errno in WRITE_ERRNOS and not isinstance(e, ArtalkError):
            raise output_error("stdout" if is_stdio(target) else target, e) from e
        raise


def check_not_input(outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    """Refuse (InputError, exit 2, before any work) an output that is one of the inputs.

    The one check of every command: ``outputs`` maps each file it may write, replace or delete
    (``-o``, ``--verts``, the ``.bin`` of a ``.gltf``, ``--keep`` intermediates, the frames of
    ``-o DIR/``...) and ``inputs`` each file it reads (INPUT, ``--audio``, ``--shape``, ``--style``,
    the checkpoint...) from an option name to a path, or to a list of paths (an output's role may
    describe it instead: ``the .bin of -o x.gltf``). None, ``-``, bytes and
    other non-path values are skipped. Paths are compared as files (same device and inode), so a
    symlink, a hard link or another spelling of the input is caught; an output that does not exist
    yet cannot be an input. An input ``-`` is stdin: when the shell redirected a file into it
    (``< speech.wav``), that file counts. Outputs are also checked against each other. An output
    ``-`` with stdout closed is an OutputError here, before the work rather than after it.
    """
    def ident(value: Any, *, is_input: bool = False) -> tuple[int, int] | None:
        if value is None or not isinstance(value, (str, os.PathLike)) or (is_stdio(value) and not is_input):
            return None
        try:
            st = os.fstat(sys.stdin.fileno()) if is_stdio(value) else os.stat(value)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(st.st_mode):  # devices, pipes (/dev/null, /dev/stdout) are not files to lose
            return None
        return st.st_dev, st.st_ino

    def each(mapping: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        for role, value in mapping.items():
            if isinstance(value, (list, tuple, set, frozenset)):
                yield from ((role, v) for v in value)
            else:
                yield role, value

    if any(is_stdio(value) for _, value in each(outputs)):
        stdout_binary()
    seen: dict[tuple[int, int], str] = {}
    for role, value in each(inputs):
        key = ident(value, is_input=True)
        if key is not None:
            seen.setdefault(key, f"the input {role} ({value})")
    for role, value in each(outputs):
        key = ident(value)
        if key is None:
            continue
        # a role that describes a side file ("the .bin of -o x.gltf") names its path in brackets
        this = role if role.startswith("the ") else f"the output {role}"
        if key in seen and seen[key] != this:
            named = f"{role} ({value})" if role.startswith("the ") else f"{role} {value}"
            raise InputError(f"{named} is {seen[key]}: writing it would destroy that file; "
                             f"choose another output name")
        seen[key] = this


def make_folder(path: PathLike) -> Path:
    """Create an output folder (and its parents) if missing; OutputError when the OS refuses."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise OutputError(f"cannot use {p} as a folder: a file of that name exists") from e
    except OSError as e:
        raise OutputError(f"cannot create the folder {p}: {e.strerror}") from e
    if not os.access(p, os.W_OK):
        raise OutputError(f"cannot write in the folder {p}: it is not writable")
    return p


def load_torch(source: PathLike | bytes | bytearray | memoryview, name: str, *, error: type[ArtalkError] = FormatError,
               mmap: bool = False, stored_only: bool = False) -> Any:
    """What a ``torch.save`` file holds, loaded with ``weights_only=True`` (no code runs).

    Any failure is one ``error`` naming the file: refused pickled objects ("not a plain tensor
    file") or a truncated/corrupt file (zip or legacy format alike: torch raises anything from
    EOFError to IndexError there). PyTorch's own message is not passed on: it suggests retrying
    with ``weights_only=False``, which would run code from the file.

    ``stored_only`` (data read as values: motion, styles, shapes): refuse a tensor that holds more
    values than the file stores, a view such as ``zeros(1, 106).expand(10**9, 106)`` (2 KB on disk,
    424 GB once read), so the work is bounded by the file's real content.
    """
    obj = _load_torch(source, name, error=error, mmap=mmap)
    if stored_only:
        _check_stored(obj, name, error)
    return obj


def _check_stored(obj: Any, name: str, error: type[ArtalkError], depth: int = 0) -> None:
    """Every tensor in ``obj`` (nested in dicts, lists, tuples) holds at most the values its storage holds."""
    import torch

    if isinstance(obj, torch.Tensor):
        logical, stored = obj.numel() * obj.element_size(), obj.untyped_storage().nbytes()
        if logical > stored:
            raise error(f"{name} holds a {list(obj.shape)} tensor over only {stored} stored bytes (a broadcast "
                        f"view, as expand() makes): save a real copy, tensor.clone()")
    elif isinstance(obj, dict) and depth < 8:
        for value in obj.values():
            _check_stored(value, name, error, depth + 1)
    elif isinstance(obj, (list, tuple)) and depth < 8:
        for value in obj:
            _check_stored(value, name, error, depth + 1)


def _load_torch(source: PathLike | bytes | bytearray | memoryview, name: str, *, error: type[ArtalkError],
                mmap: bool) -> Any:
    import pickle

    import torch

    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return torch.load(io.BytesIO(bytes(source)), map_location="cpu", weights_only=True)
        if mmap:
            with contextlib.suppress(RuntimeError):  # mmap needs the zip format
                return torch.load(str(source), map_location="cpu", weights_only=True, mmap=True)
        return torch.load(str(source), map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise error(f"{name} is not a plain tensor file: it holds Python objects that artalk will not "
                        f"unpickle (only tensors, numbers, lists and dicts are loaded)") from None
        raise error(f"{name} is truncated or corrupt (torch file cannot be unpickled)") from None
    except Exception:  # noqa: BLE001 - torch's reader fails in many ways on a damaged file
        raise error(f"{name} is truncated or corrupt (torch file cannot be read)") from None


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
        try:
            yield tmp
        except OSError as e:
            # Disk full, file too large (ulimit -f), read-only disk while writing the temp file.
            if e.errno in WRITE_ERRNOS and not isinstance(e, ArtalkError):
                raise output_error("stdout" if to_stdout else target, e) from e
            raise
        check_interrupted()  # an interrupt swallowed on the way never lets a file replace a good one
        if to_stdout:
            try:
                with open(tmp, "rb") as f:
                    out = stdout_binary()
                    while block := f.read(1 << 20):
                        out.write(block)
                    out.flush()
            except BrokenPipeError:
                raise
            except OSError as e:
                raise output_error("stdout", e) from e
            tmp.unlink()
            _committed(STDIO)
        else:
            try:
                os.chmod(tmp, 0o644)
                # The commit: a stop signal before it wins (no output), one during or after it
                # finds the output complete (and recorded, so the front end can say so).
                with signals_held():
                    check_interrupted()
                    os.replace(tmp, target)
                    _committed(target)
            except OSError as e:
                raise output_error(target, e) from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


_commits: list[tuple[int, str]] | None = None


def _committed(target: PathLike) -> None:
    if _commits is not None:
        _commits.append((sequence(), "stdout" if is_stdio(target) else str(target)))


@contextlib.contextmanager
def recording_commits() -> Iterator[list[tuple[int, str]]]:
    """Within the block, the yielded list gets each output :func:`atomic_output` completes, as
    (:func:`~artalk_core.errors.sequence` number, name; ``stdout`` for ``-``): a command stopped by
    a signal says which of its outputs were complete before it (an Interrupted has its number)."""
    global _commits
    outer, _commits = _commits, []
    try:
        yield _commits
    finally:
        _commits = outer


def _special_output(target: Path, suffix: str) -> Iterator[Path]:
    """Body of :func:`atomic_output` for a non-regular target: write a temp file, then copy it in."""
    if not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {target}: permission denied")
    fd, tmp_name = tempfile.mkstemp(prefix="artalk-", suffix=f".part{suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        check_interrupted()
        try:
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except OSError as e:  # /dev/full: ENOSPC
            raise output_error(target, e) from e
        _committed(target)
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
