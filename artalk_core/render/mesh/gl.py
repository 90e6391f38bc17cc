"""Offscreen OpenGL mesh renderer (moderngl + EGL): the reference look at hundreds of frames/s.

One headless EGL context, one framebuffer and one set of buffers live as long as the renderer;
each frame only uploads new vertex positions and normals and reads the image back. With Mesa
this runs on the CPU (llvmpipe); with a GPU driver's EGL the same code uses the GPU.
"""

from __future__ import annotations

import numpy as np

from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import DependencyError, InputError, RenderError
from artalk_core.render.mesh.camera import (
    REFERENCE_CAMERA,
    REFERENCE_LIGHTING,
    Camera,
    Lighting,
    face_incidence,
    face_normals,
    vertex_normals,
)

EGL_HINT = ("install the system OpenGL/EGL libraries (Debian/Ubuntu: apt-get install libegl1 "
            "libgl1-mesa-dri libgbm1), or use --renderer pytorch3d if pytorch3d is installed")

_VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_pos;
out vec3 v_normal;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

# Phong in world space, term for term as pytorch3d's HardPhongShader with PointLights/Materials.
# The last line truncates to 8 bits like the reference's float -> uint8 cast; writing k/255 makes
# the normalised framebuffer store exactly k.
_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_albedo;
uniform vec3 u_light;
uniform vec3 u_eye;
uniform float u_ambient;
uniform float u_diffuse;
uniform float u_specular;
uniform float u_shininess;
in vec3 v_pos;
in vec3 v_normal;
out vec4 f_color;
void main() {
    vec3 n = v_normal / max(length(v_normal), 1e-6);
    vec3 l = u_light - v_pos;
    l = l / max(length(l), 1e-6);
    vec3 v = u_eye - v_pos;
    v = v / max(length(v), 1e-6);
    float cos_nl = dot(n, l);
    vec3 r = 2.0 * cos_nl * n - l;
    float spec = cos_nl > 0.0 ? pow(max(dot(r, v), 0.0), u_shininess) : 0.0;
    vec3 c = u_albedo * (u_ambient + u_diffuse * max(cos_nl, 0.0)) + u_specular * spec;
    c = clamp(c, 0.0, 1.0);
    f_color = vec4(floor(c * 255.0) / 255.0, 1.0);
}
"""


def _create_context(device: str):
    try:
        import moderngl
    except ImportError as e:  # pragma: no cover - moderngl is a hard dependency
        raise DependencyError(f"the OpenGL renderer needs the moderngl package (pip install moderngl): {e}") from e
    kwargs: dict = {"backend": "egl"}
    dev = (device or "auto").lower()
    if dev.startswith("egl:") and dev[4:].isdigit():
        kwargs["device_index"] = int(dev[4:])
    elif not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise InputError(f"unknown device {device!r} for the gl renderer: use auto, cpu, cuda, or egl:N "
                         f"(EGL device N)")
    # The model's --device (cpu/cuda) does not pick the GL device: EGL takes the default one, which
    # is the GPU where a driver exposes one and Mesa's llvmpipe otherwise.
    try:
        ctx = moderngl.create_standalone_context(require=330, **kwargs)
    except Exception as e:  # moderngl/glcontext raise plain Exception subclasses
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RenderError(f"cannot create an offscreen OpenGL context ({detail}): {EGL_HINT}") from e
    return ctx


class GLMeshRenderer:
    """Renders one fixed-topology mesh frame by frame into [H,W,3] uint8 images.

    ``faces`` [F,3] int; colours are 0-255 RGB. ``render`` takes world-space vertices [V,3].
    """

    def __init__(self, faces: np.ndarray, *, size: int = IMAGE_SIZE, background: tuple[int, int, int] = BACKGROUND_COLOR,
                 color: tuple[int, int, int] = MESH_COLOR, device: str = "auto",
                 camera: Camera = REFERENCE_CAMERA, lighting: Lighting = REFERENCE_LIGHTING) -> None:
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.size = int(size)
        self.background = tuple(int(c) for c in background)
        self.color = tuple(int(c) for c in color)
        self._num_vertices = int(self.faces.max()) + 1
        self._incidence = face_incidence(self.faces, self._num_vertices)
        self._faces_u4 = self.faces.astype(np.uint32)
        self._first_corner = np.ascontiguousarray(self.faces[:, 0])
        self._eye = np.asarray(camera.position, dtype=np.float32)
        self._ctx = _create_context(device)
        ctx = self._ctx
        try:
            with ctx:
                self.device_name: str = f"OpenGL: {ctx.info.get('GL_RENDERER', 'unknown')}"
                """What renders: 'llvmpipe' is Mesa on the CPU; a GPU shows its own name."""
                self._prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
                self._prog["u_mvp"].write(camera.gl_matrix(flip_y=True).T.astype("f4").tobytes())
                self._prog["u_albedo"].value = tuple(c / 255.0 for c in self.color)
                self._prog["u_light"].value = tuple(float(c) for c in lighting.light_position)
                self._prog["u_eye"].value = tuple(float(c) for c in camera.position)
                self._prog["u_ambient"].value = lighting.ambient
                self._prog["u_diffuse"].value = lighting.diffuse
                self._prog["u_specular"].value = lighting.specular * lighting.material_specular
                self._prog["u_shininess"].value = lighting.shininess
                nbytes = self._num_vertices * 3 * 4
                self._vbo_pos = ctx.buffer(reserve=nbytes, dynamic=True)
                self._vbo_nrm = ctx.buffer(reserve=nbytes, dynamic=True)
                self._ibo = ctx.buffer(reserve=self._faces_u4.nbytes, dynamic=True)
                self._vao = ctx.vertex_array(
                    self._prog, [(self._vbo_pos, "3f", "in_pos"), (self._vbo_nrm, "3f", "in_normal")],
                    index_buffer=self._ibo, index_element_size=4)
                # single-sample colour + depth: hard rasterisation, one face per pixel, like the reference
                self._color_rb = ctx.renderbuffer((self.size, self.size), 4)
                self._depth_rb = ctx.depth_renderbuffer((self.size, self.size))
                self._fbo = ctx.framebuffer(color_attachments=[self._color_rb], depth_attachment=self._depth_rb)
        except Exception as e:
            self._ctx.release()
            raise RenderError(f"cannot set up the OpenGL renderer: {e}") from e
        self._clear = tuple(c / 255.0 for c in self.background)
        self._image = np.empty((self.size, self.size, 3), dtype=np.uint8)
        self._closed = False

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """One frame: ``vertices`` [V,3] float (world, metres) -> image [size,size,3] uint8, row 0 = top."""
        if self._closed:
            raise RenderError("the renderer was closed")
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < self._num_vertices:
            raise InputError(f"vertices must be [V,3] with V >= {self._num_vertices} for this mesh, got {v.shape}")
        if not np.isfinite(v).all():
            raise InputError("vertices contain NaN or infinite values")
        v = v[: self._num_vertices] if v.shape[0] > self._num_vertices else v
        fn = face_normals(v, self.faces)
        normals = vertex_normals(v, self.faces, self._incidence, fn)
        # Draw the faces turned towards the camera first: the ones turned away then mostly fail
        # the depth test before shading (~15% less work for llvmpipe). The picture is the same:
        # the nearest face still wins every pixel, and nothing is culled (the reference culls
        # nothing either, so the inside of an open mouth stays visible).
        facing = np.einsum("ij,ij->i", fn, self._eye - v[self._first_corner]) > 0
        faces = np.concatenate([self._faces_u4[facing], self._faces_u4[~facing]])
        # moderngl issues GL calls on whichever context is current: with several renderers alive
        # (or one closed) ours must be made current for the frame
        with self._ctx:
            self._vbo_pos.write(v)
            self._vbo_nrm.write(normals)
            self._ibo.write(faces)
            fbo = self._fbo
            fbo.use()
            fbo.clear(*self._clear, 1.0, depth=1.0)
            self._ctx.enable(self._ctx.DEPTH_TEST)
            self._vao.render()
            fbo.read_into(self._image, components=3, alignment=1)
        # the background was cleared with c/255 and stored rounded: exact for integer colours
        return self._image.copy()

    def close(self) -> None:
        """Release the GL context and its buffers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._ctx:
            for obj in (self._vao, self._vbo_pos, self._vbo_nrm, self._ibo, self._fbo, self._color_rb, self._depth_rb,
                        self._prog):
                obj.release()
        self._ctx.release()

    def __enter__(self) -> GLMeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
