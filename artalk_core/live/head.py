"""The head a live page draws: the glTF ``artalk export`` writes, in its rest pose, for a browser to animate.

The page (:mod:`artalk_web.live`) draws the head with three.js from this ``.glb`` and applies each
motion frame as it arrives, mapped exactly as :func:`artalk_core.export.frame_keys` maps it
(morph weights = expression coefficients and the pose correctives' R - I, the root and jaw
rotations as quaternions, and on the real FLAME head the joint translations that follow the
expression). What the page needs for that mapping beyond the glTF itself is in
``asset.extras.live_rig``: the rest joints J(0) [5,3], the parents [5] and, when expressions move
the joints, ``joint_exp`` [5,3,100] (J_regressor . expression blend shapes; absent otherwise).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import FPS, MOTION_DIM
from artalk_core.fileio import PathLike, provenance


def live_rig(rig: Any) -> dict[str, Any]:
    """The mapping data of ``asset.extras.live_rig`` (see the module docstring)."""
    return {"joints": rig.joints.tolist(), "parents": list(rig.parents),
            "joint_exp": rig.joint_exp.tolist() if rig.moving_joints else []}


def head_glb(*, flame: PathLike | None = None, assets: PathLike | None = None) -> bytes:
    """The ``.glb`` of the head (``flame``, else ``<assets>/FLAME_with_eye.pt``, else the stand-in)
    with one frame at rest: the mesh, its 136 morph targets and 5 joints as ``artalk export`` writes
    them, plus ``asset.extras.live_rig``. Its bytes, built in a temporary file."""
    from artalk_core.export import JOINT_NAMES, Rig, build_document, frame_keys
    from artalk_core.flame import resolve_flame
    from artalk_core.formats.gltf import FORMAT_NAME, FORMAT_VERSION, write_gltf

    head = resolve_flame(flame, assets, allow_standin=True)
    rig = Rig.from_head(head)
    meta: dict[str, Any] = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        **provenance("artalk serve", options={"rest_pose": True}, inputs={"head": head.sha256}),
        "motion_sha256": "", "head": "stand-in" if head.is_standin else "FLAME",
        "head_is_standin": bool(head.is_standin), "fps": FPS, "frames": 1, "joints": list(JOINT_NAMES),
        "morph_weights": "exp_00..exp_99 = motion[0:100]; pose_<joint>_<r><c> = (R_joint - I)[r][c]",
        "live_rig": live_rig(rig),
    }
    keys = frame_keys(rig, np.zeros((1, MOTION_DIM), np.float32))
    builder, fill = build_document(rig, 1, FPS, iter([keys]), meta=meta)
    with tempfile.TemporaryDirectory(prefix="artalk-head-") as tmp:
        path = Path(tmp) / "head.glb"
        write_gltf(path, builder, fill)
        return path.read_bytes()


__all__ = ["head_glb", "live_rig"]
