"""Folders of lossless PNG frames (``-o DIR/``): ``frame_000000.png``... plus ``frames.json`` holding
the provenance and the list of files written, written all or nothing; and reading them back.

Which folder a frames set may go into (:func:`frames_outputs`): a new or empty folder, or one that
holds only a previous artalk frames set, recognised by its ``frames.json`` listing the files it
wrote; exactly those files are replaced (the old frames beyond the new count are removed). A
folder with any other file is refused unless ``force``; even then only files a previous
``frames.json`` lists are replaced or removed, and a file of the user's that a frame would
overwrite (``frame_000009.png``, ``frames.json``) is refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.errors import FormatError, InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output, parse_json
from artalk_core.progress import OptionalProgress, report

FRAME_PATTERN: str = "frame_{:06d}.png"
FRAMES_META: str = "frames.json"
FRAMES_FILES_KEY: str = "files"
"""Key of ``frames.json`` listing the frame files the run wrote (the only files a later run replaces)."""
_FRAME_NAME = re.compile(r"frame_\d{6,}\.png")


def is_frames_dir(path: PathLike) -> bool:
    """True when ``path`` asks for a folder of PNG frames: it ends with a path separator or is an
    existing folder."""
    s = str(path)
    return s.endswith(("/", os.sep)) or Path(s).is_dir()


def _manifest_files(folder: Path) -> list[str] | None:
    """The frame files a previous artalk run wrote into ``folder``, as its ``frames.json`` lists
    them; None without a readable artalk manifest. Only plain ``frame_NNNNNN.png`` names count, so
    a crafted list cannot reach another file."""
    try:
        with open(folder / FRAMES_META, "rb") as f:
            manifest = parse_json(f.read(1 << 24), f"{folder / FRAMES_META} is not an artalk manifest")
    except (OSError, FormatError):
        return None
    names = manifest.get(FRAMES_FILES_KEY) if isinstance(manifest, dict) else None
    if not isinstance(names, list):
        return None
    return sorted({n for n in names if isinstance(n, str) and _FRAME_NAME.fullmatch(n)})


def frames_outputs(folder: PathLike, *, force: bool = False) -> list[Path]:
    """Check that a frames set may be written into ``folder`` (see the module docstring) and
    return the existing files the write would replace or remove: the files a previous artalk
    ``frames.json`` lists, and that manifest (for :func:`~artalk_core.fileio.check_not_input`).

    InputError (exit 2, before any work) for a folder holding other files (unless ``force``) or
    a file of the user's that a frame would overwrite; OutputError for a path that is a file.
    """
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write frames into {target}: it is a file")
    if not target.is_dir():
        return []
    try:
        present = set(os.listdir(target))
    except OSError as e:
        raise OutputError(f"cannot write frames into {target}: {e.strerror}") from e
    listed = _manifest_files(target)
    ours = set() if listed is None else {FRAMES_META, *listed} & present
    others = sorted(present - ours)
    if others and not force:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise InputError(f"-o {target}/ holds files that no previous artalk frames set made ({shown}): "
                         f"choose a new or empty folder, or pass --force to write beside them (they are kept)")
    clash = [n for n in others if n == FRAMES_META or _FRAME_NAME.fullmatch(n)]
    if clash:
        raise InputError(f"-o {target}/ holds {clash[0]}, which no previous artalk frames set made and a frame "
                         f"set would overwrite: choose a new or empty folder")
    return [target / n for n in sorted(ours)]


def write_frames(folder: PathLike, frames: Iterable[np.ndarray], *, meta: Mapping[str, str] | None = None,
                 progress: OptionalProgress = None, total: int = 0, force: bool = False) -> int:
    """Write ``frames`` ([H,W,3] uint8, consumed lazily) as ``frame_000000.png``... (lossless) and
    ``frames.json`` (the provenance ``meta`` and the list of files written, under ``files``) into
    ``folder`` (created if needed). Returns the count. Which folders are accepted, and what of
    their content is replaced: :func:`frames_outputs` (``force``).

    All or nothing: frames go to a hidden temporary folder beside the target and are moved in only
    when every frame was made; on any error the folder is left as it was.
    """
    import shutil
    import tempfile

    import av
    target = Path(folder)
    parent = target.parent if str(target.parent) else Path(".")
    frames_outputs(target, force=force)
    if not parent.is_dir():
        raise OutputError(f"cannot write frames into {target}: folder {parent} does not exist")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write frames into {target}: {e.strerror}") from e
    count = 0
    try:
        ctx: Any = None
        for frame in frames:
            arr = np.ascontiguousarray(frame)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                raise InputError(f"frames must be [H,W,3] uint8, got {arr.shape} {arr.dtype}")
            if ctx is None:
                ctx = av.CodecContext.create("png", "w")
                ctx.width, ctx.height, ctx.pix_fmt = arr.shape[1], arr.shape[0], "rgb24"
            data = b"".join(bytes(p) for p in ctx.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
            (tmp / FRAME_PATTERN.format(count)).write_bytes(data)
            count += 1
            report(progress, "frames", count, total)
        if count == 0:
            raise InputError(f"no frames to write to {target}")
        _commit(tmp, target, count, dict(meta or {}), force=force)
    except OSError as e:
        raise OutputError(f"cannot write frames into {target}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


def _commit(tmp: Path, target: Path, count: int, meta: dict[str, Any], *, force: bool) -> None:
    """Move ``count`` frames from ``tmp`` into ``target``. The folder is checked again (it may have
    changed while the frames were made), and the manifest always lists every artalk-made file
    present, so an interrupted move is cleaned up by the next run: first the union of the old and
    new files, then (once the new frames are in and the old ones removed) the new files only."""
    from artalk_core.interrupt import check_interrupted

    def manifest(names: list[str]) -> None:
        with atomic_output(target / FRAMES_META) as m:
            m.write_text(json.dumps({**meta, FRAMES_FILES_KEY: names}, indent=1, sort_keys=True) + "\n")

    old = [p.name for p in frames_outputs(target, force=force) if p.name != FRAMES_META]
    new = [FRAME_PATTERN.format(i) for i in range(count)]
    check_interrupted()
    target.mkdir(exist_ok=True)
    manifest(sorted(set(old) | set(new)))
    for name in new:
        os.replace(tmp / name, target / name)
    for name in sorted(set(old) - set(new)):
        (target / name).unlink(missing_ok=True)
    manifest(new)


def read_frame_png(path: PathLike) -> np.ndarray:
    """One PNG frame as [H,W,3] uint8."""
    import av

    p = Path(path)
    if not p.is_file():
        raise InputError(f"frame not found: {p}")
    try:
        with av.open(str(p)) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration) as e:
        raise FormatError(f"cannot read frame {p}: {e}") from None
