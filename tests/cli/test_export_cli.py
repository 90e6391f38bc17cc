"""`artalk export` end to end: the command, `info` on its output, the Khronos glTF validator, and
Blender's importer (each external tool only where installed), `animate --glb`, the Python API."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_en"
FLAME = FIXTURE / "flame_synthetic.pt"
TOOLS = Path(__file__).parents[1] / "tools"
VALIDATOR = TOOLS / "node_modules" / "gltf-validator"


def _motion(frames: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, frames)[:, None]
    m = np.zeros((frames, 106), np.float32)
    m[:, :100] = np.sin(t * np.linspace(0.5, 3, 100) + np.linspace(0, 6, 100))
    m[:, 100:103] = 0.3 * np.sin(t * np.array([1.0, 2.0, 3.0]))
    m[:, 103] = 0.2 + 0.15 * np.sin(5 * t[:, 0])
    return m


@pytest.fixture(scope="module")
def motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("cli_export") / "talk.motion.safetensors"
    write_motion(path, _motion(30))
    return path


def cli(*args: object, input: bytes | None = None):
    """The `artalk` app in-process (one end-to-end subprocess run is enough)."""
    from typer.testing import CliRunner

    from artalk_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input, env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_export_command_end_to_end(artalk, motion, tmp_path) -> None:
    res = artalk("export", motion, "-o", tmp_path / "talk.glb", "--flame", FLAME, "--fps", "30")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b""
    assert "30 frames at 30 fps" in res.stderr and "136 morph targets" in res.stderr
    info = cli("info", tmp_path / "talk.glb", "--json")
    assert info.exit_code == 0, info.output
    d = json.loads(info.stdout)
    assert d["kind"] == "gltf" and d["vertices"] == 312 and d["joints"] == 5 and d["morph_targets"] == 136
    assert d["keyframes"] == 31 and d["duration_s"] == pytest.approx(1.0)
    assert d["metadata"]["created_by"] == "artalk export" and d["metadata"]["head_is_standin"] is False
    text = cli("info", tmp_path / "talk.glb")
    assert text.exit_code == 0 and "morph_targets  136" in text.stdout


def test_export_command_stdin_gltf_default_name(motion, tmp_path, monkeypatch) -> None:
    res = cli("export", "-", "-o", tmp_path / "talk.gltf", input=motion.read_bytes())
    assert res.exit_code == 0, res.output
    assert "stand-in" in res.stderr and (tmp_path / "talk.bin").is_file()
    monkeypatch.chdir(tmp_path)
    res = cli("export", motion, "-q", "--embed-audio", "no")
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == "" and (tmp_path / "talk.glb").is_file()


def _clean_error(res, code: int, *words: str) -> None:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and res.stdout == ""
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1, res.stderr
    for w in words:
        assert w.lower() in res.stderr.lower(), (w, res.stderr)


def test_export_command_errors(motion, tmp_path) -> None:
    from safetensors.numpy import save_file

    bad = _motion(4)
    bad[2, 101] = np.inf
    save_file({"motion": bad}, str(tmp_path / "bad.safetensors"))
    _clean_error(cli("export", tmp_path / "bad.safetensors", "-o", tmp_path / "x.glb"), 2, "non-finite", "frame 2")
    # Unwritable output (its folder is a file; a read-only folder is no test when running as root).
    _clean_error(cli("export", motion, "-o", tmp_path / "bad.safetensors" / "x.glb"), 4, "cannot write")
    _clean_error(cli("export", FIXTURE / "speech_16k.wav", "-o", tmp_path / "x.glb"), 2, "not a motion file")
    _clean_error(cli("export", motion, "-o", tmp_path / "x.glb", "--flame", FIXTURE / "style_motion.pt"), 3,
                 "not a FLAME head")
    _clean_error(cli("export", motion, "-o", tmp_path / "x.glb", "--embed-audio", tmp_path / "none.wav"), 2,
                 "not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


def _validate(path: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Khronos glTF validator (npm gltf-validator) cannot run")
    if not VALIDATOR.is_dir():
        pytest.skip("the Khronos glTF validator is not installed: run `npm install --prefix tests/tools` "
                    "(make test does)")
    proc = subprocess.run([node, str(TOOLS / "validate_gltf.js"), str(path)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name,kw", [
    ("flame.glb", {"flame": FLAME}),
    ("flame head #1.gltf", {"flame": FLAME}),
    ("standin.glb", {"embed_audio": FIXTURE / "speech_16k.wav"}),
])
def test_khronos_validator_finds_no_errors(motion, tmp_path, name, kw) -> None:
    from artalk_core.export import export

    out = tmp_path / name
    export(motion, output=out, **kw)
    report = _validate(out)
    issues = report["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
    assert report["info"]["animationCount"] == 1 and report["info"]["hasSkins"] and report["info"]["hasMorphTargets"]


def test_validator_catches_a_broken_file(motion, tmp_path) -> None:
    """The validator check can fail: a file whose time accessor max disagrees with its data."""
    from artalk_core.export import export
    from artalk_core.formats.gltf import read_gltf_json

    out = tmp_path / "t.gltf"
    export(motion, output=out)
    doc = read_gltf_json(out)
    time_acc = doc["animations"][0]["samplers"][0]["input"]
    doc["accessors"][time_acc]["max"] = [99.0]
    out.write_text(json.dumps(doc))
    assert _validate(out)["issues"]["numErrors"] > 0


def _head_with_four_influences(path: Path) -> Path:
    """The synthetic FLAME head with each vertex's weights cut to its 4 largest (renormalised):
    three.js, like most real-time engines, skins with 4 influences and ignores JOINTS_1."""
    import torch

    head = torch.load(FLAME, weights_only=True)
    fm = dict(head["flame_model"])
    w = fm["weights"].clone()
    small = torch.argsort(w, dim=1)[:, :1]
    w.scatter_(1, small, 0.0)
    fm["weights"] = w / w.sum(1, keepdim=True)
    torch.save({"flame_model": fm}, path)
    return path


def test_threejs_plays_the_flame_vertices(motion, tmp_path) -> None:
    """three.js (GLTFLoader + AnimationMixer, SkinnedMesh.getVertexPosition: its own morphing,
    skinning and interpolation) gives FLAME's vertices at every frame."""
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "three").is_dir():
        pytest.skip("node or three.js is not installed: run `npm install --prefix tests/tools` (make test does)")
    from artalk_core.export import TARGET_NAMES, export
    from artalk_core.flame import load_flame
    from artalk_core.formats.motion import read_motion

    head_path = _head_with_four_influences(tmp_path / "head4.pt")
    shape = tmp_path / "shape.npy"
    np.save(shape, np.linspace(-1.5, 1.5, 300).astype(np.float32))
    out = tmp_path / "talk.glb"
    export(motion, output=out, flame=head_path, shape=shape)
    times = [i / 25.0 for i in range(30)]
    proc = subprocess.run([node, str(TOOLS / "three_eval.mjs"), str(out), json.dumps(times)], capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    got = json.loads(proc.stdout)
    assert got["names"] == list(TARGET_NAMES) and got["duration"] == pytest.approx(30 / 25.0)
    from artalk_core.flame import load_shape

    ref = load_flame(head_path).vertices(read_motion(motion).data, load_shape(shape)).numpy().astype(np.float64)
    size = float(np.linalg.norm(ref[0].max(0) - ref[0].min(0)))
    err = max(float(np.abs(np.array(v) - ref[i]).max()) for i, v in enumerate(got["frames"]))
    assert err <= 1e-5 * size, (err, size)


BLENDER_SCRIPT = r"""
import json, sys
import bpy
import numpy as np

if not hasattr(np, "bool"):  # Blender 3.4's glTF importer (Debian 12) uses np.bool, gone since numpy 1.24
    np.bool = bool

src, dst = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 25, 1.0
bpy.ops.import_scene.gltf(filepath=src)
(obj,) = [o for o in scene.objects if o.type == "MESH"]
names = [k.name for k in obj.data.shape_keys.key_blocks]

def fcurves(action):
    if hasattr(action, "layers") and len(action.layers):  # Blender 4.4+ layered actions
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for fc in bag.fcurves]
    return list(action.fcurves)

curves = [(a.name, fc) for a in bpy.data.actions for fc in fcurves(a)]
# Blender 3.4's importer widens a shape key's slider range (default 0..1, which clamps the value) by
# the first keyframe's weight only (coords[1:2] where coords[1::2] was meant), so later negative or
# > 1 weights are clipped: widen each range to all its keyframes, as the importer means to.
# (docs/cli_files.md gives users the same lines)
for key in bpy.data.shape_keys:
    action = key.animation_data.action if key.animation_data else None
    for fc in fcurves(action) if action else []:
        kb = key.path_resolve(fc.data_path.rsplit(".", 1)[0])
        values = [p.co.y for p in fc.keyframe_points]
        kb.slider_min, kb.slider_max = min(kb.slider_min, *values), max(kb.slider_max, *values)
paths = sorted({fc.data_path for _, fc in curves})
keys = sorted({round(p.co.x, 4) for _, fc in curves for p in fc.keyframe_points})
out = {}
want = [0, (len(keys) - 2) // 2, len(keys) - 2]  # motion frames 0, mid, last (the last key holds)
for i in want:
    f = keys[i]
    scene.frame_set(int(f), subframe=f - int(f))
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    mesh = ev.to_mesh()
    mw = np.array(ev.matrix_world)
    co = np.array([(mw @ np.array([*v.co, 1.0]))[:3] for v in mesh.vertices])
    ev.to_mesh_clear()
    out[f"frame_{i}"] = np.stack([co[:, 0], co[:, 2], -co[:, 1]], axis=1)  # Blender Z-up -> glTF Y-up
np.savez(dst, **out)
print("ARTALK_BLENDER " + json.dumps({"shape_keys": names, "actions": len(bpy.data.actions),
                                     "paths": paths, "keys": len(keys), "frames": want}))
"""


@pytest.mark.slow
def test_blender_imports_shape_keys_action_and_motion(motion, tmp_path) -> None:
    """Blender's glTF importer (Debian's `blender` package): shape keys named after the morph
    targets, the action, and the evaluated mesh at frames 0, mid and last equal our vertices."""
    blender = shutil.which("blender")
    if blender is None:
        # `make test` installs it (scripts/sysdeps.sh --test) wherever apt-get is available
        pytest.skip("blender is not installed (Debian: apt-get install blender python3-numpy); see README, "
                    "Export to glTF")
    from artalk_core.export import TARGET_NAMES, export
    from artalk_core.flame import load_flame

    out = tmp_path / "talk.glb"
    export(motion, output=out, flame=FLAME)
    dst = tmp_path / "blender.npz"
    # --python-exit-code: an exception in the script fails Blender (it exits 0 otherwise)
    proc = subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr",
                           BLENDER_SCRIPT, "--", str(out), str(dst)], capture_output=True, timeout=600)
    text = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:] + proc.stderr.decode(errors="replace")[-3000:]
    line = next(ln for ln in text.splitlines() if ln.startswith("ARTALK_BLENDER "))
    report = json.loads(line.split(" ", 1)[1])
    assert report["shape_keys"][1:] == list(TARGET_NAMES)
    assert report["actions"] >= 1 and report["keys"] == 31
    assert any("key_blocks" in p for p in report["paths"]) and any("pose.bones" in p for p in report["paths"])
    from artalk_core.formats.motion import read_motion

    head = load_flame(FLAME)
    ref = head.vertices(read_motion(motion).data).numpy().astype(np.float64)
    size = float(np.linalg.norm(ref[0].max(0) - ref[0].min(0)))
    got = np.load(dst)
    order = _blender_order(got[f"frame_{report['frames'][0]}"], ref[report["frames"][0]], head.faces)
    for i in report["frames"]:
        v = got[f"frame_{i}"]
        # Blender evaluates in float32 through its own armature and shape key code.
        assert np.abs(v - ref[i][order]).max() <= 1e-4 * size, (i, np.abs(v - ref[i][order]).max(), size)


