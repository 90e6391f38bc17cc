"""The smaller holes of issue 18.17: literal markup in a note, terminal escapes passed through by
`info`, options ignored or misreported (`--avatar` with mesh options, `--fps nan`), a shape of 1e20
rendered as garbage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"
GAGA = FIXTURE.parent / "tiny_gaga"
ESC = "\x1b[2J\x1b[31m"


@pytest.fixture(scope="module")
def motion(tmp_path_factory) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("motion") / "m.motion.safetensors"
    write_motion(path, np.zeros((4, 106), np.float32))
    return path


def test_export_stand_in_note_is_a_note_not_markup(artalk, motion, tmp_path) -> None:
    res = artalk("export", motion, "-o", tmp_path / "t.glb", "--assets", tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[yellow]" not in res.stderr and "[/]" not in res.stderr
    assert "note: no FLAME_with_eye.pt found: exported the stand-in head" in res.stderr


def test_info_shows_control_characters_escaped(artalk, tmp_path) -> None:
    import torch

    from artalk_core.formats.motion import write_motion

    write_motion(tmp_path / "m.safetensors", np.zeros((2, 106), np.float32),
                 {"engine": f"x{ESC}red\u202eevil\nforged line"})
    res = artalk("info", tmp_path / "m.safetensors")
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode()
    assert "\x1b" not in text and "\u202e" not in text
    assert r"x\x1b[2J\x1b[31mred\u202eevil\x0aforged line" in text
    entry = {"image": np.zeros((3, 512, 512), np.float32)}
    torch.save({f"a{ESC}.jpg": entry, "b.jpg": entry}, tmp_path / "tracked.pt")
    res = artalk("info", tmp_path / "tracked.pt")
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout.decode() and r"a\x1b[2J\x1b[31m.jpg" in res.stdout.decode()
    res = artalk("info", tmp_path / f"missing{ESC}.wav")  # error lines too
    assert "\x1b" not in res.stderr and r"missing\x1b[2J" in res.stderr


def test_fps_that_is_not_a_finite_number(artalk, motion, tmp_path) -> None:
    for value, words in (("nan", "--fps must be a finite number"), ("inf", "--fps must be a finite number"),
                         ("0", "--fps must be from 1 to 1000"), ("1001", "--fps must be from 1 to 1000"),
                         # far below 1: the duration overflowed float32 (unexpected ValueError) or
                         # lasted 1e31 s
                         ("1e-38", "--fps must be from 1 to 1000"), ("1e-30", "--fps must be from 1 to 1000"),
                         ("0.5", "--fps must be from 1 to 1000")):
        res = artalk("export", motion, "--fps", value, "-o", tmp_path / "t.glb")
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, words)
        assert "less than or equal" not in res.stderr
    assert not (tmp_path / "t.glb").exists()


def test_a_huge_shape_is_refused_without_numpy_warnings(artalk, motion, tmp_path) -> None:
    for value in (1e20, 1e39, -500.0):
        np.save(tmp_path / "shape.npy", np.full(300, value, np.float64))
        for args in (["render", motion, "-o", tmp_path / "v.mp4", "--size", "32"],
                     ["export", motion, "-o", tmp_path / "t.glb"]):
            res = artalk(*args, "--shape", tmp_path / "shape.npy", "--flame", FIXTURE / "flame_synthetic.pt")
            assert res.returncode == 2, (value, res.stderr)
            assert_clean_error(res, "FLAME shape values", "at most 100")
            assert "Warning" not in res.stderr
    np.save(tmp_path / "shape.npy", np.full(300, 2.5, np.float32))  # a plausible head renders
    res = artalk("export", motion, "-o", tmp_path / "t.glb", "--shape", tmp_path / "shape.npy",
                 "--flame", FIXTURE / "flame_synthetic.pt")
    assert res.returncode == 0, res.stderr


AVATAR = ["--avatar", "fix.jpg", "--tracked", GAGA / "tracked.pt", "--avatar-checkpoint", GAGA / "weights.safetensors",
          "--avatar-config", GAGA / "model_config.json", "--flame", GAGA / "flame_synthetic_5023.pt", "--device", "cpu"]


@pytest.mark.parametrize(("extra", "named"), [
    (["--color", "#ff0000"], "--color"),
    (["--background", "black"], "--background"),
    (["--size", "256"], "--size"),
    (["--color", "1,2,3", "--background", "#000"], "--background, --color apply"),
])
def test_avatar_refuses_mesh_only_options_naming_them(artalk, motion, tmp_path, extra, named) -> None:
    res = artalk("render", motion, *AVATAR, *extra, "-o", tmp_path / "a.mp4")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, named, "to the mesh only")
    res = artalk("animate", WAV, "-e", "energy", *AVATAR, *extra, "-o", tmp_path / "a.mp4")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, named, "to the mesh only")
    assert not list(tmp_path.iterdir())


def test_avatar_takes_the_mesh_options_at_their_defaults(motion) -> None:
    from artalk_core.errors import OptionsError
    from artalk_core.options import AvatarOptions, RenderOptions

    avatar = AvatarOptions("12.jpg")
    RenderOptions(color="142,179,247", background="white", avatar=avatar)  # the defaults, spelt otherwise
    RenderOptions(color="#8eb3f7", background="#ffffff", size=512, avatar=avatar)
    with pytest.raises(OptionsError, match="--size, --color apply to the mesh only"):
        RenderOptions(color="red", size=64, avatar=avatar)
