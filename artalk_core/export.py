"""`artalk export`: motion -> glTF 2.0 (``.glb`` or ``.gltf`` + ``.bin``) for Blender, game engines
and the web.

FLAME maps onto glTF exactly. FLAME poses a vertex as

    v_shaped = template + S . shape                      (identity, fixed per export)
    v_posed  = v_shaped + E . exp + P . vec(R_j - I)      (j = neck, jaw, left eye, right eye)
    v        = sum_j w_vj  G_j(t) T(-J_j(t)) v_posed      (linear blend skinning)

with joints J(t) = J_regressor . (v_shaped + E . exp). In the glTF file:

- the mesh is ``v_shaped``, skinned to 5 joint nodes with FLAME's weights, inverse bind matrices
  T(-J_j(0)) from the rest joints J(0) = J_regressor . v_shaped;
- the 100 expression blend shapes E are morph targets ``exp_00..exp_99`` (weights: motion[0:100])
  and the 36 pose correctives P are morph targets ``pose_<joint>_<r><c>`` (weights: the entries of
  R_j - I), so morphing reproduces ``v_posed``;
- the animation rotates the root (global rotation, motion[100:103]) and the jaw (motion[103:106]);
  neck and eyes stay at identity (the 106-channel motion has none). Expressions move the joints
  (J(t) above), which fixed inverse bind matrices cannot follow, so when the head's expression
  blend shapes move any joint, every joint node also gets a translation channel chosen so that
  node transform x inverse bind matrix = FLAME's skinning transform exactly (see ``_translations``).

One keyframe per motion frame at ``fps`` plus a hold key at T / fps (duration = frames / fps),
LINEAR interpolation. The animation data is written block by block (bounded memory).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import (
    EXP_DIM,
    EXP_SLICE,
    FPS,
    GLOBAL_ROT_SLICE,
    JAW_SLICE,
    MAX_EXPORT_FPS,
    MESH_COLOR,
    MIN_EXPORT_FPS,
    SHAPE_DIM,
)
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, check_not_input, input_file, provenance, sha256_file, spooled
from artalk_core.progress import OptionalProgress, report

if TYPE_CHECKING:  # pragma: no cover
    from artalk_core.formats.gltf import BinSink, Filler, GltfBuilder  # noqa: F401

JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "left_eye", "right_eye")
"""FLAME's joints in order (node i of the glTF file is joint i)."""
POSE_JOINTS: tuple[str, ...] = JOINT_NAMES[1:]
TARGET_NAMES: tuple[str, ...] = (tuple(f"exp_{i:02d}" for i in range(EXP_DIM))
                                 + tuple(f"pose_{j}_{r}{c}" for j in POSE_JOINTS for r in range(3) for c in range(3)))
"""Morph target names: 100 expressions, then (R - I)[r][c] of neck, jaw, left eye, right eye."""
NUM_TARGETS: int = len(TARGET_NAMES)  # 136
BLOCK_FRAMES: int = 1024
"""Frames converted and written at once."""


