"""The released asset files: their manifest, a resumable verified download from the Hugging Face hub, verification.

The manifest (``artalk_core/data/released_manifest.json``) lists each released file: hub repository, path in
the repository (``filename``), path under the asset folder (``local_path``), size and sha256 (``null`` when
not known), required or optional. Sizes and hashes the manifest lacks are taken from the hub's metadata at
download time (an LFS file's ETag is its sha256) and recorded in ``<assets>/.artalk_manifest.json`` after the
first verified download, so later verifies check them even offline.

A download goes to ``<assets>/.artalk_download/<local_path>.incomplete`` and is renamed onto the final name
only after its size and hash check out; an interrupted download resumes from that partial file (HTTP Range).
The licensed ``FLAME_with_eye.pt`` is never downloaded: :data:`FLAME_NOTICE` says how to get it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlparse

from artalk_core.assets import assets_dir, available_styles, style_dir
from artalk_core.constants import CHECKPOINT_NAME, CONFIG_NAME, FLAME_NAME, STYLE_DIR
from artalk_core.errors import AssetError, DependencyError, FormatError, OutputError
from artalk_core.fileio import PathLike, atomic_output, sha256_file, sha256_file_cached
from artalk_core.progress import OptionalProgress, report

MANIFEST_PATH: Path = Path(__file__).resolve().parent / "data" / "released_manifest.json"
MANIFEST_FORMAT = "artalk-released-manifest/1"
LOCK_NAME = ".artalk_manifest.json"
LOCK_FORMAT = "artalk-assets-lock/1"
PARTIAL_DIR = ".artalk_download"
DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_INSTALL_HINT = "pip install 'artalk[hub]'"

FLAME_NOTICE = (
    "{name} is not downloaded automatically: FLAME is licensed by the Max Planck Institute. "
    "Register at https://flame.is.tue.mpg.de, accept the licence, then put {name} (as distributed with the "
    "reference ARTalk/GAGAvatar tools) into {root}/. Without it `artalk render` uses a built-in stand-in head.")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")

# Verify statuses.
OK, MISSING, WRONG_SIZE, WRONG_HASH, UNVERIFIED = "ok", "missing", "wrong size", "wrong hash", "unverified"


@dataclass(frozen=True)
class ReleasedFile:
    """One released file. ``filename`` is the path inside the hub repository, ``local_path`` the POSIX path under
    the asset folder; ``size``/``sha256`` are None when the release figures are not known."""

    repo_id: str
    filename: str
    local_path: str
    size: int | None
    sha256: str | None
    required: bool
    description: str = ""
    kind: str = "other"
    revision: str = "main"


@dataclass
class DownloadResult:
    """What :func:`download` did for one file. ``status``: ``downloaded`` or ``present`` (already there, verified)."""

    file: ReleasedFile
    path: Path
    status: str
    size: int
    sha256: str
    resumed_from: int = 0
    """Bytes reused from an earlier interrupted download (0: none)."""
    recorded: list[str] = field(default_factory=list)
    """Figures unknown to the manifest recorded in the lock file by this run (``size``, ``sha256``)."""
    replaced_old: Path | None = None
    """Where a previous file that failed verification was moved before being replaced."""

    def notes(self) -> list[str]:
        """Human sentences about what was recorded or replaced."""
        out: list[str] = []
        if "sha256" in self.recorded:
            out.append(f"recorded sha256 of {self.file.local_path} on first download; later verifies check it")
        elif "size" in self.recorded:
            out.append(f"recorded the size of {self.file.local_path} on first download; later verifies check it")
        if self.replaced_old is not None:
            out.append(f"{self.file.local_path}: the previous file did not match the release; "
                       f"kept it as {self.replaced_old.name}")
        return out


@dataclass
class VerifyResult:
    """The state of one released file on disk. ``status``: ok / missing / wrong size / wrong hash / unverified."""

    file: ReleasedFile
    path: Path
    status: str
    size: int | None = None
    sha256: str | None = None
    expected_size: int | None = None
    expected_sha256: str | None = None
    source: str = ""
    """Where the expected figures come from: ``manifest`` or ``recorded`` (the lock file), or empty."""

    @property
    def problem(self) -> bool:
        """True if this file makes the asset folder unusable: a required one missing, or any one wrong."""
        if self.status in (WRONG_SIZE, WRONG_HASH):
            return True
        return self.status == MISSING and self.file.required


# ----------------------------------------------------------------------------------------------- manifest

def _check_local_path(value: str, where: str) -> str:
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value or p.parts[0] in (PARTIAL_DIR, LOCK_NAME):
        raise FormatError(f"{where}: unsafe local_path {value!r} (must be a relative path inside the asset folder)")
    return p.as_posix()


def load_manifest(path: PathLike | None = None) -> list[ReleasedFile]:
    """The released files listed in ``path`` (default: the packaged released_manifest.json)."""
    src = Path(path) if path is not None else MANIFEST_PATH
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"asset manifest not found: {src}") from None
    except (OSError, ValueError) as e:
        raise FormatError(f"asset manifest {src} is not readable JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
        raise FormatError(f"{src} is not an artalk asset manifest (expected \"format\": \"{MANIFEST_FORMAT}\" "
                          f"and a \"files\" list)")
    revision = str(doc.get("revision") or "main")
    out: list[ReleasedFile] = []
    seen: set[str] = set()
    for i, item in enumerate(doc["files"]):
        where = f"{src} file #{i}"
        if not isinstance(item, dict) or not item.get("repo_id") or not (item.get("local_path") or item.get("filename")):
            raise FormatError(f"{where}: needs repo_id and local_path (or filename)")
        local = _check_local_path(str(item.get("local_path") or item["filename"]), where)
        if local in seen:
            raise FormatError(f"{where}: local_path {local} listed twice")
        seen.add(local)
        size, sha = item.get("size"), item.get("sha256")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise FormatError(f"{where}: size must be a non-negative integer or null, got {size!r}")
        if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.match(sha.lower())):
            raise FormatError(f"{where}: sha256 must be 64 hex digits or null, got {sha!r}")
        out.append(ReleasedFile(
            repo_id=str(item["repo_id"]), filename=str(item.get("filename") or local), local_path=local,
            size=size, sha256=sha.lower() if sha else None, required=bool(item.get("required", True)),
            description=str(item.get("description", "")), kind=str(item.get("kind", "other")),
            revision=str(item.get("revision") or revision)))
    return out


def _manifest(manifest: PathLike | None | list[ReleasedFile]) -> list[ReleasedFile]:
    return list(manifest) if isinstance(manifest, list) else load_manifest(manifest)


# ----------------------------------------------------------------------------------------------- lock file

def _read_lock(root: Path) -> dict[str, dict[str, Any]]:
    """Figures recorded by earlier downloads, by local_path (an unreadable lock counts as empty)."""
    try:
        doc = json.loads((root / LOCK_NAME).read_text(encoding="utf-8"))
        files = doc.get("files", {}) if isinstance(doc, dict) else {}
        return {str(k): v for k, v in files.items() if isinstance(v, dict)}
    except (OSError, ValueError):
        return {}


def _write_lock(root: Path, files: dict[str, dict[str, Any]]) -> None:
    doc = {"format": LOCK_FORMAT,
           "comment": "sizes and sha256 of downloaded asset files, recorded by `artalk assets download`",
           "files": dict(sorted(files.items()))}
    with atomic_output(root / LOCK_NAME) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _recorded(entry: ReleasedFile, lock: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The lock's record for ``entry``, if it was made for the same hub file."""
    rec = lock.get(entry.local_path)
    if not rec or rec.get("repo_id") != entry.repo_id or rec.get("filename") != entry.filename:
        return {}
    return rec


