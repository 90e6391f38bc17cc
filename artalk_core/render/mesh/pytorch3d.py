"""Optional backend: the reference pytorch3d renderer itself (HardPhongShader), when installed.

Never required: the ``gl`` backend reproduces the same look. Useful to compare against the
reference or where no OpenGL is available but pytorch3d (and perhaps CUDA) is.
"""

from __future__ import annotations

import numpy as np

from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import DependencyError, InputError, RenderError
from artalk_core.render.mesh.camera import REFERENCE_CAMERA, REFERENCE_LIGHTING, Camera, Lighting


def _import_pytorch3d():
    try:
        import torch
        from pytorch3d import renderer as p3r
        from pytorch3d.structures import Meshes
    except ImportError as e:
        raise DependencyError(
            "the pytorch3d render backend needs pytorch3d, which is not installed "
            "(see https://github.com/facebookresearch/pytorch3d/blob/main/INSTALL.md), "
            f"or use --renderer gl: {e}") from e
    return torch, p3r, Meshes


class Pytorch3DMeshRenderer:
    """pytorch3d Phong renderer with the reference camera, light and material (one face per pixel)."""

    def __init__(self, faces: np.ndarray, *, size: int = IMAGE_SIZE, background: tuple[int, int, int] = BACKGROUND_COLOR,
                 color: tuple[int, int, int] = MESH_COLOR, device: str = "auto",
                 camera: Camera = REFERENCE_CAMERA, lighting: Lighting = REFERENCE_LIGHTING) -> None:
        torch, p3r, meshes_cls = _import_pytorch3d()
        self._torch = torch
        self._meshes_cls = meshes_cls
        if device in ("auto", "", None):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise InputError(f"unknown torch device {device!r} for the pytorch3d renderer") from e
        dev = self._device
        self.device_name: str = f"pytorch3d on {dev}"
        self.size = int(size)
        self._faces = torch.as_tensor(np.asarray(faces, dtype=np.int64), device=dev)
        self._num_vertices = int(self._faces.max()) + 1
        self._albedo = torch.tensor(color, dtype=torch.float32, device=dev) / 255.0
        self._background = np.asarray(background, dtype=np.uint8)
        try:
            cameras = p3r.PerspectiveCameras(
                focal_length=float(camera.focal), principal_point=((0.0, 0.0),),
                R=torch.tensor(np.asarray(camera.rotation), dtype=torch.float32, device=dev)[None],
                T=torch.tensor(np.asarray(camera.translation), dtype=torch.float32, device=dev)[None],
                image_size=((self.size, self.size),), device=dev)
            lights = p3r.PointLights(
                location=(tuple(float(c) for c in lighting.light_position),),
                ambient_color=((lighting.ambient,) * 3,), diffuse_color=((lighting.diffuse,) * 3,),
                specular_color=((lighting.specular,) * 3,), device=dev)
            materials = p3r.Materials(specular_color=((lighting.material_specular,) * 3,),
                                      shininess=float(lighting.shininess), device=dev)
            blend = p3r.BlendParams(background_color=tuple(c / 255.0 for c in background))
            raster = p3r.RasterizationSettings(image_size=self.size, blur_radius=0.0, faces_per_pixel=1)
            self._renderer = p3r.MeshRenderer(
                rasterizer=p3r.MeshRasterizer(cameras=cameras, raster_settings=raster),
                shader=p3r.HardPhongShader(cameras=cameras, lights=lights, materials=materials,
                                           blend_params=blend, device=dev))
        except Exception as e:
            raise RenderError(f"cannot set up the pytorch3d renderer: {e}") from e
        self._closed = False

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """One frame: ``vertices`` [V,3] float (world) -> image [size,size,3] uint8, row 0 = top."""
        if self._closed:
            raise RenderError("the renderer was closed")
        torch = self._torch
        v = np.asarray(vertices, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < self._num_vertices:
            raise InputError(f"vertices must be [V,3] with V >= {self._num_vertices} for this mesh, got {v.shape}")
        if not np.isfinite(v).all():
            raise InputError("vertices contain NaN or infinite values")
        with torch.no_grad():
            verts = torch.from_numpy(v).to(self._device)
            textures = self._renderer_textures(verts)
            mesh = self._meshes_cls(verts=verts[None], faces=self._faces[None], textures=textures)
            rgba = self._renderer(mesh)[0]
            rgb = rgba[..., :3].clamp(0.0, 1.0)
            # truncating cast, as the reference's ``.astype(np.uint8)``
            img = (rgb * 255.0).to(torch.uint8).cpu().numpy()
            # the background colour is exact, not shaded
            alpha = (rgba[..., 3] > 0).cpu().numpy()
        img[~alpha] = self._background
        return img

    def _renderer_textures(self, verts):
        from pytorch3d.renderer import TexturesVertex

        return TexturesVertex(verts_features=self._albedo.expand(verts.shape[0], 3)[None])

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Pytorch3DMeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
