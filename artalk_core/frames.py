"""Folders of lossless PNG frames (``-o DIR/``): ``frame_000000.png``... plus ``frames.json`` holding
the provenance, written all or nothing; and reading them back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.errors import FormatError, InputError, OutputError
from artalk_core.fileio import PathLike
from artalk_core.progress import OptionalProgress, report

FRAME_PATTERN: str = "frame_{:06d}.png"
FRAMES_META: str = "frames.json"


def is_frames_dir(path: PathLike) -> bool:
    """True when ``path`` asks for a folder of PNG frames: it ends with a path separator or is an
    existing folder."""
    import os

    s = str(path)
    return s.endswith(("/", os.sep)) or Path(s).is_dir()


def write_frames(folder: PathLike, frames: Iterable[np.ndarray], *, meta: Mapping[str, str] | None = None,
                 progress: OptionalProgress = None, total: int = 0) -> int:
    """Write ``frames`` ([H,W,3] uint8, consumed lazily) as ``frame_000000.png``... (lossless) and the
    provenance as ``frames.json`` into ``folder`` (created if needed). Returns the count.

    All or nothing: frames go to a hidden temporary folder beside the target and are moved in only
    when every frame was made, replacing the folder's previous ``frame_*.png``; on any error the
    folder is left as it was.
    """
    import json
    import os
    import shutil
    import tempfile

    import av
    target = Path(folder)
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write frames into {target}: it is a file")
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
        (tmp / FRAMES_META).write_text(json.dumps(dict(meta or {}), indent=1, sort_keys=True) + "\n")
        target.mkdir(exist_ok=True)
        for old in target.glob("frame_*.png"):
            old.unlink()
        for name in sorted(os.listdir(tmp)):
            os.replace(tmp / name, target / name)
    except OSError as e:
        raise OutputError(f"cannot write frames into {target}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


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