def _expected(entry: ReleasedFile, lock: dict[str, dict[str, Any]]) -> tuple[int | None, str | None, str]:
    """(size, sha256, source) to check a local file against: the manifest first, then the lock."""
    rec = _recorded(entry, lock)
    size = entry.size if entry.size is not None else rec.get("size")
    sha = entry.sha256 if entry.sha256 is not None else rec.get("sha256")
    if entry.sha256 is not None or (entry.size is not None and sha is None):
        source = "manifest"
    elif sha is not None or size is not None:
        source = "recorded"
    else:
        source = ""
    return (int(size) if isinstance(size, int) else None, str(sha) if sha else None, source)


# ----------------------------------------------------------------------------------------------- verify

def _check_file(entry: ReleasedFile, path: Path, lock: dict[str, dict[str, Any]], *, cached: bool) -> VerifyResult:
    size, sha, source = _expected(entry, lock)
    res = VerifyResult(file=entry, path=path, status=MISSING, expected_size=size, expected_sha256=sha, source=source)
    if not path.is_file():
        return res
    res.size = path.stat().st_size
    if size is not None and res.size != size:
        res.status = WRONG_SIZE
        return res
    if sha is None:
        res.status = UNVERIFIED
        return res
    res.sha256 = sha256_file_cached(path) if cached else sha256_file(path)
    res.status = OK if res.sha256 == sha else WRONG_HASH
    return res


