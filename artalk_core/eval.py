"""`artalk eval`: ARTalk's metrics (:mod:`artalk_core.metrics`) of predicted clips against the ground truth.

Inputs are vertex files (``render -o x.h5``) or motion files, whose vertices come from FLAME as
``render`` computes them but, as the reference's evaluation does (``with_headpose=False``), without
the global head rotation unless ``head_pose``; or two folders of such clips, paired by name. Any
file may be a pipe (``-``, a FIFO, ``<(...)``: read once into a temp file). Every pair is checked
before anything is computed (see :func:`evaluate`); frames are then read a block at a time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.errors import AssetError, FormatError, InputError
from artalk_core.fileio import PathLike, input_file, is_stdio, is_stream_path, spooled
from artalk_core.metrics import (
    BLOCK_FRAMES,
    METRICS,
    Masks,
    MetricSums,
    check_vertices,
    compute_metrics,
    default_masks,
    load_masks,
)
from artalk_core.progress import OptionalProgress, report
from artalk_core.stdio import errors_as_given

CLIP_SUFFIXES: tuple[str, ...] = (".motion.safetensors", ".safetensors", ".h5", ".hdf5", ".pt", ".ndjson", ".jsonl")
"""Files a folder of clips is made of; a clip's name is its file name without the suffix."""

# ---- inputs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    """One input file: ``path`` to read (for a pipe, its temp copy) and ``label``, what the user gave."""

    path: Path
    label: str


@dataclass
class _Head:
    """What motion inputs need: the FLAME head, the shape, whether the head rotation is kept."""

    flame: PathLike | None
    shape: PathLike | None
    assets: PathLike | None
    head_pose: bool
    _model: Any = None
    _beta: Any = None

    def load(self, first: str) -> Any:
        """The FLAME model (loaded once); AssetError naming ``first``, a motion input, without one."""
        if self._model is None:
            from artalk_core.flame import load_shape, resolve_flame

            try:
                self._model = resolve_flame(self.flame, self.assets, allow_standin=False)
            except AssetError as e:
                if self.flame is not None:  # the head given is the problem: its message says why
                    raise
                raise AssetError(f"{first} is motion, whose vertices eval computes with the FLAME head (the "
                                 f"bundled stand-in head is not FLAME; or pass --flame FILE): {e}") from None
            self._beta = load_shape(self.shape) if self.shape is not None else None
        return self._model

    def vertices(self, motion: np.ndarray) -> Iterator[np.ndarray]:
        return self._model.iter_vertices(motion, self._beta, with_global=self.head_pose)


def _kind(path: Path) -> str:
    """``vertices`` (an HDF5 vertices file) or ``motion`` (anything else: the motion reader says what is wrong)."""
    from artalk_core.formats import sniff_kind

    return "vertices" if sniff_kind(path) == "vertices" else "motion"


@dataclass(frozen=True)
class _Info:
    """What an input holds, from its header: ``kind``, ``frames``, ``vertices`` per frame."""

    kind: str
    frames: int
    vertices: int


def _survey(src: _Source, kind: str, head: _Head) -> _Info:
    """Open an input to learn its frames and vertex count (a vertex file's header; motion is checked
    whole as it opens, its vertex count is the FLAME head's)."""
    if kind == "vertices":
        from artalk_core.formats.vertices import read_vertices

        with read_vertices(src.path) as f:
            return _Info(kind, f.frames, f.num_vertices)
    from artalk_core.formats.motion import MotionReader

    with MotionReader(src.path, label=src.label) as m:
        return _Info(kind, m.frames, int(head.load(src.label).num_vertices))


