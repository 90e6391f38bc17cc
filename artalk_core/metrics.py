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
another topology. Frames are compared a block at a time (float64 sums), so the length of a clip does
not matter. The files (vertex and motion clips, folders of them) are :mod:`artalk_core.eval`'s.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import FDD_SCALE, FLAME_VERTICES, METRIC_MASK_MAX_INDICES, METRICS_MM
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, input_file, parse_json

METRICS: tuple[str, ...] = ("LVE", "MHD", "FDD")
MASKS_PATH: Path = Path(__file__).resolve().parent / "data" / "metric_masks.json"
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
    """An index list as int64 [N]: whole numbers of any integer type, their range checked before the
    cast (a uint64 2**64 - 1 must not wrap to -1, the last vertex)."""
    problem = InputError(f"{where}: '{key}' must be a non-empty list of vertex indices (whole numbers >= 0)")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged nesting [[1], [1, 2]]
        raise problem from None
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise problem
    if arr.size > METRIC_MASK_MAX_INDICES:
        raise InputError(f"{where}: '{key}' has {arr.size} entries (at most {METRIC_MASK_MAX_INDICES})")
    low, high = int(arr.min()), int(arr.max())  # Python ints: no wrap-around
    if low < 0:
        raise InputError(f"{where}: '{key}' holds the vertex index {low}: indices are whole numbers >= 0")
    if high > np.iinfo(np.int64).max:
        raise InputError(f"{where}: '{key}' holds the vertex index {high}, out of range for any mesh")
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
    and ``upper`` (the format of ``artalk_core/data/metric_masks.json``); ``path`` may be a pipe
    (``-``, a FIFO, ``<(...)``), read once. Messages name it as given."""
    with input_file(path) as (p, _, label):
        if not p.is_file():
            problem = "is a folder" if p.is_dir() else "is not a regular file" if p.exists() else None
            raise InputError(f"masks file {label} {problem}" if problem else f"masks file not found: {label}")
        where = f"masks file {label}"
        try:
            with open(p, "rb") as f:
                is_zip = f.read(4) == b"PK\x03\x04"  # .npz by its content: a pipe has no telling name
            data = _npz_lists(p, where) if is_zip else parse_json(p.read_bytes(), f"{where} is not readable",
                                                                  error=InputError)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise InputError(f"{where} is not readable JSON or .npz: {e}") from None
    return _masks_from(data, where, None)


def _npz_lists(path: Path, where: str) -> dict[str, np.ndarray]:
    """``lip`` and ``upper`` of an .npz; each member's size read from its header before it is
    decompressed (a few KB of zip can inflate to gigabytes). Other members are not read."""
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in ("lip", "upper"):
            if key not in z.files:
                continue
            member = f"{key}.npy" if f"{key}.npy" in z.zip.namelist() else key
            with z.zip.open(member) as f:
                reader = readers.get(npy.read_magic(f))
                if reader is None:
                    raise ValueError(f"'{key}' is in an .npy version this artalk does not read")
                count = int(np.prod(reader(f)[0], dtype=object))
            if count > METRIC_MASK_MAX_INDICES:
                raise InputError(f"{where}: '{key}' has {count} entries (at most {METRIC_MASK_MAX_INDICES})")
            out[key] = z[key]
    return out


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
    check_vertices(p.shape[1], m, "vertices")
    sums = MetricSums(m)
    for start in range(0, p.shape[0], BLOCK_FRAMES):
        sums.add(p[start:start + BLOCK_FRAMES], g[start:start + BLOCK_FRAMES])
    return sums.result()


def check_vertices(v: int, masks: Masks, name: str) -> None:
    """InputError unless ``masks`` fit a mesh of ``v`` vertices (``name`` in the message)."""
    if masks.vertices is not None and v != masks.vertices:
        raise InputError(f"{name} has {v} vertices per frame; the metrics' lip and upper-face lists are for "
                         f"FLAME's {masks.vertices}: give --masks FILE with index lists for this mesh")
    top = int(max(masks.lip.max(), masks.upper.max()))
    if top >= v:
        raise InputError(f"{masks.source}: vertex index {top} is out of range for {name} ({v} vertices)")


__all__ = ["BLOCK_FRAMES", "MASKS_PATH", "METRICS", "Masks", "MetricSums", "check_vertices", "compute_metrics",
           "default_masks", "load_masks"]
