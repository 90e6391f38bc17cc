"""Evaluation metrics of talking-head motion on FLAME vertices, as ARTalk's training code computes them.

``calc_val_metrics`` of the reference (``train_code/core/models/modules/metrics.py``), on predicted and
ground-truth vertices [T, V, 3] in metres (V = 5023, FLAME):

- LVE (lip vertex error, mm): per frame the squared distance (mm^2, summed over xyz) of each lip vertex,
  the max over the lip vertices, the mean over frames, the square root.
- MHD (mean head distance, mm): the square root of the mean over frames and all vertices of the squared
  distance.
- FDD (upper-face dynamics deviation, x100): per upper-face vertex the standard deviation over time
  (n - 1) of x + y + z in mm, for each sequence; the mean over those vertices of |std_pred - std_gt|,
  times 100. It needs two frames at least.

The lip and upper-face index lists are the reference's (``artalk_core/data/metric_masks.json``), repeats
kept (they weigh the FDD mean twice and leave the LVE max unchanged); ``--masks`` gives others for
another topology. Inputs are vertex files (``render -o x.h5``) or motion files, whose vertices come from
FLAME as ``render`` computes them but, as the reference's evaluation does (``with_headpose=False``),
without the global head rotation unless ``head_pose``. Frames are read and compared a block at a time
(float64 sums), so the length of a clip does not matter.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import FDD_SCALE, FLAME_VERTICES, METRICS_MM
from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import PathLike, parse_json
from artalk_core.progress import OptionalProgress, report

METRICS: tuple[str, ...] = ("LVE", "MHD", "FDD")
MASKS_PATH: Path = Path(__file__).resolve().parent / "data" / "metric_masks.json"
CLIP_SUFFIXES: tuple[str, ...] = (".motion.safetensors", ".safetensors", ".h5", ".hdf5", ".pt", ".ndjson", ".jsonl")
"""Files a folder of clips is made of; a clip's name is its file name without the suffix."""
BLOCK_FRAMES = 64
"""Frames compared at once."""


@dataclass(frozen=True)
class Masks:
    """Vertex index lists: ``lip`` and ``upper`` int64 [N] (repeats kept); ``vertices``: the vertex count
    they were made for (None: any mesh their indices fit); ``source``: where they come from."""

    lip: np.ndarray
    upper: np.ndarray
    vertices: int | None
    source: str


