"""Loading FLAME heads: the reference ``FLAME_with_eye.pt``, the official ``generic_model.pkl``,
the bundled stand-in head, and FLAME shape (identity) vectors.

The official pickle holds chumpy arrays and a scipy sparse matrix. chumpy is an old, unmaintained
package, so it is never imported: a restricted unpickler maps its classes to a small stub that
keeps the pickled state (the array lives under ``x``) and refuses every class not needed to
rebuild numpy arrays and sparse matrices.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import EXP_DIM, FLAME_NAME, SHAPE_DIM
from artalk_core.errors import AssetError, InputError
from artalk_core.fileio import PathLike, sha256_file
from artalk_core.flame.model import NUM_JOINTS, FlameModel

FLAME_URL = "https://flame.is.tue.mpg.de"
LICENCE_HINT = (f"the FLAME head model needs the FLAME licence: register at {FLAME_URL} and download it "
                f"(ARTalk's {FLAME_NAME} or FLAME 2020/2023 generic_model.pkl)")
NUM_POSE_FEATURES: int = (NUM_JOINTS - 1) * 9  # 36


class _PickledChumpy:
    """Stand-in for ``chumpy.ch.Ch`` objects: keeps the pickled state so the array can be read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def array(self) -> np.ndarray:
        state = getattr(self, "_state", None)  # unset when unpickling did not call __init__
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict, slots) form
        if isinstance(state, dict) and "x" in state:
            x = state["x"]
            return _to_array(x)
        raise AssetError("the FLAME pickle holds a chumpy expression (not a plain array); "
                         "re-export it as plain numpy arrays")


_NUMPY_NAMES = {"_reconstruct", "scalar", "dtype", "ndarray", "_frombuffer"}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
_BUILTINS = {"object", "set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bytes",
             "bytearray", "str", "bool", "slice", "range"}


