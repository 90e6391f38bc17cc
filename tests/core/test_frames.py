"""PNG frame folders (`-o DIR/`): lossless, all or nothing, replacing the previous frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from artalk_core.errors import InputError, OutputError
from artalk_core.frames import is_frames_dir, read_frame_png, write_frames


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
    assert json.loads((tmp_path / "out" / "frames.json").read_text()) == {"tool": "test"}


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
    res = render(tmp_path / "m.pt", output=f"{tmp_path / 'png'}/", size=32, assets=tmp_path / "none", device="cpu")
    assert res.frames == 3
    assert read_frame_png(tmp_path / "png" / "frame_000002.png").shape == (32, 32, 3)
    meta = json.loads((tmp_path / "png" / "frames.json").read_text())
    assert meta["head_is_standin"] == "true"
    with pytest.raises(InputError, match="PNG frames only"):
        render(tmp_path / "m.pt", output=f"{tmp_path / 'png2'}/", size=32, assets=tmp_path / "none",
               verts=tmp_path / "v.h5")
