"""`export`: the glTF file, evaluated independently as the glTF 2.0 specification defines skinning,
morph targets and linear keyframe interpolation, gives FLAME's vertices (the `render -o x.h5` path)."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch

from artalk_core.errors import AssetError, FormatError, InputError, OutputError
from artalk_core.export import NUM_TARGETS, TARGET_NAMES, export

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_en"
FLAME = FIXTURE / "flame_synthetic.pt"

# ---------------------------------------------------------------------------------------------
# An independent glTF evaluator (numpy, straight from the glTF 2.0 specification). It shares no
# code with artalk: it reads the file with pygltflib and applies, per the spec,
#   morphing   p = base + sum_i w_i * target_i                         (3.7.2.2)
#   skinning   p' = sum_k weight_k * jointMatrix[joint_k] * p,
#              jointMatrix_j = globalTransform(joint node j) * inverseBindMatrix_j   (3.7.3)
#   animation  LINEAR: lerp of translations and weights, slerp of rotation quaternions (3.11)
# ---------------------------------------------------------------------------------------------

_NP = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}
_N = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


class GltfEval:
    def __init__(self, path: Path) -> None:
        import pygltflib

        self.doc = pygltflib.GLTF2.load(str(path))
        buf = self.doc.buffers[0]
        if buf.uri:
            self.blob = (path.parent / unquote(buf.uri)).read_bytes()
        else:
            self.blob = self.doc.binary_blob()
        assert len(self.blob) >= buf.byteLength

    def acc(self, i: int) -> np.ndarray:
        a = self.doc.accessors[i]
        v = self.doc.bufferViews[a.bufferView]
        dt = np.dtype(_NP[a.componentType]).newbyteorder("<")
        n = _N[a.type]
        start = (v.byteOffset or 0) + (a.byteOffset or 0)
        stride = v.byteStride or n * dt.itemsize
        rows = [np.frombuffer(self.blob, dtype=dt, count=n, offset=start + k * stride) for k in range(a.count)] \
            if v.byteStride else [np.frombuffer(self.blob, dtype=dt, count=n * a.count, offset=start)]
        return np.concatenate(rows).reshape(a.count, n).astype(np.float64)

    @staticmethod
    def _sample(times: np.ndarray, values: np.ndarray, t: float, path: str) -> np.ndarray:
        if t <= times[0]:
            return values[0]
        if t >= times[-1]:
            return values[-1]
        k = int(np.searchsorted(times, t, side="right")) - 1
        s = (t - times[k]) / (times[k + 1] - times[k])
        a, b = values[k], values[k + 1]
        if path != "rotation":
            return (1 - s) * a + s * b
        d = float(np.dot(a, b))
        if d < 0:
            b, d = -b, -d
        if d > 0.9995:
            q = (1 - s) * a + s * b
        else:
            th = np.arccos(d)
            q = (np.sin((1 - s) * th) * a + np.sin(s * th) * b) / np.sin(th)
        return q / np.linalg.norm(q)

    @staticmethod
    def _trs(t: np.ndarray, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        x, y, z, w = q
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        m = np.eye(4)
        m[:3, :3] = r * s[None, :]
        m[:3, 3] = t
        return m

    def vertices(self, t: float) -> np.ndarray:
        doc = self.doc
        nodes = doc.nodes
        trs = [[np.array(n.translation or [0, 0, 0], float), np.array(n.rotation or [0, 0, 0, 1], float),
                np.array(n.scale or [1, 1, 1], float)] for n in nodes]
        mesh_weights = {}
        anim = doc.animations[0]
        for ch in anim.channels:
            smp = anim.samplers[ch.sampler]
            assert smp.interpolation == "LINEAR"
            times = self.acc(smp.input)[:, 0]
            vals = self.acc(smp.output)
            node = ch.target.node
            if ch.target.path == "weights":
                nt = len(doc.meshes[nodes[node].mesh].primitives[0].targets)
                mesh_weights[node] = self._sample(times, vals.reshape(len(times), nt), t, "weights")
            else:
                slot = {"translation": 0, "rotation": 1, "scale": 2}[ch.target.path]
                trs[node][slot] = self._sample(times, vals, t, ch.target.path)
        parent = {c: i for i, n in enumerate(nodes) for c in (n.children or [])}
        glob: dict[int, np.ndarray] = {}

        def world(i: int) -> np.ndarray:
            if i not in glob:
                local = self._trs(*trs[i]) if nodes[i].matrix is None else \
                    np.array(nodes[i].matrix, float).reshape(4, 4).T
                glob[i] = world(parent[i]) @ local if i in parent else local
            return glob[i]

        (mesh_node,) = [i for i, n in enumerate(nodes) if n.mesh is not None]
        node = nodes[mesh_node]
        skin = doc.skins[node.skin]
        ibm = self.acc(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
        joint_mats = np.stack([world(j) @ ibm[k] for k, j in enumerate(skin.joints)])
        prim = doc.meshes[node.mesh].primitives[0]
        attrs = prim.attributes
        pos = self.acc(attrs.POSITION)
        w = mesh_weights.get(mesh_node, np.array(doc.meshes[node.mesh].weights, float))
        for wi, tgt in zip(w, prim.targets):
            pos = pos + wi * self.acc(tgt["POSITION"])
        ph = np.concatenate([pos, np.ones((len(pos), 1))], axis=1)
        out = np.zeros_like(ph)
        s = 0
        while getattr(attrs, f"JOINTS_{s}", None) is not None:
            js = self.acc(getattr(attrs, f"JOINTS_{s}")).astype(int)
            ws = self.acc(getattr(attrs, f"WEIGHTS_{s}"))
            for k in range(4):
                out += ws[:, k:k + 1] * np.einsum("vab,vb->va", joint_mats[js[:, k]], ph)
            s += 1
        return out[:, :3]


# ---------------------------------------------------------------------------------------------


def _motion(frames: int, seed: int = 0) -> np.ndarray:
    """Synthetic motion with large expressions and rotations on all jaw / global axes."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, frames)[:, None]
    m = np.zeros((frames, 106), np.float32)
    m[:, :100] = 1.5 * np.sin(t * rng.uniform(0.5, 3, 100) + rng.uniform(0, 6, 100))
    m[:, 100:103] = 0.4 * np.sin(t * np.array([1.0, 2.0, 3.0]) + 0.3)
    m[:, 103:106] = np.array([0.35, 0.1, 0.08]) * (0.5 + 0.5 * np.sin(t * np.array([5.0, 3.0, 2.0])))
    return m


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from artalk_core.formats.motion import write_motion

    root = tmp_path_factory.mktemp("export")
    motion = root / "m.motion.safetensors"
    write_motion(motion, _motion(40))
    shape = root / "shape.npy"
    np.save(shape, np.random.default_rng(1).normal(0, 1, 300).astype(np.float32))
    return {"root": root, "motion": motion, "shape": shape}