def verify(root: PathLike | None = None, *, manifest: PathLike | None | list[ReleasedFile] = None,
           include_optional: bool = True, progress: OptionalProgress = None) -> list[VerifyResult]:
    """Check each released file under ``root`` (default: the asset folder) against its size and sha256.

    Expected figures come from the manifest, else from the lock file written by :func:`download`; a file
    with no known sha256 is ``unverified``. Every present file is hashed afresh (no cache).
    """
    folder = assets_dir(root)
    lock = _read_lock(folder)
    entries = [e for e in _manifest(manifest) if include_optional or e.required]
    out = []
    for i, entry in enumerate(entries):
        report(progress, "verify", i, len(entries))
        out.append(_check_file(entry, folder / entry.local_path, lock, cached=False))
    report(progress, "verify", len(entries), len(entries))
    return out


def raise_for_problems(results: list[VerifyResult]) -> None:
    """AssetError naming every required file missing and every file with a wrong size or hash."""
    bad = [r for r in results if r.problem]
    if bad:
        names = ", ".join(f"{r.file.local_path} ({r.status})" for r in bad[:6])
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        raise AssetError(f"{len(bad)} asset file(s) not usable: {names}{more}; "
                         f"run `artalk assets download` to fetch or replace them")


def flame_path(root: PathLike | None = None) -> Path:
    """Where the licensed FLAME head is expected: ``<assets>/FLAME_with_eye.pt``."""
    return assets_dir(root) / FLAME_NAME


def flame_notice(root: PathLike | None = None) -> str:
    """The licence notice with the folder the FLAME file belongs in."""
    return FLAME_NOTICE.format(name=FLAME_NAME, root=assets_dir(root))


# ----------------------------------------------------------------------------------------------- list

def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def list_assets(root: PathLike | None = None, *, manifest: PathLike | None | list[ReleasedFile] = None
                ) -> dict[str, Any]:
    """What the asset folder holds (no hashing): JSON-ready.

    ``{"root", "checkpoint": {name, path, present, size}, "config": {...}, "styles": [{name, path, size,
    released}], "missing_styles": [names released but not here], "heads": [{name, kind, present, size,
    default}], "optional": [{name, present, size}]}``.
    """
    folder = assets_dir(root)
    entries = _manifest(manifest)

    def item(name: str, path: Path) -> dict[str, Any]:
        return {"name": name, "path": str(path), "present": path.is_file(), "size": _size(path)}

    released_styles = {PurePosixPath(e.local_path).stem for e in entries
                       if e.kind == "style" or PurePosixPath(e.local_path).parent.as_posix() == STYLE_DIR}
    styles = [{"name": s, "path": str(style_dir(folder) / f"{s}.pt"), "size": _size(style_dir(folder) / f"{s}.pt"),
               "released": s in released_styles} for s in available_styles(folder)]
    have = {s["name"] for s in styles}
    flame = folder / FLAME_NAME
    heads = [
        {"name": FLAME_NAME, "kind": "FLAME (licensed)", "path": str(flame), "present": flame.is_file(),
         "size": _size(flame), "default": flame.is_file()},
        {"name": "stand-in", "kind": "built-in stand-in head (not FLAME)", "path": None, "present": True,
         "size": None, "default": not flame.is_file()},
    ]
    optional = [item(e.local_path, folder / e.local_path) for e in entries if not e.required]
    return {"root": str(folder), "checkpoint": item(CHECKPOINT_NAME, folder / CHECKPOINT_NAME),
            "config": item(CONFIG_NAME, folder / CONFIG_NAME), "styles": styles,
            "missing_styles": sorted(released_styles - have), "heads": heads, "optional": optional}


# ----------------------------------------------------------------------------------------------- download

def _hub() -> Any:
    try:
        import huggingface_hub  # noqa: F401
        from huggingface_hub import file_download
    except ImportError:
        raise DependencyError(f"downloading assets needs huggingface_hub: {HUB_INSTALL_HINT}") from None
    return file_download