class _Clip:
    """One input file opened: ``frames``, and the frames as vertices [V, 3] through :meth:`iter_frames`
    (motion skinned by FLAME as they are read)."""

    def __init__(self, src: _Source, info: _Info, head: _Head, stack: contextlib.ExitStack) -> None:
        self.src, self.kind, self.frames, self._head = src, info.kind, info.frames, head
        if self.kind == "vertices":
            from artalk_core.formats.vertices import read_vertices

            self._verts = stack.enter_context(read_vertices(src.path))
        else:
            from artalk_core.formats.motion import MotionReader

            self._motion = stack.enter_context(MotionReader(src.path, label=src.label))

    def iter_frames(self, n: int) -> Iterator[np.ndarray]:
        """The first ``n`` frames as vertices [V, 3] float32 metres."""
        if self.kind == "vertices":
            for i, v in enumerate(self._verts):
                if i >= n:
                    return
                yield v
            return
        done = 0
        for block in self._motion.iter_blocks(1024):
            block = block[:n - done]
            yield from self._head.vertices(block)
            done += block.shape[0]
            if done >= n:
                return


@dataclass
class ClipResult:
    """The metrics of one pair: ``name``, the two files, ``frames`` compared, each file's frame count."""

    name: str
    pred: Path
    gt: Path
    metrics: dict[str, float | None]
    frames: int
    pred_frames: int
    gt_frames: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pred": str(self.pred), "gt": str(self.gt), "metrics": self.metrics,
                "frames": self.frames, "pred_frames": self.pred_frames, "gt_frames": self.gt_frames}


@dataclass
class EvalResult:
    """``metrics`` (one pair's, or the mean over clips), ``frames`` (compared, all clips), the ``clips``,
    ``notes`` (frame counts that differ, FDD undefined, names without a partner...) and whether the
    inputs were ``folders``."""

    metrics: dict[str, float | None]
    frames: int
    clips: list[ClipResult]
    folders: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": {"LVE", "MHD", "FDD"}, "frames"}``, plus ``"clips"`` (each clip's) for folders."""
        out: dict[str, Any] = {"metrics": self.metrics, "frames": self.frames}
        if self.folders:
            out["clips"] = [c.to_json() for c in self.clips]
        return out


def _clip_name(path: Path) -> str | None:
    name = path.name
    for suffix in CLIP_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