@dataclass
class ExportResult:
    """What `export` wrote."""

    output: Path
    frames: int
    fps: float
    head: str  # "FLAME (<path>)" or "stand-in"
    head_is_standin: bool
    morph_targets: int = NUM_TARGETS
    bin: Path | None = None  # the .bin of a .gltf output
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass
class Rig:
    """The static part of the export: float64 ``v_shaped`` [V,3], ``joints`` J(0) [5,3] and
    ``joint_exp`` [5,3,100] (J_regressor . E: how expressions move the joints); float32 (as
    stored) ``exp_dirs`` [100,V,3], ``pose_dirs`` [36,V,3], ``weights`` [V,5]; ``parents`` [5],
    ``faces`` [F,3]."""

    v_shaped: np.ndarray
    joints: np.ndarray
    exp_dirs: np.ndarray
    pose_dirs: np.ndarray
    joint_exp: np.ndarray
    parents: list[int]
    weights: np.ndarray
    faces: np.ndarray

    @property
    def moving_joints(self) -> bool:
        """True when expressions move the joints (real FLAME; not the stand-in's zero blend shapes)."""
        return bool(np.any(self.joint_exp != 0))

    @classmethod
    def from_head(cls, head: Any, shape: Any = None) -> Rig:
        """From a :class:`~artalk_core.flame.FlameModel` and a FLAME shape [300] (None: zeros)."""
        template = head.v_template.double().cpu().numpy()
        dirs = head.shapedirs.double().cpu().numpy()  # [V,3,400]
        v_shaped = template.copy()
        if shape is not None:
            v_shaped += np.einsum("vkl,l->vk", dirs[:, :, :SHAPE_DIM], np.asarray(shape, dtype=np.float64))
        jreg = head.J_regressor.double().cpu().numpy()
        exp_dirs = np.ascontiguousarray(np.transpose(dirs[:, :, SHAPE_DIM:SHAPE_DIM + EXP_DIM], (2, 0, 1)),
                                        dtype=np.float32)
        v = template.shape[0]
        return cls(v_shaped=v_shaped, joints=jreg @ v_shaped, exp_dirs=exp_dirs,
                   pose_dirs=head.posedirs.cpu().numpy().reshape(-1, v, 3),
                   joint_exp=np.einsum("jv,vkl->jkl", jreg, dirs[:, :, SHAPE_DIM:SHAPE_DIM + EXP_DIM]),
                   parents=[int(p) for p in head.parents.tolist()],
                   weights=head.lbs_weights.cpu().numpy().astype(np.float32), faces=np.asarray(head.faces))