def resolve_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``$HF_ENDPOINT``, else https://huggingface.co (read now, not at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of whichever HTTP client this huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for mod, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                       ("requests", ("ConnectionError", "Timeout"))):
        with contextlib.suppress(ImportError):
            m = __import__(mod)
            found += [getattr(m, n) for n in names if isinstance(getattr(m, n, None), type)]
    with contextlib.suppress(ImportError):
        from huggingface_hub.errors import OfflineModeIsEnabled
        found.append(OfflineModeIsEnabled)
    return tuple(found)


def _hub_error(e: BaseException, entry: ReleasedFile, endpoint: str, url: str,
               partial: Path | None = None) -> AssetError | None:
    """A one-line AssetError for a hub/HTTP failure, or None if ``e`` is not one. ``partial``: the partial
    download kept for resuming, when the failure came mid-transfer."""
    names = {c.__name__ for c in type(e).__mro__}
    status = getattr(getattr(e, "response", None), "status_code", None)
    what = f"{entry.filename} in {entry.repo_id}@{entry.revision}"
    if "OfflineModeIsEnabled" in names:
        return AssetError(f"cannot download {entry.local_path}: HF_HUB_OFFLINE is set; unset it to download")
    if "EntryNotFoundError" in names or (status == 404 and "RepositoryNotFoundError" not in names):
        return AssetError(f"{what} not found on the hub ({url}, HTTP 404); the release layout may have changed: "
                          f"correct 'filename' in the asset manifest")
    if "RevisionNotFoundError" in names:
        return AssetError(f"revision {entry.revision} of {entry.repo_id} not found on the hub ({endpoint})")
    if "RepositoryNotFoundError" in names:
        return AssetError(f"hub repository {entry.repo_id} not found or not accessible at {endpoint} "
                          f"(HTTP {status}); check HF_ENDPOINT and the asset manifest")
    if status is not None:
        return AssetError(f"hub error HTTP {status} for {url}; retry later (HF_ENDPOINT={endpoint})")
    if isinstance(e, _transport_errors()):
        if partial is not None and partial.is_file() and partial.stat().st_size:
            return AssetError(f"connection to {urlparse(url).netloc} lost while downloading {entry.local_path} "
                              f"({type(e).__name__}: {e}); {partial.stat().st_size} bytes kept in {partial}: "
                              f"rerun to resume")
        return AssetError(f"cannot reach the hub at {endpoint} to download {entry.local_path} "
                          f"({type(e).__name__}: {e}); downloading needs the network "
                          f"(set HF_ENDPOINT to use a mirror), then rerun")
    return None


