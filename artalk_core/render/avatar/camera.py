"""The GAGAvatar camera (GAGAVATAR.md §4): head rotation -> PyTorch3D [R|T] -> the rasterizer's view
and projection matrices.

Conventions: a PyTorch3D world->view transform [R|T] maps row vectors, X_view = X_world @ R + T.
The view matrix is 4x4 in the row-vector convention the rasterizer reads (p_view = [p,1] @ V) with
x and y negated (PyTorch3D +X left/+Y up -> the rasterizer's +X right/+Y down). The focal length is
in NDC units (12: tan(fov/2) = 1/12); the principal point is the image centre, pixel centres are at
integer coordinates, so the image spans pixels -0.5 .. size-0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from artalk_core.constants import FOCAL_NDC

Z_NEAR: float = 0.01
Z_FAR: float = 100.0


@dataclass(frozen=True)
class Camera:
    """What the rasterizer needs: ``viewmatrix`` [4,4] and ``projmatrix`` [4,4] (row-vector
    convention, float32 tensors on the render device), ``tanfovx``/``tanfovy`` and the image size."""

    viewmatrix: Any
    projmatrix: Any
    tanfovx: float
    tanfovy: float
    width: int
    height: int

    @property
    def focal_x(self) -> float:
        """Focal length in pixels along x."""
        return self.width / (2.0 * self.tanfovx)

    @property
    def focal_y(self) -> float:
        return self.height / (2.0 * self.tanfovy)


def axis_angle_to_matrix(axis_angle: Any) -> Any:
    """Axis-angle [...,3] -> rotation matrices [...,3,3] through the unit quaternion, as PyTorch3D's
    default ``axis_angle_to_matrix`` does (small angles use the Taylor series of sin(x/2)/x)."""
    import torch

    angles = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
    half = angles * 0.5
    small = angles.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(angles), angles)
    factor = torch.where(small, 0.5 - (angles * angles) / 48, torch.sin(half) / safe)
    q = torch.cat([torch.cos(half), axis_angle * factor], dim=-1)
    r, i, j, k = torch.unbind(q, -1)
    two_s = 2.0 / (q * q).sum(-1)
    o = torch.stack((
        1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
        two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
        two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
    ), -1)
    return o.reshape(q.shape[:-1] + (3, 3))


def transform_emoca_to_p3d(rotation: Any) -> Any:
    """Head rotation (motion channels 100:103, axis-angle) [...,3] -> camera rotation R [...,3,3].

    R = (R0 @ diag(-1,1,-1))^-1 with R0 the rotation of the code with components 0 and 2 negated.
    The reference negates them in place on the caller's motion; here a new tensor is made, the
    input is never written.
    """
    import torch

    a = rotation * torch.tensor([-1.0, 1.0, -1.0], dtype=rotation.dtype, device=rotation.device)
    flip = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=rotation.dtype, device=rotation.device))
    return torch.linalg.inv(axis_angle_to_matrix(a) @ flip)


def frame_transform(rotation: Any, transform_matrix: Any) -> Any:
    """Per-frame camera [R|T] [...,3,4]: R from the head rotation [...,3], T the tracked photo's
    translation (``transform_matrix`` [3,4])."""
    import torch

    rot = transform_emoca_to_p3d(rotation)
    t = transform_matrix[..., :3, 3].to(rot).expand(rot.shape[:-2] + (3,))
    return torch.cat([rot, t.unsqueeze(-1)], dim=-1)


def view_matrix(transform: Any) -> Any:
    """PyTorch3D [R|T] [...,3,4] -> view matrix [...,4,4]: V[:3,:3] = R, V[3,:3] = T, then columns 0
    and 1 negated."""
    import torch

    shape = transform.shape[:-2]
    v = torch.zeros(shape + (4, 4), dtype=transform.dtype, device=transform.device)
    v[..., :3, :3] = transform[..., :3, :3]
    v[..., 3, :3] = transform[..., :3, 3]
    v[..., 3, 3] = 1.0
    v[..., :, :2] = -v[..., :, :2]
    return v


def projection_matrix(viewmatrix: Any, *, focal: float = FOCAL_NDC) -> Any:
    """Full projection P = V @ K^T [...,4,4] with K the reference's perspective matrix (focal in NDC,
    near 0.01, far 100: they change nothing visible, the rasterizer only reads x/w, y/w)."""
    import torch

    k = torch.zeros((4, 4), dtype=viewmatrix.dtype, device=viewmatrix.device)
    k[0, 0] = focal
    k[1, 1] = focal
    k[3, 2] = 1.0
    k[2, 2] = Z_FAR / (Z_FAR - Z_NEAR)
    k[2, 3] = -(Z_FAR * Z_NEAR) / (Z_FAR - Z_NEAR)
    return viewmatrix @ k.transpose(0, 1)


def build_camera(transform: Any, *, size: int, focal: float = FOCAL_NDC) -> Camera:
    """The rasterizer camera of one PyTorch3D [R|T] [3,4] for a ``size`` x ``size`` image."""
    v = view_matrix(transform)
    return Camera(viewmatrix=v, projmatrix=projection_matrix(v, focal=focal), tanfovx=1.0 / focal,
                  tanfovy=1.0 / focal, width=int(size), height=int(size))


def build_camera_matrices(transform: Any, *, focal: float = FOCAL_NDC) -> tuple[Any, Any]:
    """(view [...,4,4], projection [...,4,4]) of [R|T] [...,3,4], as the reference's helper."""
    v = view_matrix(transform)
    return v, projection_matrix(v, focal=focal)


def project_points(points: Any, camera: Camera) -> Any:
    """World points [N,3] -> pixel coordinates [N,2] (pixel centres at integers), as the rasterizer
    places Gaussian centres."""
    import torch

    hom = torch.cat([points, torch.ones_like(points[:, :1])], dim=1) @ camera.projmatrix
    w = 1.0 / (hom[:, 3:4] + 1e-7)
    ndc = hom[:, :2] * w
    size = torch.tensor([camera.width, camera.height], dtype=points.dtype, device=points.device)
    return ((ndc + 1.0) * size - 1.0) * 0.5


def plane_points(n: int, transform: Any, *, focal: float = FOCAL_NDC) -> tuple[Any, Any]:
    """The reference's ``build_points_planes``: an n x n grid of points [n*n,3] (index row*n + col) on
    the plane through the world origin's depth perpendicular to the photo camera's axis, covering its
    field of view, and that axis [3]. Grid (0,0) projects to pixel (-0.5,-0.5), (n-1,n-1) to
    (size-0.5, size-0.5)."""
    import torch

    t = transform.reshape(3, 4)
    r, tr = t[:, :3], t[:, 3]
    xs = torch.linspace(1.0, -1.0, n, dtype=t.dtype, device=t.device)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")  # "xy" indexing: x along columns, y along rows
    rays = torch.stack([gx.reshape(-1) / focal, gy.reshape(-1) / focal, torch.ones_like(gx.reshape(-1))], dim=1)
    cam_dir = r @ torch.tensor([0.0, 0.0, 1.0], dtype=t.dtype, device=t.device)
    origin = -(r @ tr)
    distance = torch.abs(origin @ cam_dir)
    rays_world = rays @ r.transpose(0, 1)
    return origin + distance * rays_world, cam_dir