def _reference_vertices(files: dict[str, Path], out: Path, **kw: object) -> np.ndarray:
    """FLAME vertices through the project's vertices path (`artalk render -o x.h5`)."""
    from artalk_core.formats.vertices import read_vertices
    from artalk_core.options import from_flat
    from artalk_core.render.stage import render

    model, _, look = from_flat(kw)
    render(files["motion"], output=out, look=look, model=model)
    with read_vertices(out) as vf:
        return np.stack(list(vf)).astype(np.float64)


@pytest.mark.parametrize("container", [".glb", ".gltf"])
def test_gltf_evaluation_matches_flame_vertices(files, container) -> None:
    root = files["root"]
    out = root / f"talk{container}"
    res = export(files["motion"], output=out, flame=FLAME, shape=files["shape"])
    assert res.frames == 40 and not res.head_is_standin and res.morph_targets == NUM_TARGETS
    assert (res.bin is not None) == (container == ".gltf")
    ref = _reference_vertices(files, root / f"ref{container}.h5", flame=FLAME, shape=files["shape"])
    ev = GltfEval(out)
    size = float(np.linalg.norm(ref[0].max(0) - ref[0].min(0)))
    errs = [np.abs(ev.vertices(i / 25.0) - ref[i]).max() for i in range(ref.shape[0])]
    assert max(errs) <= 1e-5 * size, (max(errs), size)
    # The hold key: the animation lasts frames / fps and ends on the last frame.
    assert np.abs(ev.vertices(40 / 25.0) - ref[-1]).max() <= 1e-5 * size
    # Between keys the file interpolates (not FLAME exactly, but close to both neighbours).
    mid = ev.vertices(10.5 / 25.0)
    assert np.abs(mid - 0.5 * (ref[10] + ref[11])).max() < 0.05 * size


def test_gltf_evaluation_matches_standin_and_fps(files) -> None:
    out = files["root"] / "standin.glb"
    res = export(files["motion"], output=out, fps=30)
    assert res.head_is_standin and res.fps == 30.0
    ref = _reference_vertices(files, files["root"] / "standin.h5")
    ev = GltfEval(out)
    size = float(np.linalg.norm(ref[0].max(0) - ref[0].min(0)))
    for i in (0, 17, 39):
        assert np.abs(ev.vertices(i / 30.0) - ref[i]).max() <= 1e-5 * size
    doc = ev.doc
    times = ev.acc(doc.animations[0].samplers[0].input)[:, 0]
    assert len(times) == 41 and times[-1] == pytest.approx(40 / 30.0)
    # The stand-in's joints do not move with expression: rotations and weights only.
    assert {c.target.path for c in doc.animations[0].channels} == {"weights", "rotation"}
    assert doc.asset.extras["head_is_standin"] is True


