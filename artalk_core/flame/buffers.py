"""A FLAME buffer dict checked and turned into a :class:`FlameModel`: the one check shared by the
loaded heads (:mod:`artalk_core.flame.load`) and the bundled stand-in (:mod:`artalk_core.flame.standin`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from artalk_core.assets.paths import LICENCE_HINT
from artalk_core.constants import EXP_DIM, NUM_JOINTS, SHAPE_DIM
from artalk_core.errors import AssetError
from artalk_core.flame.model import FlameModel

NUM_POSE_FEATURES: int = (NUM_JOINTS - 1) * 9  # 36


class PickledChumpy:
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
            return to_array(x)
        raise AssetError("the FLAME pickle holds a chumpy expression (not a plain array); "
                         "re-export it as plain numpy arrays")


def to_array(value: Any) -> np.ndarray:
    """A pickled value (numpy array, chumpy stub, scipy sparse, torch tensor) -> dense numpy array."""
    if isinstance(value, PickledChumpy):
        return value.array()
    if hasattr(value, "toarray") and hasattr(value, "tocsr"):  # scipy sparse
        return np.asarray(value.toarray())
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


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
        arrays = {k: to_array(fm[k]) for k in need}
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


__all__ = ["LICENCE_HINT", "NUM_POSE_FEATURES", "PickledChumpy", "model_from_dict", "to_array"]
