"""`animate` takes a typed options object whose fields are the `artalk animate` flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from artalk_core import animate as animate_mod
from artalk_core.animate import AnimateOptions, animate
from artalk_core.constants import IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import InputError


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, AnimateOptions, Path, Any]]:
    """Calls of the chain (work folder, options, output, progress) instead of running it."""
    calls: list[tuple[Path, AnimateOptions, Path, Any]] = []

    def fake_run(work: Path, opts: AnimateOptions, out: Path, stem: str, progress: Any) -> Any:
        calls.append((work, opts, out, progress))
        return "done"

    monkeypatch.setattr(animate_mod, "_run", fake_run)
    return calls


def test_every_animate_flag_is_an_option() -> None:
    import typer.main

    from artalk_cli.main import app

    command = typer.main.get_command(app).commands["animate"]  # type: ignore[attr-defined]
    flags = {p.name for p in command.params} - {"quiet", "debug"}
    assert flags == set(AnimateOptions.flat_names())


def test_keywords_become_options(captured, tmp_path: Path) -> None:
    progress = print
    assert animate("speech.wav", style="natural_0", size=64, fix_pose=True, keep=tmp_path / "k",
                   progress=progress) == "done"
    work, opts, out, got_progress = captured[0]
    assert opts == AnimateOptions.from_flat(audio="speech.wav", style="natural_0", size=64, fix_pose=True,
                                            keep=tmp_path / "k")
    assert (opts.motion.style, opts.motion.fix_pose, opts.look.size) == ("natural_0", True, 64)
    assert work == tmp_path / "k" and work.is_dir() and got_progress is progress
    assert out == Path("speech_natural_0_mesh.mp4")  # the reference's name
    assert opts.look.size != AnimateOptions().look.size == IMAGE_SIZE and AnimateOptions().look.color == MESH_COLOR


def test_an_options_object_with_overrides(captured) -> None:
    base = AnimateOptions.from_flat(text="hello", engine="energy", output="x.mp4")
    animate(base, size=32)
    opts = captured[0][1]
    assert opts == dataclasses.replace(base, look=dataclasses.replace(base.look, size=32))
    assert opts.text == "hello" and captured[0][2] == Path("x.mp4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.look.size = 5  # type: ignore[misc]


def test_bad_options_are_refused(captured) -> None:
    with pytest.raises(TypeError, match="sizee"):
        animate("a.wav", sizee=3)
    with pytest.raises(InputError, match="--text"):
        animate()
    with pytest.raises(InputError, match="not both"):
        animate(AnimateOptions(audio="a.wav", text="hi"))
    with pytest.raises(InputError, match="--size applies to the mesh only"):
        animate("a.wav", avatar="12.jpg", size=64)
    assert captured == []
