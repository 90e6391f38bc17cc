"""PNG frame folders (`-o DIR/`): lossless, all or nothing, replacing the previous frames and
nothing else (issue 18.7: never delete what the run did not make)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from artalk_core.errors import InputError, OutputError
from artalk_core.frames import is_frames_dir, read_frame_png, write_frames
from artalk_core.options import ModelOptions, RenderOptions


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_lossless_frames_and_metadata(tmp_path: Path) -> None:
    frames = _frames(3)
    assert is_frames_dir(f"{tmp_path}/out/") and not is_frames_dir(tmp_path / "out.mp4")
    assert write_frames(tmp_path / "out", iter(frames), meta={"tool": "test"}) == 3
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png", "frames.json"]
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(read_frame_png(tmp_path / "out" / f"frame_{i:06d}.png"), f)
    assert json.loads((tmp_path / "out" / "frames.json").read_text()) == {
        "tool": "test", "files": ["frame_000000.png", "frame_000001.png", "frame_000002.png"]}


def test_a_failure_leaves_the_folder_as_it_was_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    write_frames(tmp_path / "out", iter(_frames(3)))

    def broken() -> Iterator[np.ndarray]:
        yield _frames(1, seed=1)[0]
        raise InputError("motion went bad")

    with pytest.raises(InputError, match="went bad"):
        write_frames(tmp_path / "out", broken())
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
    write_frames(tmp_path / "out", iter(_frames(2, seed=2)))
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 2  # the old third frame is gone
    with pytest.raises(InputError, match="uint8"):
        write_frames(tmp_path / "x", iter([np.zeros((4, 4, 3), np.float32)]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        write_frames(tmp_path / "file", iter(_frames(1)))


def test_mesh_render_to_a_frames_folder(tmp_path: Path) -> None:
    import torch

    from artalk_core.render.stage import render

    torch.save(torch.zeros(3, 106), tmp_path / "m.pt")
    res = render(tmp_path / "m.pt", output=f"{tmp_path / 'png'}/", look=RenderOptions(size=32), model=ModelOptions(assets=tmp_path / "none", device="cpu"))
    assert res.frames == 3
    assert read_frame_png(tmp_path / "png" / "frame_000002.png").shape == (32, 32, 3)
    meta = json.loads((tmp_path / "png" / "frames.json").read_text())
    assert meta["head_is_standin"] == "true"
    with pytest.raises(InputError, match="PNG frames only"):
        render(tmp_path / "m.pt", output=f"{tmp_path / 'png2'}/", verts=tmp_path / "v.h5", look=RenderOptions(size=32), model=ModelOptions(assets=tmp_path / "none"))


def test_only_files_a_previous_frames_set_listed_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_frames(out, iter(_frames(5)))
    mine = out / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(InputError, match="notes.txt.*--force"):  # a folder with other files: refused
        write_frames(out, iter(_frames(2)))
    assert len(list(out.glob("frame_*.png"))) == 5 and mine.read_text() == "mine"
    assert write_frames(out, iter(_frames(2, seed=3)), force=True) == 2  # --force: beside them, kept
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "frame_000001.png", "frames.json",
                                                      "notes.txt"]
    np.testing.assert_array_equal(read_frame_png(out / "frame_000001.png"), _frames(2, seed=3)[1])


def test_a_users_frame_named_files_are_never_deleted_or_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_of_mind.png").write_bytes(b"a picture")
    (out / "frame_000009.png").write_bytes(b"a motion file")
    for force in (False, True):  # frame_000009.png would be overwritten: refused even with --force
        with pytest.raises(InputError, match="frame_000009.png"):
            write_frames(out, iter(_frames(12)), force=force)
    (out / "frame_000009.png").unlink()
    write_frames(out, iter(_frames(12)), force=True)
    assert (out / "frame_of_mind.png").read_bytes() == b"a picture"
    # a crafted manifest cannot reach other files
    (tmp_path / "precious.txt").write_text("x")
    manifest = json.loads((out / "frames.json").read_text())
    manifest["files"] += ["../precious.txt", "frame_of_mind.png", "/etc/passwd"]
    (out / "frames.json").write_text(json.dumps(manifest))
    write_frames(out, iter(_frames(1)), force=True)
    assert (tmp_path / "precious.txt").read_text() == "x" and (out / "frame_of_mind.png").is_file()
    assert sorted(p.name for p in out.glob("frame_0*.png")) == ["frame_000000.png"]


def test_a_foreign_frames_json_is_not_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "frames.json").write_text('{"mine": true}')
    with pytest.raises(InputError, match="frames.json"):
        write_frames(out, iter(_frames(1)), force=True)
    assert json.loads((out / "frames.json").read_text()) == {"mine": True}
