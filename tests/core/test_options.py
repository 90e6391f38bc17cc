"""The options model: each group checks its fields when made, flat mappings round-trip, and the
front ends (batch columns, animate's flags) are derived from the same fields."""

from __future__ import annotations

import dataclasses

import pytest

from artalk_core.errors import InputError, OptionsError
from artalk_core.options import (
    GROUPS,
    AvatarOptions,
    ModelOptions,
    MotionOptions,
    RenderOptions,
    flat_fields,
    from_flat,
    to_flat,
)


@pytest.mark.parametrize("make, words", [
    (lambda: ModelOptions(precision="fp8"), "unknown precision 'fp8'"),
    (lambda: ModelOptions(device="gpu"), "unknown device 'gpu'"),
    (lambda: MotionOptions(clip_length=-1), "--clip-length must be >= 0"),
    (lambda: MotionOptions(style_start=1.5), "--style-start must be a whole number"),
    (lambda: MotionOptions(seed=2**32), "--seed must be a whole number between 0 and 4294967295"),
    (lambda: MotionOptions(fix_pose="yes"), "--fix-pose must be true or false"),
    (lambda: RenderOptions(size=8), "--size must be between 16 and 4096"),
    (lambda: RenderOptions(renderer="vulkan"), "unknown renderer 'vulkan'"),
    (lambda: RenderOptions(color="blurple"), "cannot read --color 'blurple'"),
    (lambda: RenderOptions(background=(0, 0, 300)), "--background must be three 0-255 integers"),
    (lambda: AvatarOptions("12.jpg", avatar_noise="loud"), "unknown --avatar-noise 'loud'"),
    (lambda: AvatarOptions(""), "--avatar needs a name"),
    (lambda: RenderOptions(shape="me.npy", avatar=AvatarOptions("12.jpg")), "--shape applies to the mesh only"),
])
def test_each_group_checks_its_fields_when_made(make, words: str) -> None:
    with pytest.raises(OptionsError, match=words) as info:
        make()
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)  # exit 2, and a ValueError


def test_the_defaults_are_valid_and_frozen() -> None:
    for group in (ModelOptions, MotionOptions, RenderOptions):
        obj = group()
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.seed = 1  # type: ignore[attr-defined]
    # the mesh look's defaults, spelt as a user would, are still the defaults: an avatar takes them
    RenderOptions(background="white", color="142,179,247", avatar=AvatarOptions("12.jpg"))


def test_flat_names_round_trip() -> None:
    flat = {"assets": "a", "device": "cpu", "precision": "bf16", "style": "happy_1", "engine": "energy",
            "clip_length": 0, "fix_pose": True, "seed": 7, "flame": "f.pt", "avatar": "12.jpg",
            "avatar_noise": "none", "watermark": "logo.png"}
    model, motion, look = from_flat(flat)
    assert (model.device, motion.engine, motion.seed, look.flame) == ("cpu", "energy", 7, "f.pt")
    assert look.avatar == AvatarOptions("12.jpg", avatar_noise="none", watermark="logo.png", seed=7)  # one --seed
    back = to_flat(model, motion, look)
    assert {k: back[k] for k in flat} == flat
    assert set(back) == set(flat_fields())
    with pytest.raises(TypeError, match="sizee"):
        from_flat({"sizee": 3})


def test_every_field_name_is_one_flag() -> None:
    names = [f.name for g in GROUPS for f in dataclasses.fields(g) if not (g is RenderOptions and f.name == "avatar")]
    assert sorted(set(names)) == sorted(set(flat_fields()))
    assert [n for n in names if names.count(n) > 1] == ["seed", "seed"]  # the engine's and the avatar noise's


def test_batch_columns_are_the_option_fields() -> None:
    from artalk_core.animate import AnimateOptions
    from artalk_core.batch.jobs import BATCH_LEVEL, COLUMNS, ROW_FIELDS

    assert set(COLUMNS) == (set(AnimateOptions.flat_names()) - BATCH_LEVEL) | set(ROW_FIELDS)
    assert COLUMNS["audio"] == COLUMNS["flame"] == COLUMNS["watermark"] == "path"
    assert COLUMNS["size"] == COLUMNS["seed"] == COLUMNS["clip_length"] == "int"
    assert COLUMNS["fix_pose"] == "bool" and COLUMNS["style"] == COLUMNS["color"] == "str"


def test_a_row_is_checked_by_the_options(tmp_path) -> None:
    from artalk_core.batch.jobs import load_jobs

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    rows = [{"audio": "a.wav", "size": 8}, {"audio": "a.wav", "color": "nope"},
            {"audio": "a.wav", "appearance": "12.jpg", "size": 64},
            {"audio": "a.wav", "appearance": "12.jpg"}]
    jobs = load_jobs(rows, base=tmp_path, defaults={"size": 64})
    assert "--size must be between 16 and 4096" in (jobs[0].error or "")
    assert "cannot read --color 'nope'" in (jobs[1].error or "")
    assert "--size applies to the mesh only" in (jobs[2].error or "")  # the row itself asks for it
    assert jobs[3].error is None and "size" not in jobs[3].options  # the batch's mesh size is for mesh rows