def _blender_order(blender: np.ndarray, ref: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Which reference vertex each Blender vertex is: the same order when Blender keeps every
    vertex, the referenced ones when it drops unused vertices, else the nearest at frame 0."""
    if blender.shape == ref.shape:
        return np.arange(len(ref))
    used = np.unique(faces)
    if blender.shape[0] == len(used):
        return used
    from scipy.spatial import cKDTree

    return cKDTree(ref).query(blender)[1]


def test_python_api_export(motion, tmp_path) -> None:
    from artalk_core.api import Animator
    from artalk_core.formats.gltf import read_gltf_json
    from artalk_core.formats.motion import read_motion

    anim = Animator(engine="energy", flame=FLAME)
    res = anim.export(read_motion(motion), tmp_path / "api.glb")
    assert res.frames == 30 and not res.head_is_standin and res.output.is_file()
    res2 = anim.export(motion, tmp_path / "api2.gltf", fps=50)
    assert res2.bin == tmp_path / "api2.bin" and res2.duration == pytest.approx(0.6)
    assert read_gltf_json(tmp_path / "api.glb")["asset"]["extras"]["frames"] == 30


def test_animate_glb_exports_the_generated_motion(tmp_path, monkeypatch) -> None:
    """`animate --glb`: the motion animate made, exported with the same head (video step stubbed)."""
    import artalk_core.render.stage as rendering
    from artalk_core.animate import animate
    from artalk_core.errors import InputError
    from artalk_core.formats.gltf import read_gltf_json
    from artalk_core.render.stage import RenderResult

    def fake_render(input, *, output, **kw):
        Path(output).write_bytes(b"video")
        return RenderResult(output=Path(output), frames=0, head="stand-in", head_is_standin=True)

    monkeypatch.setattr(rendering, "render", fake_render)
    res = animate(FIXTURE / "speech_16k.wav", engine="energy", output=tmp_path / "v.mp4", glb=tmp_path / "v.glb",
                  flame=FLAME, keep=tmp_path / "keep")
    assert res.glb == tmp_path / "v.glb"
    assert res.glb is not None
    extras = read_gltf_json(res.glb)["asset"]["extras"]
    from artalk_core.fileio import sha256_file

    assert extras["motion_sha256"] == sha256_file(res.files["motion"])
    assert extras["head_is_standin"] is False
    with pytest.raises(InputError, match="glb"):
        animate(FIXTURE / "speech_16k.wav", engine="energy", output=tmp_path / "w.mp4", glb=tmp_path / "w.fbx")

