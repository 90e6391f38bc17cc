"""Every output and side file against every input (issue 18.6), and `-o DIR/` frames that never
replace what the run did not make (issue 18.7). Each refusal: exit 2, one line, before any work,
nothing touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"


@pytest.fixture(scope="module")
def motion(tmp_path_factory) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("motion") / "m.motion.safetensors"
    rng = np.random.default_rng(0)
    write_motion(path, (0.1 * rng.standard_normal((12, 106))).astype(np.float32))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cases(tmp: Path, motion: Path) -> list[list[object]]:
    """Commands whose output (or side file) is one of their inputs, each spelled another way."""
    shutil.copy(WAV, tmp / "v.glb")  # speech that happens to be named like the export
    shutil.copy(WAV, tmp / "x.bin")
    shutil.copy(motion, tmp / "m.safetensors")
    os.link(tmp / "m.safetensors", tmp / "hard.glb")  # a hard link to the motion
    shutil.copy(FIXTURE / "flame_synthetic.pt", tmp / "o.glb")  # a FLAME head with an odd name
    np.save(tmp / "shape.npy", np.zeros(300, np.float32))
    shutil.copy(tmp / "shape.npy", tmp / "s.bin")
    (tmp / "assets" / "style_motion").mkdir(parents=True)
    shutil.copy(FIXTURE / "style_motion.pt", tmp / "assets" / "style_motion" / "calm.pt")
    (tmp / "work").mkdir()
    (tmp / "work" / "tts.wav").write_text("hello there")  # the text of --text @..., where --keep writes its WAV
    (tmp / "frames").mkdir()
    shutil.copy(motion, tmp / "frames" / "frame_000001.png")  # the motion, stored where a frame set lives
    (tmp / "frames" / "frames.json").write_text('{"files": ["frame_000001.png"]}')
    a = tmp / "assets"
    return [
        ["export", tmp / "m.safetensors", "-o", tmp / "v.glb", "--embed-audio", tmp / "v.glb"],
        ["export", tmp / "m.safetensors", "-o", tmp / "x.gltf", "--embed-audio", tmp / "x.bin"],
        ["export", tmp / "m.safetensors", "-o", tmp / "s.gltf", "--shape", tmp / "s.bin"],
        ["export", tmp / "m.safetensors", "-o", tmp / "hard.glb"],
        ["export", tmp / "m.safetensors", "-o", tmp / "o.glb", "--flame", tmp / "o.glb"],
        ["animate", tmp / "v.glb", "-e", "energy", "--glb", tmp / "v.glb", "-o", tmp / "a.mp4"],
        ["animate", WAV, "-e", "energy", "--glb", tmp / "x.gltf", "--shape", tmp / "x.bin", "-o", tmp / "a.mp4"],
        ["animate", "--text", f"@{tmp / 'work' / 'tts.wav'}", "-e", "energy", "--keep", tmp / "work",
         "-o", tmp / "a.mp4"],
        ["generate", WAV, "-e", "energy", "-s", "calm", "--assets", a, "-o", a / "style_motion" / "calm.pt"],
        ["generate", WAV, "-e", "energy", "-s", a / "style_motion" / "calm.pt", "-o", a / "style_motion" / "calm.pt"],
        ["render", tmp / "frames" / "frame_000001.png", "-o", f"{tmp / 'frames'}/", "--size", "32"],
    ]


def test_every_output_and_side_file_against_every_input(artalk, motion, tmp_path) -> None:
    cases = _cases(tmp_path, motion)
    before = _snapshot(tmp_path)
    for args in cases:
        res = artalk(*args, "--assets", tmp_path / "assets") if "--assets" not in args else artalk(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert_clean_error(res, "writing it would destroy that file")
        assert _snapshot(tmp_path) == before, args  # nothing made, nothing replaced


def test_default_asset_files_are_inputs_too(artalk, tiny_assets, tmp_path) -> None:
    """`-o` onto the checkpoint or the FLAME head found in the asset folder is refused too."""
    assets = tmp_path / "assets"
    shutil.copytree(tiny_assets, assets)
    shutil.copy(FIXTURE / "flame_synthetic.pt", assets / "FLAME_with_eye.pt")
    before = _snapshot(assets)
    res = artalk("generate", WAV, "--assets", assets, "-o", assets / "ARTalk_wav2vec.pt")
    assert res.returncode == 2 and "--checkpoint" in res.stderr, res.stderr
    res = artalk("smooth", assets / "style_motion" / "tiny_0.pt", "-o", assets / "style_motion" / "tiny_0.pt",
                 "--force")
    assert res.returncode == 2, res.stderr
    assert _snapshot(assets) == before


# ---- -o DIR/: frames never replace what the run did not make ----

def test_frames_folder_keeps_every_file_the_run_did_not_make(artalk, motion, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_of_mind.png").write_bytes(b"my picture")
    res = artalk("render", motion, "-o", f"{out}/", "--size", "32", "--assets", tmp_path)
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "frame_of_mind.png", "--force")
    assert [p.name for p in out.iterdir()] == ["frame_of_mind.png"]
    res = artalk("render", motion, "-o", f"{out}/", "--size", "32", "--force", "--assets", tmp_path)
    assert res.returncode == 0, res.stderr
    assert (out / "frame_of_mind.png").read_bytes() == b"my picture"
    assert len(list(out.glob("frame_0*.png"))) == 12
    # a rerun replaces exactly its own previous frames (no --force needed for those) ...
    import torch

    from artalk_core.formats.motion import read_motion

    shorter = tmp_path / "short.pt"
    torch.save(torch.from_numpy(read_motion(motion).data[:5].copy()), shorter)
    os.remove(out / "frame_of_mind.png")
    res = artalk("render", shorter, "-o", f"{out}/", "--size", "32", "--assets", tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(5)] + ["frames.json"]


def test_motion_stored_as_a_frame_name_survives(artalk, motion, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(motion, out / "frame_000009.png")
    for extra in ([], ["--force"]):
        res = artalk("render", out / "frame_000009.png", "-o", f"{out}/", "--size", "32", "--assets", tmp_path,
                     *extra)
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, "frame_000009.png")
        assert (out / "frame_000009.png").read_bytes() == motion.read_bytes()
        assert [p.name for p in out.iterdir()] == ["frame_000009.png"]


def test_keep_names_follow_any_style_value(tmp_path) -> None:
    """--keep file names are known before any work for every style value the API takes (the web
    app passes a Style object)."""
    from artalk_core.styles import Style, style_label

    assert style_label(None) == style_label("None") == "default"
    assert style_label("happy_1") == "happy_1" and style_label(tmp_path / "s.pt") == str(tmp_path / "s.pt")
    assert style_label(Style(motion=np.zeros((50, 106), np.float32), label="upload", sha256="")) == "upload"
    assert style_label(np.zeros((50, 106), np.float32)) == "array"
