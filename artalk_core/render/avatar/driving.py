"""Per-frame driving of the avatar (GAGAVATAR.md §3): motion rows -> the 5023 expression-Gaussian
centres (FLAME at scale 5, forehead smoothing) and the frame's camera [R|T].

Reference quirks and what is done here instead:
* the reference negates motion channels 100 and 102 in place on the caller's tensor; here the
  same maths runs on a new tensor and the motion is never written;
* the reference's forehead smoothing state lives on the model and is never reset (it carries across
  clips and avatars); here it is an explicit :class:`ForeheadSmoother`, reset per clip by default
  (``reset()``; keep one object across clips to reproduce the reference).
"""

from __future__ import annotations

from typing import Any

from artalk_core.errors import AssetError, InputError

FLAME_SCALE: float = 5.0
"""The avatar's FLAME is evaluated in metres x 5 (the tracker's scale)."""
FOREHEAD_MOMENTUM: float = 0.98
"""upper <- 0.98 upper + 0.02 v[idx] from the second frame on."""
NUM_FLAME_VERTICES: int = 5023
FOREHEAD_INDICES: tuple[int, ...] = (
    2168, 2165, 3068, 2199, 2196, 3720, 2091, 2088, 3524, 625, 628, 3871, 705, 708, 2030, 667, 670, 3708,
    3706, 3729, 3721, 3773, 3789, 3735, 3732, 3786, 3876, 3878, 3913, 3899, 3872, 3874, 3864, 3865, 3158,
    3157, 336, 335, 3153, 3705, 2177, 2176, 3540, 671, 672, 3863, 2134, 16, 17, 2138, 2139, 2567, 2566,
    337, 338, 3154, 3712, 2178, 2179, 3495, 674, 673, 3868, 2135, 27, 18, 1429, 1430)
"""The 68 FLAME vertices of the forehead the reference smooths (GAGAvatar models.py)."""


class ForeheadSmoother:
    """Exponential smoothing of the 68 forehead vertices, frame after frame.

    The first frame after a reset is kept as is and becomes the state; every later frame's forehead
    is replaced by ``state = 0.98 state + 0.02 v[idx]``.
    """

    def __init__(self, indices: tuple[int, ...] = FOREHEAD_INDICES, momentum: float = FOREHEAD_MOMENTUM) -> None:
        self.indices = tuple(int(i) for i in indices)
        self.momentum = float(momentum)
        self._upper: Any = None
        self._index: Any = None

    def reset(self) -> None:
        """Forget the state: the next frame starts the smoothing afresh."""
        self._upper = None

    def __call__(self, points: Any) -> Any:
        """Points [B,V,3] (B frames in order) -> a smoothed copy [B,V,3]; the input is not written."""
        import torch

        out = points.clone()
        if self._index is None or self._index.device != points.device:
            self._index = torch.tensor(self.indices, dtype=torch.long, device=points.device)
        for b in range(out.shape[0]):
            v = out[b, self._index]
            if self._upper is None:
                self._upper = v.clone()
            else:
                self._upper = self._upper.to(v) * self.momentum + v * (1.0 - self.momentum)
                out[b, self._index] = self._upper
        return out


def check_flame(flame: Any) -> None:
    """AssetError unless ``flame`` is a real FLAME head with 5023 vertices (the avatar's expression
    Gaussians are bound to FLAME's vertex order; the stand-in head cannot drive it)."""
    if getattr(flame, "is_standin", False):
        raise AssetError("photoreal avatars need the real FLAME head (FLAME_with_eye.pt; its Gaussians are bound "
                         "to FLAME's 5023 vertices) and only the stand-in head was found: put FLAME_with_eye.pt "
                         "in the assets folder or pass --flame (FLAME licence: https://flame.is.tue.mpg.de)")
    if flame.num_vertices != NUM_FLAME_VERTICES:
        raise AssetError(f"photoreal avatars need a FLAME head with {NUM_FLAME_VERTICES} vertices; "
                         f"{flame.source} has {flame.num_vertices}")


def flame_points(flame: Any, motion: Any, shapecode: Any, *, scale: float = FLAME_SCALE) -> Any:
    """FLAME vertices [B,5023,3] x 5 of motion rows [B,106]: shape = the avatar's ``shapecode`` [300],
    expression = m[0:100], pose = [0,0,0 | jaw m[103:106] as given], eyes 0 (no global rotation: the
    head rotation moves the camera). InputError on NaN."""
    return flame.vertices(motion, shapecode, with_global=False) * scale


class Driver:
    """Motion rows -> (expression-Gaussian centres [B,5023,3], camera [R|T] [B,3,4]) for one avatar.

    ``flame``: a :class:`~artalk_core.flame.FlameModel`; ``shapecode`` [300] and
    ``transform_matrix`` [3,4] from the tracked entry. Frames must come in order; call
    :meth:`reset` between clips (done by the renderer for every clip).
    """

    def __init__(self, flame: Any, *, shapecode: Any, transform_matrix: Any, device: Any = None,
                 smoother: ForeheadSmoother | None = None, scale: float = FLAME_SCALE) -> None:
        import torch

        check_flame(flame)
        self.device = torch.device(device) if device is not None else flame.device
        self.flame = flame.to(self.device)
        self.shapecode = torch.as_tensor(shapecode, dtype=torch.float32).to(self.device)
        self.transform_matrix = torch.as_tensor(transform_matrix, dtype=torch.float32).to(self.device)
        self.smoother = smoother if smoother is not None else ForeheadSmoother()
        self.scale = float(scale)

    def reset(self) -> None:
        self.smoother.reset()

    def __call__(self, motion: Any) -> tuple[Any, Any]:
        """Motion rows [B,106] (tensor or array; not written) -> (points [B,5023,3], [R|T] [B,3,4])."""
        import numpy as np
        import torch

        from artalk_core.render.avatar.camera import frame_transform

        m = torch.as_tensor(np.asarray(motion) if not isinstance(motion, torch.Tensor) else motion)
        m = m.to(dtype=torch.float32, device=self.device)
        if m.ndim != 2 or m.shape[1] != 106:
            raise InputError(f"motion must be [T,106], got {list(m.shape)}")
        if not bool(torch.isfinite(m).all()):
            raise InputError("motion contains NaN or infinite values")
        # One frame at a time: the result then does not depend on how the motion is cut into blocks
        # (batched matmuls round differently), so a clip renders the same however it is streamed.
        points = torch.cat([flame_points(self.flame, m[i:i + 1], self.shapecode, scale=self.scale)
                            for i in range(m.shape[0])])
        points = self.smoother(points)
        return points, frame_transform(m[:, 100:103], self.transform_matrix)
