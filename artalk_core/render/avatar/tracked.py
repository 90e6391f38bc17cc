"""Tracked avatars: the reference ``tracked.pt`` (a dict of per-photo tracking results) and
single tracked-entry files with the same keys.

The reference saves numpy arrays with ``torch.save`` and therefore loads the file with full pickle
(``weights_only=False``), which runs any code a file carries. Here the file goes through torch's
weights-only unpickler with an allow-list widened by exactly what numpy arrays need (``_reconstruct``
under its numpy 1.x and 2.x module names, ``ndarray``, ``dtype`` and the dtype classes); anything else
in the pickle (``os.system``, ``eval``...) is refused before it can run.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import SHAPE_MAX_ABS
from artalk_core.errors import AssetError, FormatError, InputError
from artalk_core.fileio import PathLike

TRACKED_SHAPES: dict[str, tuple[int, ...]] = {
    "image": (3, 512, 512),
    "transform_matrix": (3, 4),
    "shapecode": (300,),
    "expcode": (100,),
    "posecode": (6,),
    "eyecode": (6,),
    "bbox": (4,),
}
"""The keys every tracked entry holds (GAGAVATAR.md §1.2) and their shapes; others (``vis_image``)
are ignored."""
ROTATION_TOLERANCE: float = 1e-3
"""How far R R^T of a tracked transform may be from the identity (the tracker's R is a rotation)."""


@dataclass(frozen=True)
class TrackedEntry:
    """One tracked photo (float32 numpy arrays).

    ``image`` [3,512,512] in [0,1] (the matted head crop), ``transform_matrix`` [3,4] PyTorch3D
    world->view [R|T] of the photo, ``shapecode`` [300] FLAME identity, ``expcode`` [100],
    ``posecode`` [6], ``eyecode`` [6], ``bbox`` [4] (the last four are unused by the renderer).
    """

    name: str
    image: np.ndarray
    transform_matrix: np.ndarray
    shapecode: np.ndarray
    expcode: np.ndarray
    posecode: np.ndarray
    eyecode: np.ndarray
    bbox: np.ndarray

    @property
    def sha256(self) -> str:
        """Hash of the arrays (key, shape, float32 bytes in a fixed key order): the cache key of the
        avatar's Gaussians. Independent of the entry's name and of the file it came from."""
        h = hashlib.sha256()
        for key, shape in TRACKED_SHAPES.items():
            arr = np.ascontiguousarray(getattr(self, key), dtype=np.float32)
            h.update(f"{key}:{'x'.join(map(str, shape))};".encode())
            h.update(arr.tobytes())
        return h.hexdigest()


def _allowed_globals() -> list[Any]:
    """What numpy arrays need beyond torch's own weights-only allow-list."""
    import importlib

    allowed: list[Any] = [np.ndarray, np.dtype]
    allowed += [type(np.dtype(c)) for c in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                            "b1")]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            fn = importlib.import_module(mod)._reconstruct
        except (ImportError, AttributeError):
            continue
        # Register the function under both module names: files from numpy 1.x name
        # numpy.core.multiarray, files from numpy 2 numpy._core.multiarray.
        allowed += [(fn, "numpy.core.multiarray._reconstruct"), (fn, "numpy._core.multiarray._reconstruct")]
        break
    return allowed


