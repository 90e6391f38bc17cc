"""Loading FLAME heads: the reference ``FLAME_with_eye.pt``, the official ``generic_model.pkl``,
the bundled stand-in head, and FLAME shape (identity) vectors.

The official pickle holds chumpy arrays and a scipy sparse matrix. chumpy is an old, unmaintained
package, so it is never imported: a restricted unpickler maps its classes to a small stub that
keeps the pickled state (the array lives under ``x``) and refuses every class not needed to
rebuild numpy arrays and sparse matrices.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.assets.paths import find_asset
from artalk_core.constants import SHAPE_DIM, SHAPE_MAX_ABS
from artalk_core.errors import AssetError, InputError
from artalk_core.fileio import PathLike, load_torch, parse_json, sha256_file
from artalk_core.flame.buffers import LICENCE_HINT, PickledChumpy, model_from_dict, to_array
from artalk_core.flame.model import FlameModel
from artalk_core.flame.standin import load_standin
from artalk_core.stdio import given_name

_NUMPY_NAMES = {"_reconstruct", "scalar", "dtype", "ndarray", "_frombuffer"}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
_BUILTINS = {"object", "set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bytes",
             "bytearray", "str", "bool", "slice", "range"}


class _FlameUnpickler(pickle.Unpickler):
    """Only the classes a FLAME/SMPL-family model pickle needs; chumpy mapped to a stub."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return PickledChumpy
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return super().find_class(module, name)
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return super().find_class(module, name)
        if module == "_codecs" and name == "encode":
            return super().find_class(module, name)
        if (module == "numpy" or module.startswith("numpy.")) and name in _NUMPY_NAMES:
            if name in ("dtype", "ndarray"):
                return getattr(np, name)
            return _numpy_core_attr(name)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a FLAME pickle")