def test_structure_names_and_extras(files) -> None:
    import jsonschema

    from artalk_core.formats.gltf import read_gltf_json
    from artalk_core.schemas import load as load_schema

    out = files["root"] / "names.glb"
    export(files["motion"], output=out, flame=FLAME)
    doc = read_gltf_json(out)
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == list(TARGET_NAMES)
    assert TARGET_NAMES[0] == "exp_00" and TARGET_NAMES[99] == "exp_99" and TARGET_NAMES[100] == "pose_neck_00"
    assert TARGET_NAMES[-1] == "pose_right_eye_22" and len(mesh["primitives"][0]["targets"]) == 136
    assert [n["name"] for n in doc["nodes"][:5]] == ["global", "neck", "jaw", "left_eye", "right_eye"]
    assert doc["skins"][0]["joints"] == [0, 1, 2, 3, 4]
    anim = doc["animations"][0]
    assert all(s["interpolation"] == "LINEAR" for s in anim["samplers"])
    paths = sorted((c["target"]["node"], c["target"]["path"]) for c in anim["channels"])
    assert (0, "rotation") in paths and (2, "rotation") in paths and (5, "weights") in paths
    extras = doc["asset"]["extras"]
    jsonschema.Draft202012Validator.check_schema(load_schema("gltf-extras"))
    jsonschema.validate(extras, load_schema("gltf-extras"))
    assert extras["head_is_standin"] is False and extras["frames"] == 40
    assert len(extras["motion_sha256"]) == 64 and extras["created_by"] == "artalk export"
    assert json.loads(extras["options"])["fps"] == 25.0
    from artalk_core.formats.gltf import read_gltf

    full = read_gltf(out)
    assert len(full.nodes) == 6 and len(full.binary_blob()) == full.buffers[0].byteLength
    with pytest.raises(FormatError, match="not a glTF"):
        read_gltf(files["motion"])
    cut = files["root"] / "cut.glb"
    cut.write_bytes(out.read_bytes()[:100])
    with pytest.raises(FormatError, match="truncated"):
        read_gltf_json(cut)


def test_glb_and_gltf_are_recognised_by_content(files) -> None:
    from artalk_core.formats import sniff_kind
    from artalk_core.info import describe_file

    export(files["motion"], output=files["root"] / "k.gltf")
    export(files["motion"], output=files["root"] / "k.glb")
    for name in ("k.gltf", "k.glb"):
        data = (files["root"] / name).read_bytes()
        assert sniff_kind(data) == "gltf"
        d = describe_file(data)
        assert d["kind"] == "gltf" and d["morph_targets"] == 136 and d["keyframes"] == 41
    with pytest.raises(FormatError, match="not a motion file"):
        export(files["root"] / "k.glb", output=files["root"] / "again.glb")


def test_inputs_reference_pt_stream_and_bytes(files) -> None:
    from artalk_core.formats.motion import read_motion, write_reference_motion
    from artalk_core.formats.motion_stream import MotionStreamWriter

    data = read_motion(files["motion"]).data
    pt = files["root"] / "ref_motions.pt"
    write_reference_motion(pt, data)
    stream = files["root"] / "m.ndjson"
    with open(stream, "wb") as f:
        w = MotionStreamWriter(f)
        w.write_frames(data)
        w.end(frames=data.shape[0])
    outs = []
    for i, src in enumerate((files["motion"], pt, stream, files["motion"].read_bytes())):
        out = files["root"] / f"in{i}.glb"
        export(src, output=out, flame=FLAME)
        outs.append(GltfEval(out).vertices(7 / 25.0))
    for v in outs[1:]:
        assert np.abs(v - outs[0]).max() < 1e-6