def _read(path: Path) -> Any:
    import pickle
    import warnings

    import torch

    try:
        with torch.serialization.safe_globals(_allowed_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).strip().splitlines()
        reason = next((line for line in reversed(detail) if line.strip() and "allowlisted" in line),
                      detail[-1] if detail else "")
        raise FormatError(f"{path} is not a tracked-avatar file this tool will load: its pickle asks for "
                          f"something other than tensors and numpy arrays ({reason.strip()})") from None
    except Exception as e:  # zip, EOF, struct errors on foreign data
        raise FormatError(f"{path} is not a tracked-avatar file (torch.save of a dict): "
                          f"{type(e).__name__}: {e}") from None


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def entry_from_dict(name: str, data: Mapping[str, Any], *, source: str = "") -> TrackedEntry:
    """Validate one entry (the keys of :data:`TRACKED_SHAPES`; numpy arrays or tensors).

    InputError naming the key and its shape on anything missing, mis-shaped, non-numeric or NaN.
    """
    where = f"tracked avatar '{name}'" + (f" in {source}" if source else "")
    missing = [k for k in TRACKED_SHAPES if k not in data]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)} (a tracked entry holds "
                         f"{', '.join(TRACKED_SHAPES)})")
    arrays: dict[str, np.ndarray] = {}
    for key, shape in TRACKED_SHAPES.items():
        try:
            arr = _array(data[key])
        except Exception as e:
            raise InputError(f"{where}: '{key}' is not an array ({type(data[key]).__name__}: {e})") from None
        if arr.dtype.kind not in "fiub":
            raise InputError(f"{where}: '{key}' does not hold numbers (dtype {arr.dtype})")
        if tuple(arr.shape) != shape:
            raise InputError(f"{where}: '{key}' has shape {list(arr.shape)}, expected {list(shape)}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise InputError(f"{where}: '{key}' contains NaN or infinite values")
        arrays[key] = arr
    _check_values(where, arrays)
    return TrackedEntry(name=name, **arrays)


def _check_values(where: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Values the renderer relies on: an image in [0, 1], a rotation in the transform, an identity
    within the bounds of a FLAME shape."""
    image = arrays["image"]
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{where}: 'image' values range over [{lo:g}, {hi:g}]; a tracked image is in [0, 1]")
    rot = arrays["transform_matrix"][:, :3].astype(np.float64)
    error = float(np.abs(rot @ rot.T - np.eye(3)).max())
    if error > ROTATION_TOLERANCE:
        raise InputError(f"{where}: 'transform_matrix' [R | T] does not hold a rotation R (R R^T differs from "
                         f"the identity by {error:.3g}): it is not a camera pose")
    shape = arrays["shapecode"]
    if float(np.abs(shape).max()) > SHAPE_MAX_ABS:
        raise InputError(f"{where}: 'shapecode' holds {float(np.abs(shape).max()):g}; FLAME shape values are at most "
                         f"{SHAPE_MAX_ABS:g} in size")


def _is_single_entry(data: Mapping[str, Any]) -> bool:
    return "image" in data and "transform_matrix" in data


class TrackedAvatars(Mapping[str, TrackedEntry]):
    """The avatars of a tracked file by name, in file order. Each entry is checked when it is first
    asked for (:func:`entry_from_dict`), so one malformed entry fails only the avatar that uses it;
    listing the names checks none."""

    def __init__(self, raw: Mapping[str, Any], source: str) -> None:
        self._raw = dict(raw)
        self._source = source
        self._checked: dict[str, TrackedEntry] = {}

    def __getitem__(self, name: str) -> TrackedEntry:
        if name not in self._checked:
            value = self._raw[name]  # KeyError for an unknown name, as a dict
            if not isinstance(value, Mapping):
                raise FormatError(f"{self._source}: entry {name!r} is a {type(value).__name__}, not a dict of arrays")
            self._checked[name] = entry_from_dict(name, value, source=self._source)
        return self._checked[name]

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def load_tracked(path: PathLike) -> TrackedAvatars:
    """All avatars of a ``tracked.pt`` (``{name: {image, transform_matrix, ...}}``) or of a single-entry
    file (the same keys at top level; its name is the file name), by name (see :class:`TrackedAvatars`).

    AssetError when the file is missing, FormatError when it is not a tracked file or its pickle
    asks for anything but tensors and numpy arrays; InputError on a malformed entry, when it is used.
    """
    p = Path(path)
    if not p.is_file():
        raise AssetError(f"tracked-avatar file not found: looked for {p.resolve()}")
    data = _read(p)
    if not isinstance(data, Mapping):
        raise FormatError(f"{p} holds a {type(data).__name__}, not a dict of tracked avatars")
    if _is_single_entry(data):
        return TrackedAvatars({p.name: data}, str(p))
    if not data:
        raise FormatError(f"{p} holds no tracked avatars")
    return TrackedAvatars({str(name): value for name, value in data.items()}, str(p))


def select_avatar(entries: Mapping[str, TrackedEntry], name: str, *, source: str = "tracked.pt") -> TrackedEntry:
    """The entry called ``name``; InputError listing the closest names on a typo."""
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"available: {', '.join(list(entries)[:10])}" + (
        ", ..." if len(entries) > 10 else "")
    raise InputError(f"unknown avatar '{name}' in {source} ({hint})")