def _numpy_core_attr(name: str) -> Any:
    """``_reconstruct``/``scalar``/``_frombuffer`` from numpy's core (``numpy._core`` since numpy 2)."""
    import importlib

    for mod in ("numpy._core.multiarray", "numpy._core.numeric", "numpy.core.multiarray", "numpy.core.numeric"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise pickle.UnpicklingError(f"numpy has no {name}")


def _read_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return _FlameUnpickler(f, encoding="latin1").load()


def _read_torch(path: Path) -> Any:

    return load_torch(path, str(path))


def _read_head_file(path: Path) -> Mapping[str, Any]:
    """The raw dict of a head file: torch (zip or legacy) or plain pickle, whichever it is."""
    errors: list[str] = []
    readers = [_read_torch, _read_pickle] if zipfile.is_zipfile(path) else [_read_pickle, _read_torch]
    for reader in readers:
        try:
            data = reader(path)
        except Exception as e:  # both readers raise many different types on foreign data
            errors.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        if isinstance(data, Mapping):
            return data
        errors.append(f"holds a {type(data).__name__}, not a dict")
    raise AssetError(f"{path} is not a FLAME head file ({'; '.join(errors)}); {LICENCE_HINT}")


def _head_dict(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "flame_model" in data and isinstance(data["flame_model"], Mapping):
        return data["flame_model"]
    return data


def load_flame(path: PathLike) -> FlameModel:
    """Load ``FLAME_with_eye.pt`` (reference layout, torch weights_only) or the official FLAME
    2020/2023 ``generic_model.pkl`` (no chumpy needed). AssetError if missing or malformed."""
    p = Path(path)
    if not p.exists():
        raise AssetError(f"FLAME head file not found: looked for {p.resolve()}; {LICENCE_HINT}")
    if p.is_dir():
        raise AssetError(f"FLAME head path {p} is a folder, not a file; {LICENCE_HINT}")
    st = p.stat()
    return _load_flame_cached(str(p), str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_flame_cached(source: str, resolved: str, size: int, mtime_ns: int) -> FlameModel:
    """One read (and hash) of a head file per process, however many stages use it: ``animate``
    checks the head, then renders vertices and video with it; a batch worker, the app and the API
    render many clips. Keyed by the file's size and mtime, so a changed file is read again. The
    model is shared, as the stand-in is: use ``.to(device)`` for a copy."""
    p = Path(source)  # read as given, so messages name the file as the user wrote it
    data = _read_head_file(p)
    standin = bool(_flag(data.get("standin", False)))
    return model_from_dict(_head_dict(data), source=given_name(source), sha256=sha256_file(p), is_standin=standin)


def _flag(value: Any) -> bool:
    try:
        return bool(np.asarray(to_array(value)).reshape(-1)[0])
    except Exception:
        return bool(value)


def resolve_flame(flame: PathLike | None = None, assets: PathLike | None = None, *,
                  allow_standin: bool = True) -> FlameModel:
    """The head to animate: ``flame`` if given (must exist), else ``<assets>/FLAME_with_eye.pt`` if
    present, else the bundled stand-in head (``is_standin``) when ``allow_standin``, else AssetError.

    ``assets`` defaults to ``$ARTALK_ASSETS`` or ``./assets`` (see :mod:`artalk_core.assets`).
    """
    found = find_asset("--flame", flame, assets, required=not allow_standin)
    return load_standin() if found is None else load_flame(found)


def load_shape(path: PathLike) -> Any:
    """A FLAME shape (identity) vector from a file -> float32 tensor [300].

    Accepts a torch file holding a tensor (or a dict with exactly one tensor), ``.npy``, ``.npz``
    or ``.safetensors`` with one array, or ``.txt``/``.json`` numbers; [300] or [1,300]. InputError
    for a missing file, a wrong size or NaN.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"shape file not found: {p}")
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz", ".safetensors", ".json", ".txt", ".csv"):
        with open(p, "rb") as f:  # no telling extension (a <(...) pipe): .npy by its magic, else torch
            suffix = ".npy" if f.read(6) == b"\x93NUMPY" else suffix
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                arr = _single(dict(z), p)
        elif suffix == ".safetensors":
            from safetensors.numpy import load_file

            arr = _single(load_file(str(p)), p)
        elif suffix == ".json":
            obj = parse_json(p.read_bytes(), f"shape file {p} is not readable", error=InputError)
            if isinstance(obj, Mapping):
                obj = _single({k: v for k, v in obj.items() if isinstance(v, list)}, p)
            arr = np.asarray(obj, dtype=np.float64)
        elif suffix in (".txt", ".csv"):
            text = p.read_text(encoding="utf-8").replace(",", " ")
            arr = np.asarray([float(t) for t in text.split()], dtype=np.float64)
        else:

            obj = load_torch(p, f"shape file {p}", error=InputError, stored_only=True)
            if isinstance(obj, Mapping):
                obj = _single(obj, p)
            arr = to_array(obj)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read shape file {p}: {type(e).__name__}: {e}") from e
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"shape file {p} does not hold numbers (dtype {arr.dtype})")
    if arr.size != SHAPE_DIM or not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1)):
        raise InputError(f"shape file {p} holds {list(arr.shape)}; a FLAME shape is [{SHAPE_DIM}] or [1,{SHAPE_DIM}]")
    arr = arr.reshape(SHAPE_DIM).astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"shape file {p} contains NaN or infinite values")
    largest = float(np.abs(arr).max())
    if largest > SHAPE_MAX_ABS:  # before float32 (1e39 would turn into inf) and before any skinning
        raise InputError(f"shape file {p} holds {largest:g}; FLAME shape values are standard deviations, at most "
                         f"{SHAPE_MAX_ABS:g} in size (real heads are within about 5)")
    return torch.from_numpy(arr.astype(np.float32))


def _single(items: Mapping[str, Any], path: Path) -> Any:
    if len(items) != 1:
        raise InputError(f"shape file {path} holds {len(items)} arrays ({', '.join(map(str, items))}); "
                         f"it must hold exactly one [{SHAPE_DIM}] vector")
    return next(iter(items.values()))