def test_embedded_audio(files) -> None:
    from artalk_core.formats.gltf import read_gltf_json

    out = files["root"] / "audio.glb"
    wav = FIXTURE / "speech_16k.wav"
    export(files["motion"], output=out, embed_audio=wav)
    ev = GltfEval(out)
    import jsonschema

    from artalk_core.schemas import load as load_schema

    extras = read_gltf_json(out)["asset"]["extras"]
    jsonschema.validate(extras, load_schema("gltf-extras"))
    assert len(extras["audio_sha256"]) == 64
    info = extras["audio"]
    view = ev.doc.bufferViews[info["bufferView"]]
    assert info["mimeType"] == "audio/wav" and info["byteLength"] == wav.stat().st_size
    assert ev.blob[view.byteOffset:view.byteOffset + view.byteLength] == wav.read_bytes()
    with pytest.raises(InputError, match="not found"):
        export(files["motion"], output=files["root"] / "x.glb", embed_audio=files["root"] / "nope.wav")
    with pytest.raises(InputError, match="not an audio file"):
        export(files["motion"], output=files["root"] / "x.glb", embed_audio=files["shape"])
    assert not (files["root"] / "x.glb").exists()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def test_bad_inputs_leave_nothing(files, tmp_path) -> None:
    from safetensors.numpy import save_file

    good = tmp_path / "keep.glb"
    good.write_bytes(b"keep")
    nan = tmp_path / "nan.safetensors"
    m = _motion(5)
    m[3, 7] = np.nan
    save_file({"motion": m}, str(nan))
    with pytest.raises(FormatError, match="non-finite.*frame 3"):
        export(nan, output=good, flame=FLAME)
    empty = tmp_path / "empty.pt"
    torch.save(torch.zeros(0, 106), empty)
    with pytest.raises(FormatError, match="empty"):
        export(empty, output=good)
    wrong = tmp_path / "wrong_flame.pt"
    head = torch.load(FLAME, weights_only=True)["flame_model"]
    torch.save({"flame_model": {k: v for k, v in head.items() if k != "weights"}}, wrong)
    with pytest.raises(AssetError, match="missing weights"):
        export(files["motion"], output=good, flame=wrong)
    torch.save({"flame_model": dict(head, posedirs=head["posedirs"][..., :20].clone())}, wrong)
    with pytest.raises(AssetError, match="posedirs must be"):
        export(files["motion"], output=good, flame=wrong)
    with pytest.raises(OutputError, match="does not exist"):
        export(files["motion"], output=tmp_path / "no" / "such" / "dir.glb")
    with pytest.raises(InputError, match=r"\*\.glb or \*\.gltf"):
        export(files["motion"], output=tmp_path / "talk.obj")
    with pytest.raises(InputError, match="fps"):
        export(files["motion"], output=good, fps=0)
    # Never over its own input: a motion file named like the .bin of the .gltf output.
    own = tmp_path / "talk.bin"
    own.write_bytes(files["motion"].read_bytes())
    with pytest.raises(InputError, match="the .bin of -o .* is the input INPUT"):  # exit 2, as any output = input
        export(own, output=tmp_path / "talk.gltf")
    assert own.read_bytes() == files["motion"].read_bytes()
    assert good.read_bytes() == b"keep"
    assert _leftovers(tmp_path) == []


def test_failure_midway_leaves_no_partial_file(files, tmp_path, monkeypatch) -> None:
    import artalk_core.export as ex

    calls = {"n": 0}
    real = ex.frame_keys

    def failing(rig, block):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted")
        return real(rig, block)

    monkeypatch.setattr(ex, "BLOCK_FRAMES", 16)
    monkeypatch.setattr(ex, "frame_keys", failing)
    with pytest.raises(RuntimeError):
        export(files["motion"], output=tmp_path / "t.gltf", flame=FLAME)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _peak_export(src: Path, out: Path) -> int:
    tracemalloc.start()
    try:
        export(src, output=out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writer_is_blockwise_bounded_memory(tmp_path) -> None:
    """20,000 frames: the animation data is ~11.6 MB, yet the writer's peak Python memory is the
    same as for 2,000 frames (the head's static data plus one block of frames), so an hour
    (90,000 frames) is bounded the same way."""
    from artalk_core.formats.motion import MotionWriter

    peaks: dict[int, int] = {}
    for frames in (2_000, 20_000):
        src = tmp_path / f"long{frames}.motion.safetensors"
        with MotionWriter(src) as w:
            for start in range(0, frames, 5000):
                w.write(_motion(min(5000, frames - start), seed=start))
            w.finish({})
        out = tmp_path / f"long{frames}.glb"
        if not peaks:
            export(src, output=out)  # warm-up: imports and caches outside the measurement
        peaks[frames] = _peak_export(src, out)
    data = 20_000 * (NUM_TARGETS + 1 + 8) * 4
    with open(tmp_path / "long20000.glb", "rb") as f:
        magic, version, length = struct.unpack("<4sII", f.read(12))
    assert magic == b"glTF" and version == 2 and length == (tmp_path / "long20000.glb").stat().st_size > data
    assert peaks[20_000] - peaks[2_000] < data / 10, (peaks, data)