_FILE_TYPES = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _unusable(path: Path) -> str | None:
    """What keeps a file of a folder from being read as a clip (None: nothing). Nothing is opened
    but a regular file: a FIFO would block, ``/dev/zero`` never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ENOENT and path.is_symlink():
            return "is a broken symbolic link"
        return f"cannot be read ({e.strerror})"  # a symbolic link loop: "Too many levels of symbolic links"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if not stat.S_ISREG(mode):
        return f"is {_FILE_TYPES.get(stat.S_IFMT(mode), 'a special file')}, not a regular file"
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return None


def _listing(items: list[str], limit: int = 5) -> str:
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def _folder_clips(folder: Path, what: str) -> dict[str, _Source]:
    """The clips of a folder by name; InputError naming each clip file that cannot be read."""
    clips: dict[str, _Source] = {}
    problems: list[str] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise InputError(f"cannot list the {what} folder {folder}: {e.strerror}") from None
    for p in entries:
        name = _clip_name(p)
        if name is None or p.name.startswith("."):
            continue
        problem = _unusable(p)
        if problem is not None:
            problems.append(f"{p.name} {problem}")
        elif name in clips:
            raise InputError(f"{what} folder {folder} has two files for clip '{name}': {clips[name].path.name} "
                             f"and {p.name}")
        else:
            clips[name] = _Source(p, str(p))
    if problems:
        raise InputError(f"{what} folder {folder}: {_listing(problems)} (clips are read from regular files)")
    if not clips:
        raise InputError(f"{what} folder {folder} holds no vertex or motion files "
                         f"({', '.join(CLIP_SUFFIXES)})")
    return clips


def _file_source(path: PathLike, what: str, stack: contextlib.ExitStack) -> _Source:
    """PRED or GT as one file: a pipe (``-``, a FIFO, ``<(...)``) read once into a temp file."""
    if is_stdio(path) or is_stream_path(path):
        tmp, _, label = stack.enter_context(input_file(path))
        return _Source(tmp, label)
    p = Path(path)
    problem = _unusable(p) if p.exists() or p.is_symlink() else "not found"
    if problem is not None:
        raise InputError(f"{what} {p} {problem}")
    return _Source(p, str(p))


def _pairs(pred: PathLike, gt: PathLike, notes: list[str],
           stack: contextlib.ExitStack) -> tuple[list[tuple[str, _Source, _Source]], bool]:
    """(the pairs of clips to compare, whether PRED and GT are folders)."""
    if is_stdio(pred) and is_stdio(gt):
        raise InputError("PRED and GT cannot both be - (stdin holds one file)")
    folders = Path(pred).is_dir(), Path(gt).is_dir()
    if folders[0] != folders[1]:
        raise InputError("PRED and GT must both be files or both be folders (of clips with matching names)")
    if not folders[0]:
        a, b = _file_source(pred, "PRED", stack), _file_source(gt, "GT", stack)
        return [(_clip_name(Path(a.label)) or Path(a.label).name, a, b)], False
    p, g = _folder_clips(Path(pred), "PRED"), _folder_clips(Path(gt), "GT")
    common = sorted(set(p) & set(g))
    if not common:
        raise InputError(f"no clip names in common: PRED has {_names(p)}, GT has {_names(g)}")
    for side, mine in (("PRED", p), ("GT", g)):
        alone = sorted(set(mine) - set(common))
        if alone:
            notes.append(f"{len(alone)} {side} clip(s) without a partner, left out: {_names(dict.fromkeys(alone))}")
    return [(name, p[name], g[name]) for name in common], True


def _names(clips: dict[str, Any]) -> str:
    names = list(clips)
    return ", ".join(names[:5]) + (f" ... (+{len(names) - 5})" if len(names) > 5 else "")


def evaluate(pred: PathLike, gt: PathLike, *, masks: PathLike | Masks | None = None, flame: PathLike | None = None,
             shape: PathLike | None = None, assets: PathLike | None = None, head_pose: bool = False,
             progress: OptionalProgress = None) -> EvalResult:
    """LVE, MHD and FDD of ``pred`` against ``gt``: two vertex/motion files, or two folders of clips
    paired by name (the result's metrics are then the mean over clips, FDD over the clips that have it).

    Motion inputs are turned into FLAME vertices (``flame`` / ``shape`` / ``assets`` as ``render``; the
    head rotation left out unless ``head_pose``). Frame counts that differ are compared over the common
    prefix (a note says so). Any input may be a pipe (``-``, a FIFO, ``<(...)``: read once).

    Every pair is checked before anything is computed: each file's kind, frame and vertex count (a
    vertex file's header; a motion file whole, as it opens), the FLAME head for motion, the two
    vertex counts and the masks. One unusable clip fails the run there (InputError naming each bad
    clip; AssetError without a FLAME head for motion); a bad frame found while computing (NaN
    vertices) fails it too, naming the file and frame: no partial table.
    """
    notes: list[str] = []
    with errors_as_given(), contextlib.ExitStack() as stack:
        m = masks if isinstance(masks, Masks) else (load_masks(masks) if masks is not None else default_masks())
        pairs, folders = _pairs(pred, gt, notes, stack)
        head = _Head(spooled(stack, flame), spooled(stack, shape), assets, head_pose)
        kinds = {s.path: _kind(s.path) for _, a, b in pairs for s in (a, b)}
        if "motion" not in kinds.values() and (flame is not None or shape is not None or head_pose):
            raise InputError("--flame, --shape and --head-pose apply to motion inputs; vertex files already hold "
                             "the mesh")
        first_motion = next((s.label for _, a, b in pairs for s in (a, b) if kinds[s.path] == "motion"), None)
        if first_motion is not None:
            head.load(first_motion)  # before any work: no FLAME head, one error
        if set(kinds.values()) == {"motion", "vertices"} and not head_pose:
            notes.append("vertex files hold the head rotation (as `render -o x.h5` writes them) but motion inputs "
                         "are compared without it, as the reference evaluates: pass --head-pose to keep it for motion")
        infos = _check_pairs(pairs, kinds, m, head, folders)
        results: list[ClipResult] = []
        for i, (name, p, g) in enumerate(pairs):
            report(progress, "eval", i, len(pairs))
            res = _evaluate_pair(name, (p, infos[p.path]), (g, infos[g.path]), m, head)
            results.append(res)
            notes.extend(f"{name}: {n}" if folders else n for n in res.notes)
        report(progress, "eval", len(pairs), len(pairs))
    return EvalResult(metrics=_mean([r.metrics for r in results]), frames=sum(r.frames for r in results),
                      clips=results, folders=folders, notes=notes)


def _check_pairs(pairs: list[tuple[str, _Source, _Source]], kinds: dict[Path, str], masks: Masks, head: _Head,
                 folders: bool) -> dict[Path, _Info]:
    """Each input's frames and vertex count, every pair checked (vertex counts alike and fitting the
    masks, a frame to compare): InputError for the first problem of two files, for every problem
    of two folders (each named by its clip)."""
    infos: dict[Path, _Info] = {}
    problems: list[str] = []
    for name, a, b in pairs:
        try:
            ia, ib = (infos.setdefault(s.path, _survey(s, kinds[s.path], head)) for s in (a, b))
            if ia.vertices != ib.vertices:
                raise InputError(f"PRED {a.label} has {ia.vertices} vertices per frame but GT {b.label} has "
                                 f"{ib.vertices}: not the same mesh")
            check_vertices(ia.vertices, masks, a.label)
            if min(ia.frames, ib.frames) == 0:
                raise InputError(f"no frames to compare (PRED has {ia.frames}, GT {ib.frames})")
        except InputError as e:
            if not folders:
                raise
            problems.append(f"{name}: {e}")
    if problems:
        raise InputError(f"{len(problems)} of {len(pairs)} clips cannot be compared (nothing was computed): "
                         f"{_listing(problems, 3)}")
    return infos


def _evaluate_pair(name: str, pred: tuple[_Source, _Info], gt: tuple[_Source, _Info], masks: Masks,
                   head: _Head) -> ClipResult:
    with contextlib.ExitStack() as stack:
        a, b = _Clip(*pred, head, stack), _Clip(*gt, head, stack)
        n = min(a.frames, b.frames)
        notes = []
        if a.frames != b.frames:
            notes.append(f"PRED has {a.frames} frames and GT {b.frames}: compared the first {n}")
        sums = MetricSums(masks)
        fa, fb = a.iter_frames(n), b.iter_frames(n)
        while sums.frames < n:
            pa = _block(fa, min(BLOCK_FRAMES, n - sums.frames), a.src)
            sums.add(pa, _block(fb, pa.shape[0], b.src))
        out = sums.result()
        if out["FDD"] is None:
            notes.append("FDD needs at least 2 frames (a standard deviation over time): it is left out")
        return ClipResult(name, Path(a.src.label), Path(b.src.label), out, n, a.frames, b.frames, notes)


def _block(frames: Iterator[np.ndarray], n: int, src: _Source) -> np.ndarray:
    got = [f for _, f in zip(range(n), frames)]
    if len(got) < n:
        raise FormatError(f"{src.label} ended before its announced frame count")
    return np.stack(got)


def _mean(metrics: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in METRICS:
        vals = [v for m in metrics if (v := m[key]) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


__all__ = ["CLIP_SUFFIXES", "ClipResult", "EvalResult", "METRICS", "Masks", "MetricSums", "compute_metrics",
           "default_masks", "evaluate", "load_masks"]
