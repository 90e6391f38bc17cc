"""Downloading the released asset files from the Hugging Face hub, verified.

The transfer is ``huggingface_hub.hf_hub_download`` (locking, retries that resume a dropped connection
within the call, Xet storage). What is ours: which files (the manifest), where they go (``local_path``
under the asset folder, which may differ from the path in the repository), the size and sha256 checks
before a file takes its final name, the figures recorded in the lock file, a disk-space check before a
long transfer, and typed one-line errors. A file is fetched into ``<assets>/.artalk_download/<repo>/``
and renamed onto its final name only after it checks out; a file that fails is deleted. The hub is
``endpoint``, else ``$HF_ENDPOINT``, else https://huggingface.co (a mirror, or the tests' local server).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from artalk_core import __version__
from artalk_core.assets.manifest import (
    PARTIAL_DIR,
    ReleasedFile,
    expected_figures,
    manifest_files,
    read_lock,
    recorded_figures,
    write_lock,
)
from artalk_core.assets.paths import assets_dir
from artalk_core.errors import AssetError, DependencyError, OutputError
from artalk_core.fileio import PathLike, sha256_file, sha256_file_cached
from artalk_core.progress import OptionalProgress, report

DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_INSTALL_HINT = "pip install 'artalk[hub]'"
_HEX = frozenset("0123456789abcdef")


@dataclass
class DownloadResult:
    """What :func:`download` did for one file. ``status``: ``downloaded``, ``present`` (already there,
    verified) or ``not downloadable`` (not published yet: nothing fetched; size 0, no sha256)."""

    file: ReleasedFile
    path: Path
    status: str
    size: int
    sha256: str
    resumed_from: int = 0
    """Bytes reused from an earlier run (0: huggingface_hub resumes a dropped transfer only within a call)."""
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


def resolve_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``$HF_ENDPOINT``, else https://huggingface.co (read now, not at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _require_hub() -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise DependencyError(f"downloading assets needs huggingface_hub: {HUB_INSTALL_HINT}") from None


# ----------------------------------------------------------------------------------------------- errors

def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of the HTTP client huggingface_hub uses (httpx2 since 2.0, httpx in 1.x)."""
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            found.append(__import__(module).TransportError)
    return tuple(found)


def _hub_error(e: BaseException, entry: ReleasedFile, endpoint: str, url: str, *, transferring: bool) -> AssetError | None:
    """A one-line AssetError for a hub/HTTP failure, or None if ``e`` is not one. ``transferring``: the failure
    came after the hub answered (the connection was lost during the transfer)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{entry.filename} in {entry.repo_id}@{entry.revision}"
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(e, OfflineModeIsEnabled):
        return AssetError(f"cannot download {entry.local_path}: HF_HUB_OFFLINE is set; unset it to download")
    if isinstance(e, EntryNotFoundError):
        return AssetError(f"{what} not found on the hub ({url}, HTTP 404); the release layout may have changed: "
                          f"correct 'filename' in the asset manifest")
    if isinstance(e, RevisionNotFoundError):
        return AssetError(f"revision {entry.revision} of {entry.repo_id} not found on the hub ({endpoint})")
    if isinstance(e, RepositoryNotFoundError):
        return AssetError(f"hub repository {entry.repo_id} not found or not accessible at {endpoint} "
                          f"(HTTP {status}); check HF_ENDPOINT and the asset manifest")
    if isinstance(e, HfHubHTTPError):
        return AssetError(f"hub error HTTP {status} for {url}; retry later (HF_ENDPOINT={endpoint})")
    if isinstance(e, _transport_errors()):
        if transferring:
            return AssetError(f"connection to {urlparse(url).netloc} lost while downloading {entry.local_path} "
                              f"({type(e).__name__}: {e}); nothing was kept: rerun to download it again")
        return AssetError(f"cannot reach the hub at {endpoint} to download {entry.local_path} "
                          f"({type(e).__name__}: {e}); downloading needs the network "
                          f"(set HF_ENDPOINT to use a mirror), then rerun")
    return None


# ----------------------------------------------------------------------------------------------- hub facts

@dataclass
class _Remote:
    url: str
    size: int | None
    etag: str | None
    commit: str | None

    @property
    def sha256(self) -> str | None:
        """The hub's sha256 of the file: an LFS file's ETag is its sha256."""
        return self.etag if self.etag and len(self.etag) == 64 and set(self.etag) <= _HEX else None

    @property
    def git_sha1(self) -> str | None:
        """The git blob id of a small (non-LFS) file: its ETag."""
        return self.etag if self.etag and len(self.etag) == 40 and set(self.etag) <= _HEX else None


def _remote(entry: ReleasedFile, endpoint: str) -> _Remote:
    """The hub's metadata of ``entry`` (one HEAD request): size, ETag, commit."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.repo_id, entry.filename, revision=entry.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint, library_name="artalk", library_version=__version__)
    except Exception as e:
        err = _hub_error(e, entry, endpoint, url, transferring=False)
        if err is None:
            raise
        raise err from None
    etag = (meta.etag or "").strip('"').lower() or None
    return _Remote(url=meta.location or url, size=meta.size, etag=etag, commit=meta.commit_hash)


def _check_against_hub(entry: ReleasedFile, remote: _Remote) -> None:
    """Fail before a long download when the hub serves a different file than the manifest describes."""
    if entry.size is not None and remote.size is not None and entry.size != remote.size:
        raise AssetError(f"the hub's {entry.filename} in {entry.repo_id} is {remote.size} bytes but the release "
                         f"manifest says {entry.size}: the hub file changed; not downloading it")
    if entry.sha256 is not None and remote.sha256 is not None and entry.sha256 != remote.sha256:
        raise AssetError(f"the hub's {entry.filename} in {entry.repo_id} has sha256 {remote.sha256} but the release "
                         f"manifest says {entry.sha256}: the hub file changed; not downloading it")


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


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
    if remote is not None and remote.git_sha1 is not None:
        return _git_blob_sha1(path) == remote.git_sha1, digest
    return not require_hash, digest


# ----------------------------------------------------------------------------------------------- transfer

def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _progress_bar(stage: str, progress: OptionalProgress) -> type[Any]:
    """A tqdm class for huggingface_hub that draws nothing and reports through ``progress`` instead."""
    from huggingface_hub.utils import tqdm

    class _Bar(tqdm):  # huggingface_hub's own tqdm class takes the ``name`` it passes to its bars
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            self.expected = int(kwargs.get("total") or 0)
            report(progress, stage, self.done, self.expected)

        def update(self, n: float | None = 1) -> bool | None:
            self.done += int(n or 0)
            report(progress, stage, self.done, self.expected)
            return None

    return _Bar


def _staging(folder: Path, entry: ReleasedFile) -> Path:
    """The folder hf_hub_download fetches ``entry`` into (its repository path is kept below it)."""
    return folder / PARTIAL_DIR / entry.repo_id.replace("/", "--")


def _fetch(entry: ReleasedFile, folder: Path, remote: _Remote, endpoint: str, size: int | None,
           progress: OptionalProgress) -> Path:
    """Download ``entry`` with hf_hub_download into its staging folder; returns the file there."""
    from huggingface_hub import hf_hub_download

    if size is not None:
        free = _free_bytes(folder)
        if free is not None and free < size:
            raise OutputError(f"not enough disk space in {folder} for {entry.local_path}: needs {size} more bytes, "
                              f"{free} free; free some space and rerun")
    report(progress, entry.local_path, 0, size or 0)
    try:
        got = hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision, endpoint=endpoint,
                              local_dir=_staging(folder, entry), library_name="artalk", library_version=__version__,
                              tqdm_class=_progress_bar(entry.local_path, progress))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise OutputError(f"disk full while downloading {entry.local_path} into {folder}: free some space "
                              f"and rerun") from None
        err = _hub_error(e, entry, endpoint, remote.url, transferring=True)
        if err is not None:
            raise err from None
        if "Consistency check failed" in str(e):  # the transfer ended short of the advertised size
            raise AssetError(f"download of {entry.local_path} ended early; rerun to download it again") from None
        raise OutputError(f"cannot write the download of {entry.local_path} into {folder}: {e.strerror or e}") from None
    except Exception as e:
        err = _hub_error(e, entry, endpoint, remote.url, transferring=True)
        if err is None:
            raise
        raise err from None
    path = Path(str(got))
    report(progress, entry.local_path, path.stat().st_size, size or path.stat().st_size)
    return path


def _forget_staging(folder: Path, entry: ReleasedFile) -> None:
    """Remove hf_hub_download's bookkeeping of ``entry`` (its ``.metadata`` / ``.lock``) once the file moved out."""
    book = _staging(folder, entry) / ".cache" / "huggingface" / "download"
    for suffix in (".metadata", ".lock"):
        with contextlib.suppress(OSError):
            (book / (entry.filename + suffix)).unlink()


NOT_DOWNLOADABLE = "not downloadable"


def _download_one(entry: ReleasedFile, folder: Path, lock: dict[str, dict[str, Any]], endpoint: str,
                  progress: OptionalProgress) -> DownloadResult:
    final = folder / entry.local_path
    if not entry.downloadable:  # listed because the reference names it; nothing is published to fetch
        return DownloadResult(entry, final, NOT_DOWNLOADABLE, 0, "")
    size, sha, _ = expected_figures(entry, lock)
    if final.is_file() and sha is not None:
        ok, digest = _matches(final, size, sha, None, cached=True, require_hash=True)
        if ok:
            return DownloadResult(entry, final, "present", final.stat().st_size, digest)

    remote = _remote(entry, endpoint)
    _check_against_hub(entry, remote)
    size = size if size is not None else remote.size
    sha = sha if sha is not None else remote.sha256
    unknown = [k for k, known in (("size", entry.size), ("sha256", entry.sha256)) if known is None]
    new = [k for k in unknown if recorded_figures(entry, lock).get(k) is None]

    def record(digest: str, nbytes: int) -> None:
        lock[entry.local_path] = {
            "repo_id": entry.repo_id, "filename": entry.filename, "revision": entry.revision,
            "size": nbytes, "sha256": digest, "etag": remote.etag, "commit": remote.commit,
            "recorded_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
        write_lock(folder, lock)

    if final.is_file():
        ok, digest = _matches(final, size, sha, remote, cached=True, require_hash=True)
        if ok:
            if new:
                record(digest, final.stat().st_size)
            return DownloadResult(entry, final, "present", final.stat().st_size, digest, recorded=new)

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create folders under {folder}: {e.strerror or e}") from None
    staged = _fetch(entry, folder, remote, endpoint, size, progress)
    got = staged.stat().st_size
    ok, digest = _matches(staged, size, sha, remote, cached=False, require_hash=False)
    if not ok:
        staged.unlink(missing_ok=True)
        _forget_staging(folder, entry)
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
    os.replace(staged, final)
    _forget_staging(folder, entry)
    record(digest, got)
    return DownloadResult(entry, final, "downloaded", got, digest, recorded=new, replaced_old=replaced)


def download(root: PathLike | None = None, *, include_optional: bool = False,
             manifest: PathLike | None | list[ReleasedFile] = None, endpoint: str | None = None,
             progress: OptionalProgress = None) -> list[DownloadResult]:
    """Fetch the released files into ``root`` (default: the asset folder), verified; skips files already there.

    ``endpoint`` defaults to ``$HF_ENDPOINT``; a hub token (``HF_TOKEN`` / ``$HF_HOME/token``) is sent if set.
    Progress stages are the files' local paths, counted in bytes. Stops at the first failure (typed error);
    files already finished stay. FLAME_with_eye.pt is never fetched (see :func:`flame_notice`), nor a file the
    manifest marks not downloadable (its result says ``not downloadable``).
    """
    _require_hub()
    folder = assets_dir(root)
    entries = [e for e in manifest_files(manifest) if include_optional or e.required]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the asset folder {folder}: {e.strerror or e}") from None
    url = resolve_endpoint(endpoint)
    lock = read_lock(folder)
    try:
        return [_download_one(e, folder, lock, url, progress) for e in entries]
    finally:
        _tidy(folder / PARTIAL_DIR)


def _tidy(top: Path) -> None:
    """Remove the staging folder unless a download is under way there (another process's ``.incomplete``
    file in huggingface_hub's bookkeeping folder); what is left is bookkeeping and older leftovers."""
    if top.is_dir() and not any(top.glob("*/.cache/huggingface/download/**/*.incomplete")):
        shutil.rmtree(top, ignore_errors=True)


__all__ = ["DownloadResult", "download", "resolve_endpoint", "DEFAULT_ENDPOINT", "HUB_INSTALL_HINT", "NOT_DOWNLOADABLE"]