class _FlameUnpickler(pickle.Unpickler):
    """Only the classes a FLAME/SMPL-family model pickle needs; chumpy mapped to a stub."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _PickledChumpy
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


def _to_array(value: Any) -> np.ndarray:
    """A pickled value (numpy array, chumpy stub, scipy sparse, torch tensor) -> dense numpy array."""
    if isinstance(value, _PickledChumpy):
        return value.array()
    if hasattr(value, "toarray") and hasattr(value, "tocsr"):  # scipy sparse
        return np.asarray(value.toarray())
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _read_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return _FlameUnpickler(f, encoding="latin1").load()


def _read_torch(path: Path) -> Any:
    from artalk_core.fileio import load_torch

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


def model_from_dict(fm: Mapping[str, Any], *, source: str, sha256: str, is_standin: bool = False) -> FlameModel:
    """Validate a FLAME buffer dict (``f``, ``v_template``, ``shapedirs`` [V,3,>=400], ``posedirs``
    [V,3,36], ``J_regressor`` [5,V] dense or sparse, ``kintree_table`` [2,5], ``weights`` [V,5])
    and build the model; AssetError naming ``source`` when anything is missing or mis-shaped."""
    need = ("f", "v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
    missing = [k for k in need if k not in fm]
    if missing:
        raise AssetError(f"{source} is not a FLAME head file: missing {', '.join(missing)}; {LICENCE_HINT}")

    def bad(what: str) -> AssetError:
        return AssetError(f"{source} is not a usable FLAME head: {what}")

    try:
        arrays = {k: _to_array(fm[k]) for k in need}
    except AssetError:
        raise
    except Exception as e:
        raise bad(f"cannot read its arrays ({e})") from e
    v_template = arrays["v_template"].astype(np.float32)
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 4:
        raise bad(f"v_template must be [V,3], got {list(v_template.shape)}")
    v = v_template.shape[0]
    shapedirs = arrays["shapedirs"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (v, 3):
        raise bad(f"shapedirs must be [{v},3,400], got {list(shapedirs.shape)}")
    if shapedirs.shape[2] < SHAPE_DIM + EXP_DIM:
        raise bad(f"shapedirs has {shapedirs.shape[2]} blend shapes; FLAME needs {SHAPE_DIM} shape + "
                  f"{EXP_DIM} expression = {SHAPE_DIM + EXP_DIM}")
    shapedirs = shapedirs[:, :, : SHAPE_DIM + EXP_DIM].astype(np.float32)
    posedirs = arrays["posedirs"]
    if posedirs.shape == (v, 3, NUM_POSE_FEATURES):
        posedirs = posedirs.reshape(-1, NUM_POSE_FEATURES).T
    elif posedirs.shape != (NUM_POSE_FEATURES, v * 3):
        raise bad(f"posedirs must be [{v},3,{NUM_POSE_FEATURES}], got {list(posedirs.shape)}")
    j_regressor = arrays["J_regressor"].astype(np.float32)
    if j_regressor.shape != (NUM_JOINTS, v):
        raise bad(f"J_regressor must be [{NUM_JOINTS},{v}], got {list(j_regressor.shape)}")
    weights = arrays["weights"].astype(np.float32)
    if weights.shape != (v, NUM_JOINTS):
        raise bad(f"weights must be [{v},{NUM_JOINTS}], got {list(weights.shape)}")
    kintree = arrays["kintree_table"]
    if kintree.shape != (2, NUM_JOINTS):
        raise bad(f"kintree_table must be [2,{NUM_JOINTS}], got {list(kintree.shape)}")
    # The official pickle stores the root's parent as uint32 max; FLAME_with_eye.pt as -1.
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    if any(not (0 <= int(parents[i]) < i) for i in range(1, NUM_JOINTS)):
        raise bad(f"kintree_table parents {kintree[0].tolist()} are not a tree rooted at joint 0")
    faces = arrays["f"]
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise bad(f"faces f must be [F,3], got {list(faces.shape)}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= v:
        raise bad(f"faces index vertices outside 0..{v - 1}")
    for name, arr in (("v_template", v_template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                      ("J_regressor", j_regressor), ("weights", weights)):
        if not np.isfinite(arr).all():
            raise bad(f"{name} contains NaN or infinite values")
    return FlameModel(v_template=v_template, shapedirs=shapedirs, posedirs=np.ascontiguousarray(posedirs),
                      J_regressor=j_regressor, parents=parents, lbs_weights=weights,
                      faces=faces.astype(np.int32), is_standin=is_standin, source=source, sha256=sha256)


def load_flame(path: PathLike) -> FlameModel:
    """Load ``FLAME_with_eye.pt`` (reference layout, torch weights_only) or the official FLAME
    2020/2023 ``generic_model.pkl`` (no chumpy needed). AssetError if missing or malformed."""
    p = Path(path)
    if not p.exists():
        raise AssetError(f"FLAME head file not found: looked for {p.resolve()}; {LICENCE_HINT}")
    if p.is_dir():
        raise AssetError(f"FLAME head path {p} is a folder, not a file; {LICENCE_HINT}")
    data = _read_head_file(p)
    standin = bool(_flag(data.get("standin", False)))
    return model_from_dict(_head_dict(data), source=str(p), sha256=sha256_file(p), is_standin=standin)


def _flag(value: Any) -> bool:
    try:
        return bool(np.asarray(_to_array(value)).reshape(-1)[0])
    except Exception:
        return bool(value)


def resolve_flame(flame: PathLike | None = None, assets: PathLike | None = None, *,
                  allow_standin: bool = True) -> FlameModel:
    """The head to animate: ``flame`` if given (must exist), else ``<assets>/FLAME_with_eye.pt`` if
    present, else the bundled stand-in head (``is_standin``) when ``allow_standin``, else AssetError.

    ``assets`` defaults to ``$ARTALK_ASSETS`` or ``./assets`` (see :mod:`artalk_core.assets`).
    """
    if flame is not None:
        p = Path(flame)
        if not p.is_file():
            raise AssetError(f"FLAME head file not found: looked for {p.resolve()} (given explicitly); "
                             f"{LICENCE_HINT}")
        return load_flame(p)
    from artalk_core.assets import assets_dir

    candidate = assets_dir(assets) / FLAME_NAME
    if candidate.is_file():
        return load_flame(candidate)
    if allow_standin:
        from artalk_core.flame.standin import load_standin

        return load_standin()
    raise AssetError(f"FLAME head {FLAME_NAME} not found: looked for {candidate.resolve()}; {LICENCE_HINT}; "
                     f"or allow the bundled stand-in head")


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
            obj = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(obj, Mapping):
                obj = _single({k: v for k, v in obj.items() if isinstance(v, list)}, p)
            arr = np.asarray(obj, dtype=np.float64)
        elif suffix in (".txt", ".csv"):
            text = p.read_text(encoding="utf-8").replace(",", " ")
            arr = np.asarray([float(t) for t in text.split()], dtype=np.float64)
        else:
            from artalk_core.fileio import load_torch

            obj = load_torch(p, f"shape file {p}", error=InputError)
            if isinstance(obj, Mapping):
                obj = _single(obj, p)
            arr = _to_array(obj)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read shape file {p}: {type(e).__name__}: {e}") from e
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"shape file {p} does not hold numbers (dtype {arr.dtype})")
    if arr.size != SHAPE_DIM or not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1)):
        raise InputError(f"shape file {p} holds {list(arr.shape)}; a FLAME shape is [{SHAPE_DIM}] or [1,{SHAPE_DIM}]")
    arr = arr.reshape(SHAPE_DIM).astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"shape file {p} contains NaN or infinite values")
    return torch.from_numpy(arr)


def _single(items: Mapping[str, Any], path: Path) -> Any:
    if len(items) != 1:
        raise InputError(f"shape file {path} holds {len(items)} arrays ({', '.join(map(str, items))}); "
                         f"it must hold exactly one [{SHAPE_DIM}] vector")
    return next(iter(items.values()))
