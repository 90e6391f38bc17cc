"""The FLAME head model: buffers plus motion -> vertices, batched for bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from artalk_core.constants import MOTION_DIM, SHAPE_DIM
from artalk_core.errors import InputError

DEFAULT_BATCH: int = 64
"""Frames skinned at once: per frame the skinning holds about V*16 floats of transforms."""


class FlameModel:
    """FLAME buffers (torch float32 on one device) and skinning of motion [T,106].

    Attributes: ``v_template`` [V,3]; ``shapedirs`` [V,3,400] (300 shape + 100 expression);
    ``posedirs`` [36, V*3]; ``J_regressor`` [5,V] dense; ``parents`` [5] long (root -> -1);
    ``lbs_weights`` [V,5]; ``faces`` np.int32 [F,3]; ``is_standin``; ``source`` (file path or
    ``"stand-in"``); ``sha256`` (of the file, or of the stand-in definition).
    """

    def __init__(self, *, v_template: Any, shapedirs: Any, posedirs: Any, J_regressor: Any, parents: Any,
                 lbs_weights: Any, faces: np.ndarray, is_standin: bool = False, source: str = "",
                 sha256: str = "") -> None:
        import torch

        f32 = torch.float32
        self.v_template = torch.as_tensor(v_template, dtype=f32)
        self.shapedirs = torch.as_tensor(shapedirs, dtype=f32)
        self.posedirs = torch.as_tensor(posedirs, dtype=f32)
        self.J_regressor = torch.as_tensor(J_regressor, dtype=f32)
        self.parents = torch.as_tensor(parents, dtype=torch.long)
        self.lbs_weights = torch.as_tensor(lbs_weights, dtype=f32)
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)
        self.is_standin = bool(is_standin)
        self.source = str(source)
        self.sha256 = str(sha256)
        # All-zero blend shapes (the stand-in head) are skipped instead of multiplied.
        self._blend = bool(torch.any(self.shapedirs != 0))

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def device(self) -> Any:
        return self.v_template.device

    def __repr__(self) -> str:
        kind = "stand-in" if self.is_standin else "FLAME"
        return f"FlameModel({kind}, V={self.num_vertices}, F={self.num_faces}, source={self.source!r})"

    def to(self, device: Any) -> FlameModel:
        """A copy whose tensors live on ``device`` (faces stay a numpy array)."""
        out = FlameModel.__new__(FlameModel)
        out.__dict__.update(self.__dict__)
        for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights"):
            setattr(out, name, getattr(self, name).to(device))
        return out

    def _check_motion(self, motion: Any) -> Any:
        import torch

        m = torch.as_tensor(np.asarray(motion) if not isinstance(motion, torch.Tensor) else motion)
        if m.ndim != 2 or m.shape[1] != MOTION_DIM:
            raise InputError(f"motion must be [T,{MOTION_DIM}], got {list(m.shape)}")
        if m.shape[0] == 0:
            raise InputError("motion has no frames")
        return m

    def _check_shape(self, shape: Any) -> Any:
        import torch

        if shape is None:
            return None
        s = torch.as_tensor(np.asarray(shape) if not isinstance(shape, torch.Tensor) else shape)
        if s.numel() != SHAPE_DIM or (s.ndim == 2 and s.shape[0] != 1) or s.ndim > 2:
            raise InputError(f"a FLAME shape must be [{SHAPE_DIM}] (or [1,{SHAPE_DIM}]), got {list(s.shape)}")
        s = s.reshape(SHAPE_DIM).to(dtype=torch.float32, device=self.device)
        if not bool(torch.isfinite(s).all()):
            raise InputError("the FLAME shape vector contains NaN or infinite values")
        return s

    def _skin(self, block: Any, shape: Any, with_global: bool) -> Any:
        import torch

        from artalk_core.flame import lbs as _lbs

        block = block.to(dtype=self.v_template.dtype, device=self.device)
        if not bool(torch.isfinite(block).all()):
            raise InputError("motion contains NaN or infinite values")
        return _lbs.motion_to_vertices(
            block, shape, self.v_template, self.shapedirs if self._blend else None, self.posedirs,
            self.J_regressor, self.parents, self.lbs_weights, with_global=with_global, shape_dim=SHAPE_DIM)

    def vertices(self, motion: Any, shape: Any = None, *, with_global: bool = True,
                 batch: int = 256) -> Any:
        """Vertices [T,V,3] float32 (on the model's device) of motion [T,106].

        ``shape`` [300] FLAME identity (None: the template's, zeros). ``with_global=False``
        ignores the global rotation channels 100:103. Skinned ``batch`` frames at a time.
        """
        import torch

        m = self._check_motion(motion)
        s = self._check_shape(shape)
        out = torch.empty((m.shape[0], self.num_vertices, 3), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            for start in range(0, m.shape[0], max(1, int(batch))):
                stop = min(start + max(1, int(batch)), m.shape[0])
                out[start:stop] = self._skin(m[start:stop], s, with_global)
        return out

    def iter_vertices(self, motion: Any, shape: Any = None, *, with_global: bool = True,
                      batch: int = DEFAULT_BATCH) -> Iterator[np.ndarray]:
        """Yield one float32 numpy [V,3] per motion frame, skinning ``batch`` frames at a time.

        Memory stays bounded by ``batch`` whatever the length of ``motion`` [T,106]; frames are
        computed lazily as the iterator is consumed.
        """
        m = self._check_motion(motion)
        s = self._check_shape(shape)
        # Validate now (not at the first next()) so bad input fails where the call is made.
        return self._iter_blocks(m, s, with_global, max(1, int(batch)))

    def _iter_blocks(self, m: Any, s: Any, with_global: bool, step: int) -> Iterator[np.ndarray]:
        import torch

        for start in range(0, m.shape[0], step):
            with torch.no_grad():
                block = self._skin(m[start:start + step], s, with_global)
            arr = block.detach().to("cpu").numpy().astype(np.float32, copy=False)
            yield from arr