class _QuietBar:
    """A do-nothing stand-in for huggingface_hub's tqdm bar (progress goes through ``progress`` instead)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _QuietBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _write_chunk(f: BinaryIO, data: bytes) -> int:
    """The single place download bytes hit the disk (tests replace it to simulate a full disk)."""
    return f.write(data)


class _Sink:
    """The file object handed to ``http_get``: writes through :func:`_write_chunk` and reports progress."""

    def __init__(self, f: BinaryIO, stage: str, total: int | None, progress: OptionalProgress) -> None:
        self._f, self._stage, self._total, self._progress = f, stage, total, progress

    def write(self, data: bytes) -> int:
        n = _write_chunk(self._f, data)
        report(self._progress, self._stage, self._f.tell(), self._total or 0)
        return n

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        return self._f.truncate(size)

    def flush(self) -> None:
        self._f.flush()


@contextlib.contextmanager
def _exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an advisory lock so two downloads never append to the same partial file."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the hash check still catches a mixed file
        yield
        return
    with open(lock_path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AssetError(f"another `artalk assets download` is fetching {what} (lock {lock_path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Remote:
    url: str
    size: int | None
    etag: str | None
    commit: str | None


def _remote(entry: ReleasedFile, endpoint: str, headers: dict[str, str]) -> _Remote:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo_id, entry.filename, revision=entry.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, headers=headers)
    except Exception as e:
        err = _hub_error(e, entry, endpoint, url)
        if err is None:
            raise
        raise err from None
    etag = (meta.etag or "").strip('"').lower() or None
    return _Remote(url=meta.location or url, size=meta.size, etag=etag, commit=meta.commit_hash)


def _hub_sha256(remote: _Remote) -> str | None:
    """The hub's sha256 of the file: an LFS file's ETag is its sha256."""
    return remote.etag if remote.etag and _SHA256_RE.match(remote.etag) else None


def _check_against_hub(entry: ReleasedFile, remote: _Remote) -> None:
    """Fail before a long download when the hub serves a different file than the manifest describes."""
    hub_sha = _hub_sha256(remote)
    if entry.size is not None and remote.size is not None and entry.size != remote.size:
        raise AssetError(f"the hub's {entry.filename} in {entry.repo_id} is {remote.size} bytes but the release "
                         f"manifest says {entry.size}: the hub file changed; not downloading it")
    if entry.sha256 is not None and hub_sha is not None and entry.sha256 != hub_sha:
        raise AssetError(f"the hub's {entry.filename} in {entry.repo_id} has sha256 {hub_sha} but the release "
                         f"manifest says {entry.sha256}: the hub file changed; not downloading it")


def _matches(path: Path, size: int | None, sha: str | None, remote: _Remote | None,
             *, cached: bool, require_hash: bool) -> tuple[bool, str]:
    """(ok, sha256 of the file) checking size and sha256, else the hub's git blob id for small git files.

    With no hash to compare at all, a fresh download is trusted (its hash gets recorded) but an existing
    file is not (``require_hash``): it is downloaded again.
    """
    if size is not None and path.stat().st_size != size:
        return False, ""
    digest = sha256_file_cached(path) if cached else sha256_file(path)
    if sha is not None:
        return digest == sha, digest
    if remote is not None and remote.etag and _SHA1_RE.match(remote.etag):
        return _git_blob_sha1(path) == remote.etag, digest
    return not require_hash, digest


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _fetch(fd: Any, entry: ReleasedFile, remote: _Remote, endpoint: str, headers: dict[str, str], partial: Path,
           size: int | None, progress: OptionalProgress) -> int:
    """Download (or resume) ``remote`` into ``partial``; returns the bytes that were already there."""
    meta_path = partial.with_name(partial.name + ".json")
    have = partial.stat().st_size if partial.is_file() else 0
    if have:
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("etag") != remote.etag or (size is not None and have > size):
            have = 0  # a partial of another version of the file: start over
    if not have:
        partial.write_bytes(b"")
    meta_path.write_text(json.dumps({"etag": remote.etag, "size": size, "repo_id": entry.repo_id,
                                     "filename": entry.filename}))
    if size is not None:
        free = _free_bytes(partial.parent)
        if free is not None and free < size - have:
            raise OutputError(f"not enough disk space in {partial.parent} for {entry.local_path}: needs "
                              f"{size - have} more bytes, {free} free; free some space and rerun")
    get_headers = dict(headers)
    if urlparse(remote.url).netloc != urlparse(endpoint).netloc:
        get_headers.pop("authorization", None)  # a signed CDN address: the token stays on the hub
    kwargs: dict[str, Any] = {"resume_size": have, "headers": get_headers, "expected_size": size,
                              "displayed_filename": entry.local_path}
    import inspect

    if "tqdm_class" in inspect.signature(fd.http_get).parameters:
        kwargs["tqdm_class"] = _QuietBar
    with open(partial, "r+b") as f:
        f.seek(have)
        report(progress, entry.local_path, have, size or 0)
        try:
            fd.http_get(remote.url, _Sink(f, entry.local_path, size, progress), **kwargs)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise OutputError(
                    f"disk full while downloading {entry.local_path} into {partial.parent}: free some space and "
                    f"rerun; the partial download ({partial}) resumes") from None
            with contextlib.suppress(OSError):
                f.flush()
            err = _hub_error(e, entry, endpoint, remote.url, partial)
            if err is not None:
                raise err from None
            if "Consistency check failed" in str(e):
                raise AssetError(f"download of {entry.local_path} ended early ({f.tell()} of {size} bytes); "
                                 f"rerun to resume") from None
            raise OutputError(f"cannot write {partial}: {e.strerror or e}") from None
        except Exception as e:
            with contextlib.suppress(OSError):
                f.flush()
            err = _hub_error(e, entry, endpoint, remote.url, partial)
            if err is None:
                raise
            raise err from None
    return have


def _download_one(fd: Any, entry: ReleasedFile, folder: Path, lock: dict[str, dict[str, Any]], endpoint: str,
                  headers: dict[str, str], progress: OptionalProgress) -> DownloadResult:
    final = folder / entry.local_path
    size, sha, _ = _expected(entry, lock)
    if final.is_file() and sha is not None:
        ok, digest = _matches(final, size, sha, None, cached=True, require_hash=True)
        if ok:
            return DownloadResult(entry, final, "present", final.stat().st_size, digest)

    remote = _remote(entry, endpoint, headers)
    _check_against_hub(entry, remote)
    size = size if size is not None else remote.size
    sha = sha if sha is not None else _hub_sha256(remote)
    recorded = [k for k, known in (("size", entry.size), ("sha256", entry.sha256)) if known is None]

    def record(digest: str, nbytes: int) -> None:
        lock[entry.local_path] = {
            "repo_id": entry.repo_id, "filename": entry.filename, "revision": entry.revision,
            "size": nbytes, "sha256": digest, "etag": remote.etag, "commit": remote.commit,
            "recorded_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
        _write_lock(folder, lock)

    prior = _recorded(entry, lock)
    if final.is_file():
        ok, digest = _matches(final, size, sha, remote, cached=True, require_hash=True)
        if ok:
            new = [k for k in recorded if prior.get(k) is None]
            if new:
                record(digest, final.stat().st_size)
            return DownloadResult(entry, final, "present", final.stat().st_size, digest, recorded=new)

    partial = folder / PARTIAL_DIR / (entry.local_path + ".incomplete")
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create folders under {folder}: {e.strerror or e}") from None
    with _exclusive(partial.with_name(partial.name + ".lock"), entry.local_path):
        resumed = _fetch(fd, entry, remote, endpoint, headers, partial, size, progress)
        got = partial.stat().st_size
        ok, digest = _matches(partial, size, sha, remote, cached=False, require_hash=False)
        if not ok:
            for p in (partial, partial.with_name(partial.name + ".json")):
                p.unlink(missing_ok=True)
            if size is not None and got != size:
                raise AssetError(f"downloaded {entry.local_path} has {got} bytes, expected {size}; deleted it, "
                                 f"rerun to download again")
            expected = sha if sha is not None else f"git blob {remote.etag}"
            raise AssetError(f"downloaded {entry.local_path} has the wrong hash: expected sha256 {expected}, "
                             f"got {digest}; deleted it, rerun to download again (or check HF_ENDPOINT)")
        replaced: Path | None = None
        if final.is_file():
            replaced = final.with_name(final.name + ".old")
            os.replace(final, replaced)
        os.replace(partial, final)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        partial.with_name(partial.name + ".lock").unlink()
    new = [k for k in recorded if prior.get(k) is None]
    record(digest, got)
    return DownloadResult(entry, final, "downloaded", got, digest, resumed_from=resumed, recorded=new,
                          replaced_old=replaced)


def download(root: PathLike | None = None, *, include_optional: bool = False,
             manifest: PathLike | None | list[ReleasedFile] = None, endpoint: str | None = None,
             progress: OptionalProgress = None) -> list[DownloadResult]:
    """Fetch the released files into ``root`` (default: the asset folder), verified; skips files already there.

    ``endpoint`` defaults to ``$HF_ENDPOINT``; a hub token (``HF_TOKEN`` / ``$HF_HOME/token``) is sent if set.
    Progress stages are the files' local paths, counted in bytes. Stops at the first failure (typed error);
    files already finished stay. FLAME_with_eye.pt is never fetched (see :func:`flame_notice`).
    """
    fd = _hub()
    from huggingface_hub.utils import build_hf_headers

    folder = assets_dir(root)
    entries = [e for e in _manifest(manifest) if include_optional or e.required]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the asset folder {folder}: {e.strerror or e}") from None
    url = resolve_endpoint(endpoint)
    headers = build_hf_headers(library_name="artalk")
    headers["Accept-Encoding"] = "identity"  # sizes and Range offsets are of the raw bytes
    lock = _read_lock(folder)
    results = [_download_one(fd, e, folder, lock, url, headers, progress) for e in entries]
    _remove_empty_dirs(folder / PARTIAL_DIR)
    return results


def _remove_empty_dirs(top: Path) -> None:
    """Remove ``top`` and its sub-folders when they hold no partial download any more."""
    if not top.is_dir():
        return
    for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


__all__ = ["ReleasedFile", "DownloadResult", "VerifyResult", "load_manifest", "download", "verify",
           "raise_for_problems", "list_assets", "flame_path", "flame_notice", "resolve_endpoint", "MANIFEST_PATH",
           "LOCK_NAME", "FLAME_NOTICE", "OK", "MISSING", "WRONG_SIZE", "WRONG_HASH", "UNVERIFIED"]
