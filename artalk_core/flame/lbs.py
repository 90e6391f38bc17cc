"""FLAME linear blend skinning as pure tensor functions (no state, no file IO).

The maths is the standard SMPL/FLAME skinning: blend shapes, pose correctives, a rigid transform
chain over the kinematic tree, and per-vertex weights. Every function works on a batch ``B``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from artalk_core.constants import EXP_DIM, EXP_SLICE, GLOBAL_ROT_SLICE, JAW_SLICE, MOTION_DIM, NUM_JOINTS

__all__ = ["NUM_JOINTS", "batch_rodrigues", "full_pose", "blend_betas", "rigid_transforms", "lbs",
           "motion_to_vertices"]


def batch_rodrigues(rot_vecs: Tensor) -> Tensor:
    """Axis-angle [N,3] -> rotation matrices [N,3,3].

    The angle is ``norm(r + 1e-8)`` exactly as SMPL/FLAME compute it, so a zero vector gives the
    identity without a division by zero and results match the reference to float noise.
    """
    n = rot_vecs.shape[0]
    dtype, device = rot_vecs.dtype, rot_vecs.device
    angle = torch.norm(rot_vecs + 1e-8, dim=1, keepdim=True)  # [N,1]
    axis = rot_vecs / angle
    cos = torch.cos(angle).unsqueeze(1)  # [N,1,1]
    sin = torch.sin(angle).unsqueeze(1)
    rx, ry, rz = torch.split(axis, 1, dim=1)
    zeros = torch.zeros((n, 1), dtype=dtype, device=device)
    skew = torch.cat([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(n, 3, 3)
    eye = torch.eye(3, dtype=dtype, device=device).unsqueeze(0)
    return eye + sin * skew + (1.0 - cos) * torch.bmm(skew, skew)


def full_pose(motion: Tensor, *, with_global: bool = True) -> Tensor:
    """Motion [B,106] -> FLAME full pose [B,15] = [global, neck 0, jaw, eyes 0 (6)].

    ``with_global=False`` treats the global rotation channels 100:103 as zero.
    """
    b = motion.shape[0]
    zeros3 = motion.new_zeros((b, 3))
    glob = motion[:, GLOBAL_ROT_SLICE] if with_global else zeros3
    return torch.cat([glob, zeros3, motion[:, JAW_SLICE], motion.new_zeros((b, 6))], dim=1)


def blend_betas(motion: Tensor, shape: Tensor | None, shape_dim: int) -> Tensor:
    """Betas [B, shape_dim + 100] = cat[shape (zeros if None), motion expression 0:100]."""
    b = motion.shape[0]
    if shape is None:
        shp = motion.new_zeros((b, shape_dim))
    else:
        shp = shape.reshape(1, shape_dim).to(motion).expand(b, shape_dim)
    return torch.cat([shp, motion[:, EXP_SLICE]], dim=1)


def rigid_transforms(rot_mats: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Chain local rotations over the kinematic tree.

    ``rot_mats`` [B,J,3,3], ``joints`` [B,J,3] rest joints, ``parents`` [J] (root -> -1, each
    parent index smaller than its child). Returns posed joints [B,J,3] and the skinning transforms
    [B,J,4,4] that map rest-pose points (relative transforms: rest joint offset removed).
    """
    b, j = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.zeros((b, j, 4, 4), dtype=rot_mats.dtype, device=rot_mats.device)
    local[:, :, :3, :3] = rot_mats
    local[:, :, :3, 3] = rel
    local[:, :, 3, 3] = 1.0
    chain = [local[:, 0]]
    for i in range(1, j):
        chain.append(torch.matmul(chain[int(parents[i])], local[:, i]))
    world = torch.stack(chain, dim=1)  # [B,J,4,4]
    posed_joints = world[:, :, :3, 3]
    # Subtract the transformed rest joint so the transform applies to rest-pose coordinates.
    shift = torch.matmul(world[:, :, :3, :3], joints.unsqueeze(-1)).squeeze(-1)
    skin = world.clone()
    skin[:, :, :3, 3] = world[:, :, :3, 3] - shift
    return posed_joints, skin


def lbs(betas: Tensor, pose: Tensor, v_template: Tensor, shapedirs: Tensor | None, posedirs: Tensor,
        j_regressor: Tensor, parents: Tensor, lbs_weights: Tensor) -> Tensor:
    """Skinned vertices [B,V,3].

    ``betas`` [B,K] (K <= shapedirs' last dim), ``pose`` [B,J*3] axis-angle, ``v_template`` [V,3],
    ``shapedirs`` [V,3,K] (None: no blend shapes, e.g. the stand-in head), ``posedirs``
    [(J-1)*9, V*3], ``j_regressor`` [J,V], ``parents`` [J], ``lbs_weights`` [V,J].
    """
    b = betas.shape[0]
    v = v_template.shape[0]
    j = j_regressor.shape[0]
    if shapedirs is None:
        v_shaped = v_template.unsqueeze(0).expand(b, v, 3)
    else:
        v_shaped = v_template + torch.einsum("bl,mkl->bmk", betas, shapedirs[:, :, : betas.shape[1]])
    joints = torch.einsum("bik,ji->bjk", v_shaped, j_regressor)  # [B,J,3]
    rot_mats = batch_rodrigues(pose.reshape(-1, 3)).view(b, j, 3, 3)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rot_mats[:, 1:] - eye).reshape(b, -1)  # [B,(J-1)*9]
    v_posed = v_shaped + torch.matmul(pose_feature, posedirs).view(b, v, 3)
    _, transforms = rigid_transforms(rot_mats, joints, parents)
    per_vertex = torch.matmul(lbs_weights, transforms.view(b, j, 16)).view(b, v, 4, 4)
    return (torch.matmul(per_vertex[:, :, :3, :3], v_posed.unsqueeze(-1)).squeeze(-1)
            + per_vertex[:, :, :3, 3])


def motion_to_vertices(motion: Tensor, shape: Tensor | None, v_template: Tensor, shapedirs: Tensor | None,
                       posedirs: Tensor, j_regressor: Tensor, parents: Tensor, lbs_weights: Tensor,
                       *, with_global: bool = True, shape_dim: int = 300) -> Tensor:
    """Motion [B,106] (+ shape [shape_dim] or None) -> vertices [B,V,3] with FLAME's pose layout."""
    if motion.shape[-1] != MOTION_DIM:
        raise ValueError(f"motion must have {MOTION_DIM} channels, got {motion.shape[-1]}")
    betas = blend_betas(motion, shape, shape_dim)
    pose = full_pose(motion, with_global=with_global)
    assert betas.shape[1] == shape_dim + EXP_DIM
    return lbs(betas, pose, v_template, shapedirs, posedirs, j_regressor, parents, lbs_weights)