def _index_list(value: Any, key: str, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" or (arr < 0).any():
        raise InputError(f"{where}: '{key}' must be a non-empty list of vertex indices (whole numbers >= 0)")
    return arr.astype(np.int64)


def _masks_from(data: Any, where: str, vertices: int | None) -> Masks:
    if not isinstance(data, dict) or "lip" not in data or "upper" not in data:
        raise InputError(f"{where}: expected the index lists 'lip' and 'upper' (a JSON object or an .npz)")
    return Masks(_index_list(data["lip"], "lip", where), _index_list(data["upper"], "upper", where), vertices, where)


@lru_cache(maxsize=1)
def default_masks() -> Masks:
    """The reference's lip and upper-face lists for FLAME's 5023 vertices (package data)."""
    data = json.loads(MASKS_PATH.read_text(encoding="utf-8"))
    return _masks_from(data, "the reference's FLAME lists", FLAME_VERTICES)


def load_masks(path: PathLike) -> Masks:
    """Index lists from a JSON file ``{"lip": [...], "upper": [...]}`` or an ``.npz`` with arrays ``lip``
    and ``upper`` (the format of ``artalk_core/data/metric_masks.json``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"masks file not found: {p}")
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                data: Any = {k: z[k] for k in z.files}
        else:
            data = parse_json(p.read_bytes(), f"masks file {p} is not readable", error=InputError)
    except (OSError, ValueError) as e:
        raise InputError(f"masks file {p} is not readable JSON or .npz: {e}") from None
    return _masks_from(data, f"masks file {p}", None)


class MetricSums:
    """LVE, MHD and FDD of a pair of vertex sequences fed a block of frames at a time (float64 sums).

    ``add(pred, gt)`` takes float [n, V, 3] blocks in metres; :meth:`result` gives the three metrics
    (FDD None below two frames).
    """

    def __init__(self, masks: Masks) -> None:
        self.masks = masks
        self.frames = 0
        self._lip_max = 0.0  # sum over frames of the max lip squared distance (mm^2)
        self._all_mean = 0.0  # sum over frames of the mean squared distance (mm^2)
        # per upper-face entry and sequence: sums of (u - u0) and its square, u = (x+y+z) mm, u0 = frame 0's
        self._shift: np.ndarray | None = None
        self._s1 = np.zeros((2, masks.upper.size))
        self._s2 = np.zeros((2, masks.upper.size))

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        p = np.asarray(pred, dtype=np.float64) * METRICS_MM
        g = np.asarray(gt, dtype=np.float64) * METRICS_MM
        d2 = ((p - g) ** 2).sum(axis=-1)  # [n, V] mm^2
        self._lip_max += float(d2[:, self.masks.lip].max(axis=1).sum())
        self._all_mean += float(d2.mean(axis=1).sum())
        u = np.stack([p[:, self.masks.upper].sum(axis=-1), g[:, self.masks.upper].sum(axis=-1)], axis=1)  # [n,2,U]
        if self._shift is None:  # shifted sums: the variance without the cancellation of raw sums
            self._shift = u[0].copy()
        du = u - self._shift
        self._s1 += du.sum(axis=0)
        self._s2 += (du ** 2).sum(axis=0)
        self.frames += p.shape[0]

    def result(self) -> dict[str, float | None]:
        n = self.frames
        if n == 0:
            raise InputError("no frames to compare")
        out: dict[str, float | None] = {"LVE": math.sqrt(self._lip_max / n), "MHD": math.sqrt(self._all_mean / n),
                                        "FDD": None}
        if n >= 2:
            var = np.maximum(self._s2 - self._s1 ** 2 / n, 0.0) / (n - 1)
            std = np.sqrt(var)  # [2, U]: pred, gt
            out["FDD"] = float(np.abs(std[0] - std[1]).mean()) * FDD_SCALE
        return out


def compute_metrics(pred: Any, gt: Any, masks: Masks | None = None) -> dict[str, float | None]:
    """LVE, MHD, FDD of vertices [T, V, 3] (metres; numpy or torch) against [T, V, 3]."""
    p, g = np.asarray(pred), np.asarray(gt)
    if p.ndim != 3 or p.shape != g.shape or p.shape[-1] != 3:
        raise InputError(f"vertices must be two [T, V, 3] arrays of one shape, got {list(p.shape)} and {list(g.shape)}")
    m = masks or default_masks()
    _check_vertices(p.shape[1], m, "vertices")
    sums = MetricSums(m)
    for start in range(0, p.shape[0], BLOCK_FRAMES):
        sums.add(p[start:start + BLOCK_FRAMES], g[start:start + BLOCK_FRAMES])
    return sums.result()


def _check_vertices(v: int, masks: Masks, name: str) -> None:
    if masks.vertices is not None and v != masks.vertices:
        raise InputError(f"{name} has {v} vertices per frame; the metrics' lip and upper-face lists are for "
                         f"FLAME's {masks.vertices}: give --masks FILE with index lists for this mesh")
    top = int(max(masks.lip.max(), masks.upper.max()))
    if top >= v:
        raise InputError(f"{masks.source}: vertex index {top} is out of range for {name} ({v} vertices)")


# ---- inputs --------------------------------------------------------------------------------------

@dataclass
class _Head:
    """What motion inputs need: the FLAME head, the shape, whether the head rotation is kept."""

    flame: PathLike | None
    shape: PathLike | None
    assets: PathLike | None
    head_pose: bool
    _model: Any = None
    _beta: Any = None

    def vertices(self, motion: np.ndarray) -> Iterator[np.ndarray]:
        if self._model is None:
            from artalk_core.flame import load_shape, resolve_flame

            self._model = resolve_flame(self.flame, self.assets, allow_standin=False)
            self._beta = load_shape(self.shape) if self.shape is not None else None
        return self._model.iter_vertices(motion, self._beta, with_global=self.head_pose)


def _kind(path: Path) -> str:
    """``vertices`` (an HDF5 vertices file) or ``motion`` (anything else: the motion reader says what is wrong)."""
    from artalk_core.formats import sniff_kind

    return "vertices" if sniff_kind(path) == "vertices" else "motion"  # InputError if missing


class _Clip:
    """One input file opened: ``frames``, ``kind`` (vertices or motion), and the frames as vertices
    [V, 3] through :meth:`iter_frames` (motion skinned by FLAME as they are read)."""

    def __init__(self, path: Path, kind: str, head: _Head, stack: contextlib.ExitStack) -> None:
        self.path, self.kind, self._head = path, kind, head
        if kind == "vertices":
            from artalk_core.formats.vertices import read_vertices

            self._verts = stack.enter_context(read_vertices(path))
            self.frames = self._verts.frames
        else:
            from artalk_core.formats.motion import MotionReader

            self._motion = stack.enter_context(MotionReader(path, label=str(path)))
            self.frames = self._motion.frames

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


def _folder_clips(folder: Path, what: str) -> dict[str, Path]:
    clips: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        name = _clip_name(p)
        if name is None or p.name.startswith(".") or not p.is_file():
            continue
        if name in clips:
            raise InputError(f"{what} folder {folder} has two files for clip '{name}': {clips[name].name} and {p.name}")
        clips[name] = p
    if not clips:
        raise InputError(f"{what} folder {folder} holds no vertex or motion files "
                         f"({', '.join(CLIP_SUFFIXES)})")
    return clips


def _pairs(pred: Path, gt: Path, notes: list[str]) -> list[tuple[str, Path, Path]]:
    if pred.is_dir() != gt.is_dir():
        raise InputError("PRED and GT must both be files or both be folders (of clips with matching names)")
    if not pred.is_dir():
        return [(_clip_name(pred) or pred.name, pred, gt)]
    p, g = _folder_clips(pred, "PRED"), _folder_clips(gt, "GT")
    common = sorted(set(p) & set(g))
    if not common:
        raise InputError(f"no clip names in common: PRED has {_names(p)}, GT has {_names(g)}")
    for side, mine in (("PRED", p), ("GT", g)):
        alone = sorted(set(mine) - set(common))
        if alone:
            notes.append(f"{len(alone)} {side} clip(s) without a partner, left out: {_names(dict.fromkeys(alone))}")
    return [(name, p[name], g[name]) for name in common]


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
    prefix (a note says so). InputError for unusable inputs, AssetError without a FLAME head for motion.
    """
    notes: list[str] = []
    m = masks if isinstance(masks, Masks) else (load_masks(masks) if masks is not None else default_masks())
    pairs = _pairs(Path(pred), Path(gt), notes)
    folders = Path(pred).is_dir()
    head = _Head(flame, shape, assets, head_pose)
    kinds = {path: _kind(path) for _, p, g in pairs for path in (p, g)}  # every input checked before any work
    if "motion" not in kinds.values() and (flame is not None or shape is not None or head_pose):
        raise InputError("--flame, --shape and --head-pose apply to motion inputs; vertex files already hold the mesh")
    if set(kinds.values()) == {"motion", "vertices"} and not head_pose:
        notes.append("vertex files hold the head rotation (as `render -o x.h5` writes them) but motion inputs are "
                     "compared without it, as the reference evaluates: pass --head-pose to keep it for motion")
    results: list[ClipResult] = []
    for i, (name, p, g) in enumerate(pairs):
        report(progress, "eval", i, len(pairs))
        res = _evaluate_pair(name, p, g, kinds, m, head)
        results.append(res)
        notes.extend(f"{name}: {n}" if folders else n for n in res.notes)
    report(progress, "eval", len(pairs), len(pairs))
    return EvalResult(metrics=_mean([r.metrics for r in results]), frames=sum(r.frames for r in results),
                      clips=results, folders=folders, notes=notes)


def _evaluate_pair(name: str, pred: Path, gt: Path, kinds: dict[Path, str], masks: Masks, head: _Head) -> ClipResult:
    with contextlib.ExitStack() as stack:
        a, b = _Clip(pred, kinds[pred], head, stack), _Clip(gt, kinds[gt], head, stack)
        # vertex counts from the files' headers, before any frame is read
        if a.kind == b.kind == "vertices":
            _check_pair(a._verts.num_vertices, b._verts.num_vertices, masks, a, b)
        for clip in (a, b):
            if clip.kind == "vertices":
                _check_vertices(clip._verts.num_vertices, masks, str(clip.path))
        n = min(a.frames, b.frames)
        notes = []
        if a.frames != b.frames:
            notes.append(f"PRED has {a.frames} frames and GT {b.frames}: compared the first {n}")
        if n == 0:
            raise InputError(f"{name}: no frames to compare (PRED has {a.frames}, GT {b.frames})")
        sums = MetricSums(masks)
        fa, fb = a.iter_frames(n), b.iter_frames(n)
        while sums.frames < n:
            pa = _block(fa, min(BLOCK_FRAMES, n - sums.frames))
            pb = _block(fb, pa.shape[0])
            if pb.shape[0] != pa.shape[0]:
                raise FormatError(f"{b.path} ended before its announced {b.frames} frames")
            if sums.frames == 0:
                _check_pair(pa.shape[1], pb.shape[1], masks, a, b)
            sums.add(pa, pb)
        out = sums.result()
        if out["FDD"] is None:
            notes.append("FDD needs at least 2 frames (a standard deviation over time): it is left out")
        return ClipResult(name, pred, gt, out, n, a.frames, b.frames, notes)


def _block(frames: Iterator[np.ndarray], n: int) -> np.ndarray:
    got = [f for _, f in zip(range(n), frames)]
    if not got:
        raise FormatError("a file ended before its announced frame count")
    return np.stack(got)


def _check_pair(va: int, vb: int, masks: Masks, a: _Clip, b: _Clip) -> None:
    if va != vb:
        raise InputError(f"PRED {a.path} has {va} vertices per frame but GT {b.path} has {vb}: not the same mesh")
    _check_vertices(va, masks, f"{a.path}")


def _mean(metrics: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in METRICS:
        vals = [v for m in metrics if (v := m[key]) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


__all__ = ["CLIP_SUFFIXES", "ClipResult", "EvalResult", "METRICS", "Masks", "MetricSums", "compute_metrics",
           "default_masks", "evaluate", "load_masks"]