def _rotations(rot_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle [N,3] -> (rotation matrices [N,3,3] from FLAME's own Rodrigues, unit quaternions
    [N,4] x,y,z,w of the same rotation, angle computed as FLAME does: |r + 1e-8|)."""
    import torch

    from artalk_core.flame.lbs import batch_rodrigues

    r = np.asarray(rot_vecs, dtype=np.float64)
    mats = batch_rodrigues(torch.from_numpy(r)).numpy()
    angle = np.linalg.norm(r + 1e-8, axis=1, keepdims=True)
    quat = np.concatenate([r / angle * np.sin(angle / 2), np.cos(angle / 2)], axis=1)
    return mats, quat / np.linalg.norm(quat, axis=1, keepdims=True)


@dataclass
class Keys:
    """The animation values of a block of n frames: ``weights`` [n,136], ``root`` / ``jaw``
    quaternions [n,4], ``translations`` [n,5,3] joint node translations (None: fixed)."""

    weights: np.ndarray
    root: np.ndarray
    jaw: np.ndarray
    translations: np.ndarray | None


def frame_keys(rig: Rig, motion: np.ndarray) -> Keys:
    """Animation values of motion frames [n,106] (see the module docstring)."""
    m = np.asarray(motion, dtype=np.float64)
    n = m.shape[0]
    pose = np.zeros((n, len(JOINT_NAMES), 3))
    pose[:, 0] = m[:, GLOBAL_ROT_SLICE]
    pose[:, 2] = m[:, JAW_SLICE]
    mats, quats = _rotations(pose.reshape(-1, 3))
    mats = mats.reshape(n, -1, 3, 3)
    quats = quats.reshape(n, -1, 4)
    pose_feature = (mats[:, 1:] - np.eye(3)).reshape(n, -1)  # [n,36], FLAME's order
    weights = np.concatenate([m[:, EXP_SLICE], pose_feature], axis=1)
    trans = _translations(rig, m[:, EXP_SLICE], mats) if rig.moving_joints else None
    return Keys(weights=weights, root=quats[:, 0], jaw=quats[:, 2], translations=trans)


def _translations(rig: Rig, exp: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Joint node translations [n,5,3] that make glTF skinning equal FLAME's.

    FLAME skins with S_j = W_j(t) T(-J_j(t)), W_j = W_p [R_j, J_j(t) - J_p(t)]; glTF with
    N_j IBM_j = N_j T(-J_j(0)). So N_j = W_j T(d_j), d_j = J_j(0) - J_j(t), and the local
    transform N_p^-1 N_j = [R_j, J_j(t) - J_p(t) + R_j d_j - d_p] (root: J_0(t) + R_0 d_0).
    """
    jt = rig.joints[None] + np.einsum("jkl,nl->njk", rig.joint_exp, exp)  # J(t) [n,5,3]
    d = rig.joints[None] - jt
    out = np.empty_like(jt)
    for j, p in enumerate(rig.parents):
        rd = np.einsum("nab,nb->na", mats[:, j], d[:, j])
        out[:, j] = jt[:, j] + rd if p < 0 else jt[:, j] - jt[:, p] + rd - d[:, p]
    return out


def skin_sets(weights: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """FLAME's [V,5] weights as glTF JOINTS_n / WEIGHTS_n pairs of 4: per vertex the joints by
    decreasing weight; a second set only when some vertex has 5 non-zero weights. Unused slots
    are joint 0 with weight 0."""
    order = np.argsort(-weights, axis=1, kind="stable")
    w = np.take_along_axis(weights, order, axis=1)
    j = np.where(w > 0, order, 0)
    w = np.where(w > 0, w, 0.0)
    n_sets = 2 if np.any(w[:, 4] > 0) else 1
    j = np.concatenate([j, np.zeros((j.shape[0], 3), dtype=j.dtype)], axis=1)
    w = np.concatenate([w, np.zeros((w.shape[0], 3), dtype=w.dtype)], axis=1)
    return [(j[:, 4 * s:4 * s + 4].astype(np.uint8), w[:, 4 * s:4 * s + 4].astype(np.float32))
            for s in range(n_sets)]


def check_fps(fps: float) -> float:
    """The keyframe rate as a float: a finite number from MIN_EXPORT_FPS to MAX_EXPORT_FPS (InputError)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"--fps must be a number, got {fps!r}") from None
    if not math.isfinite(value):
        raise InputError(f"--fps must be a finite number (keyframes per second), got {fps}")
    if not MIN_EXPORT_FPS <= value <= MAX_EXPORT_FPS:
        raise InputError(f"--fps must be from {MIN_EXPORT_FPS:g} to {MAX_EXPORT_FPS:g} (keyframes per second), "
                         f"got {fps:g}")
    return value


def gltf_outputs(output: PathLike, flag: str = "-o") -> dict[str, Path]:
    """The files a glTF export to ``output`` writes, by what names them: the file, and for a
    ``.gltf`` the ``.bin`` beside it (for :func:`~artalk_core.fileio.check_not_input`).
    InputError for a name that is neither ``.glb`` nor ``.gltf``."""
    from artalk_core.formats.gltf import bin_name

    out = Path(output)
    if out.suffix.lower() not in (".glb", ".gltf"):
        raise InputError(f"cannot tell the glTF container from {output}: name the output *.glb or *.gltf")
    files = {flag: out}
    if out.suffix.lower() == ".gltf":
        files[f"the .bin of {flag} {output}"] = out.with_name(bin_name(out))
    return files


def export(input: PathLike | bytes, *, output: PathLike, flame: PathLike | None = None,
           shape: PathLike | None = None, fps: float = FPS, embed_audio: PathLike | None = None,
           assets: PathLike | None = None, allow_standin: bool = True,
           progress: OptionalProgress = None) -> ExportResult:
    """Export motion (any file the other commands read: ours, the reference ``.pt``, a motion
    stream; a path, ``-`` or bytes) to a glTF 2.0 file ``output`` (``.glb``, or ``.gltf`` with a
    ``.bin`` beside it), written atomically.

    ``flame``/``assets``/``allow_standin``: which head (as :func:`artalk_core.flame.resolve_flame`);
    ``shape``: a FLAME shape [300] file; ``fps``: the playback rate of the keyframes;
    ``embed_audio``: an audio file stored in the buffer (``asset.extras.audio``; glTF has no
    ratified audio extension, so players ignore it). InputError / AssetError / OutputError.
    """
    from artalk_core.assets import asset_inputs

    rate = check_fps(fps)
    check_not_input(gltf_outputs(output), {"INPUT": input, "--shape": shape, "--embed-audio": embed_audio,
                                           **asset_inputs(assets, {"--flame": flame})})
    with contextlib.ExitStack() as stack:
        flame, shape = spooled(stack, flame), spooled(stack, shape)  # a FIFO: read once, into a temp file
        audio: tuple[Path, str] | None = None
        if embed_audio is not None:
            # a FIFO or <(...) is read once, into a temp file, like every other input
            audio_path, _, audio_label = stack.enter_context(input_file(embed_audio))
            if not audio_path.exists():
                raise InputError(f"audio to embed not found: {embed_audio}")
            if not audio_path.is_file():
                raise InputError(f"audio to embed is not a file: {embed_audio}")
            audio = (audio_path, Path(audio_label).name)
        path, input_sha, name = stack.enter_context(input_file(input))
        return _export(path, input_sha, name=name, output=output, flame=flame, shape=shape, fps=rate,
                       embed_audio=audio, assets=assets, allow_standin=allow_standin, progress=progress)


def _export(path: Path, input_sha: str, *, name: str, output: PathLike, flame: PathLike | None,
            shape: PathLike | None, fps: float, embed_audio: tuple[Path, str] | None, assets: PathLike | None,
            allow_standin: bool, progress: OptionalProgress) -> ExportResult:
    """:func:`export` of a motion file on disk; ``embed_audio``: (the file to read, its name)."""
    from artalk_core.flame import load_shape, resolve_flame
    from artalk_core.formats.gltf import FORMAT_NAME, FORMAT_VERSION, write_gltf
    from artalk_core.formats.motion import MotionReader

    with MotionReader(path, label=name) as motion:
        input_sha = input_sha or sha256_file(path)
        head = resolve_flame(flame, assets, allow_standin=allow_standin)
        beta = load_shape(shape).numpy() if shape is not None else None
        rig = Rig.from_head(head, beta)
        head_label = "stand-in" if head.is_standin else f"FLAME ({head.source})"
        inputs = {"motion": input_sha, "head": head.sha256}
        if shape is not None:
            inputs["shape"] = sha256_file(shape)
        if embed_audio is not None:
            inputs["audio"] = sha256_file(embed_audio[0])
        options = {"fps": fps, "shape": str(shape) if shape else None,
                   "embed_audio": embed_audio[1] if embed_audio else None}
        meta: dict[str, Any] = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            **provenance("artalk export", options=options, inputs=inputs),
            "head": head_label, "head_is_standin": bool(head.is_standin), "fps": fps, "frames": motion.frames,
            "joints": list(JOINT_NAMES),
            "morph_weights": "exp_00..exp_99 = motion[0:100]; pose_<joint>_<r><c> = (R_joint - I)[r][c]",
        }
        builder, fill = build_document(rig, motion.frames, fps, _blocks(motion, rig), meta=meta,
                                       audio=embed_audio,
                                       progress=lambda done: report(progress, "export", done, motion.frames))
        bin_path = write_gltf(output, builder, fill)
    return ExportResult(output=Path(output), frames=motion.frames, fps=fps, head=head_label,
                        head_is_standin=bool(head.is_standin), bin=bin_path, meta=meta)


def _blocks(motion: Any, rig: Rig) -> Iterator[Keys]:
    for block in motion.iter_blocks(BLOCK_FRAMES):
        yield frame_keys(rig, block)


def material_color() -> list[float]:
    """The reference mesh colour as a glTF base colour (linear RGBA)."""
    return [round((c / 255.0) ** 2.2, 6) for c in MESH_COLOR] + [1.0]


def _audio_mime(head: bytes) -> str:
    from artalk_core.formats import sniff_kind

    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if sniff_kind(head) in ("audio", "video"):
        return "application/octet-stream"
    raise InputError("the file to embed as audio is not an audio file artalk recognises")


def build_document(rig: Rig, frames: int, fps: float, blocks: Iterator[Keys], *, meta: dict[str, Any],
                   audio: Path | tuple[Path, str] | None = None,
                   progress: Callable[[int], None] | None = None) -> tuple[GltfBuilder, Filler]:
    """The glTF document of ``rig`` animated by ``frames`` frames (``blocks`` of :class:`Keys`),
    and the function that streams the animation (and the ``audio`` file's bytes) into its buffer.
    ``audio``: a file, or (the file to read, the name to record)."""
    import pygltflib

    from artalk_core.formats.gltf import (
        ARRAY_BUFFER,
        ELEMENT_ARRAY_BUFFER,
        FLOAT,
        UNSIGNED_BYTE,
        UNSIGNED_INT,
        GltfBuilder,
    )

    b = GltfBuilder()
    doc = b.doc
    f32 = np.float32
    attrs: dict[str, int] = {"POSITION": b.static_accessor(rig.v_shaped.astype(f32), "VEC3", FLOAT,
                                                           target=ARRAY_BUFFER, with_minmax=True)}
    for s, (joints, weights) in enumerate(skin_sets(rig.weights)):
        attrs[f"JOINTS_{s}"] = b.static_accessor(joints, "VEC4", UNSIGNED_BYTE, target=ARRAY_BUFFER)
        attrs[f"WEIGHTS_{s}"] = b.static_accessor(weights, "VEC4", FLOAT, target=ARRAY_BUFFER)
    indices = b.static_accessor(rig.faces.astype(np.uint32).reshape(-1, 1), "SCALAR", UNSIGNED_INT,
                                target=ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": b.static_accessor(d.astype(f32), "VEC3", FLOAT, target=ARRAY_BUFFER, with_minmax=True)}
               for d in (*rig.exp_dirs, *rig.pose_dirs)]
    ibm = np.tile(np.eye(4), (len(JOINT_NAMES), 1, 1))
    ibm[:, :3, 3] = -rig.joints
    ibm_acc = b.static_accessor(np.transpose(ibm, (0, 2, 1)).reshape(-1, 16).astype(f32), "MAT4", FLOAT)

    mesh_node = len(JOINT_NAMES)
    for j, name in enumerate(JOINT_NAMES):
        p = rig.parents[j]
        rest = rig.joints[j] - (rig.joints[p] if p >= 0 else 0.0)
        children = [c for c in range(len(JOINT_NAMES)) if rig.parents[c] == j]
        doc.nodes.append(pygltflib.Node(name=name, translation=[float(x) for x in rest], children=children))
    doc.nodes.append(pygltflib.Node(name="head", mesh=0, skin=0))
    doc.scenes = [pygltflib.Scene(name="artalk", nodes=[mesh_node, 0])]
    doc.scene = 0
    doc.skins = [pygltflib.Skin(name="FLAME", inverseBindMatrices=ibm_acc, joints=list(range(len(JOINT_NAMES))),
                                skeleton=0)]
    doc.materials = [pygltflib.Material(name="mesh", doubleSided=True, pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
        baseColorFactor=material_color(), metallicFactor=0.0, roughnessFactor=0.6))]
    prim = pygltflib.Primitive(attributes=pygltflib.Attributes(**attrs), indices=indices, material=0, targets=targets)
    doc.meshes = [pygltflib.Mesh(name="FLAME", primitives=[prim], weights=[0.0] * NUM_TARGETS,
                                 extras={"targetNames": list(TARGET_NAMES)})]

    # The animation: accessors laid out now, filled block by block.
    n_keys = frames + 1  # + the hold key at T / fps
    end = float(np.float32(frames / fps))
    time_acc, time_seg = b.stream_accessor(n_keys, "SCALAR", minmax=([0.0], [end]))
    outputs: list[tuple[int, str, Any]] = []  # (node, path, segment)
    samplers: list[Any] = []
    channels: list[Any] = []

    def channel(node: int, path: str, count: int, kind: str) -> Any:
        acc, seg = b.stream_accessor(count, kind)
        samplers.append(pygltflib.AnimationSampler(input=time_acc, output=acc, interpolation="LINEAR"))
        channels.append(pygltflib.AnimationChannel(
            sampler=len(samplers) - 1, target=pygltflib.AnimationChannelTarget(node=node, path=path)))
        outputs.append((node, path, seg))
        return seg

    w_seg = channel(mesh_node, "weights", n_keys * NUM_TARGETS, "SCALAR")
    root_seg = channel(0, "rotation", n_keys, "VEC4")
    jaw_seg = channel(2, "rotation", n_keys, "VEC4")
    t_segs = [channel(j, "translation", n_keys, "VEC3") for j in range(len(JOINT_NAMES))] if rig.moving_joints else []
    doc.animations = [pygltflib.Animation(name="talk", samplers=samplers, channels=channels)]

    extras = dict(meta)
    audio_seg = None
    audio_name = ""
    if isinstance(audio, tuple):
        audio, audio_name = audio
    if audio is not None:
        size = audio.stat().st_size
        with open(audio, "rb") as fa:
            mime = _audio_mime(fa.read(1 << 16))
        audio_seg = b.layout.reserve(size)
        extras["audio"] = {"bufferView": b.view(audio_seg), "mimeType": mime, "name": audio_name or audio.name,
                           "byteLength": size, "start_s": 0.0}
    doc.asset = pygltflib.Asset(version="2.0", generator=f"artalk {meta.get('artalk_version', '')}".strip(),
                                extras=extras)

    def fill(sink: BinSink) -> None:
        done = 0
        last: Keys | None = None
        for keys in blocks:
            n = keys.weights.shape[0]
            sink.write(time_seg.offset + 4 * done, np.arange(done, done + n, dtype=np.float64) / fps)
            _write_keys(sink, done, keys, w_seg, root_seg, jaw_seg, t_segs)
            done += n
            last = keys
            if progress is not None:
                progress(done)
        if done != frames or last is None:
            raise InputError(f"the motion held {done} frames, not the {frames} it declared")
        sink.write(time_seg.offset + 4 * frames, np.asarray([frames / fps]))
        hold = Keys(weights=last.weights[-1:], root=last.root[-1:], jaw=last.jaw[-1:],
                    translations=None if last.translations is None else last.translations[-1:])
        _write_keys(sink, frames, hold, w_seg, root_seg, jaw_seg, t_segs)
        if audio is not None and audio_seg is not None:
            with open(audio, "rb") as fa:
                offset = audio_seg.offset
                while chunk := fa.read(1 << 20):
                    sink.write_bytes(offset, chunk)
                    offset += len(chunk)

    return b, fill


def _write_keys(sink: BinSink, start: int, keys: Keys, w_seg: Any, root_seg: Any, jaw_seg: Any,
                t_segs: list[Any]) -> None:
    sink.write(w_seg.offset + 4 * NUM_TARGETS * start, keys.weights)
    sink.write(root_seg.offset + 16 * start, keys.root)
    sink.write(jaw_seg.offset + 16 * start, keys.jaw)
    if keys.translations is not None:
        for j, seg in enumerate(t_segs):
            sink.write(seg.offset + 12 * start, keys.translations[:, j])


__all__ = ["ExportResult", "JOINT_NAMES", "TARGET_NAMES", "NUM_TARGETS", "Rig", "Keys", "check_fps", "export", "frame_keys",
           "gltf_outputs", "skin_sets"]
