"""`render` takes motion data (a Motion or an array) as well as a file: the same vertices and the
same recorded input hash, with no file in between."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artalk_core.errors import FormatError
from artalk_core.formats.motion import Motion, write_motion
from artalk_core.formats.vertices import read_vertices
from artalk_core.render.stage import render


def vertices(path: Path) -> tuple[np.ndarray, dict]:
    with read_vertices(path) as vf:
        return np.stack(list(vf)), dict(vf.meta)


def test_motion_data_renders_like_its_file(tmp_path: Path) -> None:
    data = np.cumsum(np.random.default_rng(1).standard_normal((30, 106)).astype(np.float32) * 0.01, axis=0)
    meta = {"engine": "energy", "smoothed": "true"}
    write_motion(tmp_path / "m.safetensors", data, meta)
    render(tmp_path / "m.safetensors", output=tmp_path / "file.h5")
    render(Motion(data=data, meta=meta), output=tmp_path / "motion.h5")
    render(data, output=tmp_path / "array.h5")
    want, want_meta = vertices(tmp_path / "file.h5")
    got, got_meta = vertices(tmp_path / "motion.h5")
    np.testing.assert_array_equal(got, want)
    assert got_meta["motion_sha256"] == want_meta["motion_sha256"]  # the hash its file has
    arr, arr_meta = vertices(tmp_path / "array.h5")
    np.testing.assert_array_equal(arr, want)
    assert arr_meta["motion_sha256"] not in ("", want_meta["motion_sha256"])  # no metadata: another file


def test_bad_motion_data_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = np.zeros((5, 106), np.float32)
    bad[2, 7] = np.nan
    with pytest.raises(FormatError, match="non-finite"):
        render(bad, output=tmp_path / "x.h5")
    with pytest.raises(FormatError, match="106"):
        render(np.zeros((5, 100), np.float32), output=tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []
