"""The released asset files: their manifest, the lock file of figures recorded on download, verification.

The manifest (``artalk_core/data/released_manifest.json``) lists each released file: hub repository, path in
the repository (``filename``), path under the asset folder (``local_path``), size and sha256 (``null`` when
not known), required or optional, and ``downloadable`` (false for a file the reference names but nobody
published yet, ``ARTalk_mimi.pt``: listed and verified when present, never fetched). Sizes and hashes the manifest lacks are taken from the hub's metadata at
download time (an LFS file's ETag is its sha256) and recorded in ``<assets>/.artalk_manifest.json`` after the
first verified download, so later verifies check them even offline. The licensed ``FLAME_with_eye.pt`` is
never downloaded: :data:`FLAME_NOTICE` says how to get it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from artalk_core.assets.paths import asset_default, assets_dir, available_styles, checkpoint_name, style_dir
from artalk_core.constants import CHECKPOINT_NAME, CONFIG_NAME, FLAME_NAME, STYLE_DIR
from artalk_core.errors import AssetError, ConfigError, FormatError
from artalk_core.fileio import PathLike, atomic_output, sha256_file, sha256_file_cached
from artalk_core.progress import OptionalProgress, report

MANIFEST_PATH: Path = Path(__file__).resolve().parent.parent / "data" / "released_manifest.json"
MANIFEST_FORMAT = "artalk-released-manifest/1"
LOCK_NAME = ".artalk_manifest.json"
LOCK_FORMAT = "artalk-assets-lock/1"
PARTIAL_DIR = ".artalk_download"
"""Where downloads are staged under the asset folder until verified."""

FLAME_NOTICE = (
    "{name} is not downloaded automatically: FLAME is licensed by the Max Planck Institute. "
    "Register at https://flame.is.tue.mpg.de, accept the licence, then put {name} (as distributed with the "
    "reference ARTalk/GAGAvatar tools) into {root}/. Without it `artalk render` uses a built-in stand-in head.")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

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
    downloadable: bool = True
    """False for a file not published (yet): download skips it and says so."""


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
        downloadable = item.get("downloadable", True)
        if not isinstance(downloadable, bool):
            raise FormatError(f"{where}: downloadable must be true or false, got {downloadable!r}")
        if not downloadable and item.get("required", True):
            raise FormatError(f"{where}: a file that cannot be downloaded cannot be required")
        out.append(ReleasedFile(
            repo_id=str(item["repo_id"]), filename=str(item.get("filename") or local), local_path=local,
            size=size, sha256=sha.lower() if sha else None, required=bool(item.get("required", True)),
            description=str(item.get("description", "")), kind=str(item.get("kind", "other")),
            revision=str(item.get("revision") or revision), downloadable=downloadable))
    return out


def manifest_files(manifest: PathLike | None | list[ReleasedFile]) -> list[ReleasedFile]:
    return list(manifest) if isinstance(manifest, list) else load_manifest(manifest)


# ----------------------------------------------------------------------------------------------- lock file

def read_lock(root: Path) -> dict[str, dict[str, Any]]:
    """Figures recorded by earlier downloads, by local_path (an unreadable lock counts as empty)."""
    try:
        doc = json.loads((root / LOCK_NAME).read_text(encoding="utf-8"))
        files = doc.get("files", {}) if isinstance(doc, dict) else {}
        return {str(k): v for k, v in files.items() if isinstance(v, dict)}
    except (OSError, ValueError):
        return {}


def write_lock(root: Path, files: dict[str, dict[str, Any]]) -> None:
    doc = {"format": LOCK_FORMAT,
           "comment": "sizes and sha256 of downloaded asset files, recorded by `artalk assets download`",
           "files": dict(sorted(files.items()))}
    with atomic_output(root / LOCK_NAME) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def recorded_figures(entry: ReleasedFile, lock: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The lock's record for ``entry``, if it was made for the same hub file."""
    rec = lock.get(entry.local_path)
    if not rec or rec.get("repo_id") != entry.repo_id or rec.get("filename") != entry.filename:
        return {}
    return rec


def expected_figures(entry: ReleasedFile, lock: dict[str, dict[str, Any]]) -> tuple[int | None, str | None, str]:
    """(size, sha256, source) to check a local file against: the manifest first, then the lock."""
    rec = recorded_figures(entry, lock)
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
    size, sha, source = expected_figures(entry, lock)
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
    lock = read_lock(folder)
    entries = [e for e in manifest_files(manifest) if include_optional or e.required]
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
    return asset_default("--flame", root)


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
    default}], "optional": [{name, path, present, size, downloadable}]}``.
    """
    folder = assets_dir(root)
    entries = manifest_files(manifest)

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
    optional = [{**item(e.local_path, folder / e.local_path), "downloadable": e.downloadable}
                for e in entries if not e.required]
    try:  # the checkpoint the folder's config names (ARTalk_mimi.pt for AUDIO_ENCODER mimi)
        ckpt = checkpoint_name(None, folder)
    except ConfigError:
        ckpt = CHECKPOINT_NAME
    return {"root": str(folder), "checkpoint": item(ckpt, folder / ckpt),
            "config": item(CONFIG_NAME, folder / CONFIG_NAME), "styles": styles,
            "missing_styles": sorted(released_styles - have), "heads": heads, "optional": optional}


__all__ = ["ReleasedFile", "VerifyResult", "load_manifest", "verify", "raise_for_problems", "list_assets", "flame_path",
           "flame_notice", "read_lock", "write_lock", "recorded_figures", "expected_figures", "manifest_files",
           "MANIFEST_PATH", "MANIFEST_FORMAT", "LOCK_NAME", "LOCK_FORMAT", "PARTIAL_DIR", "FLAME_NOTICE", "OK", "MISSING",
           "WRONG_SIZE", "WRONG_HASH", "UNVERIFIED"]
