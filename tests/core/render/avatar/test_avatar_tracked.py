"""tracked.pt loading: the allow-list unpickler, entry validation, names, single-entry files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.errors import AssetError, FormatError, InputError
from artalk_core.render.avatar.tracked import TRACKED_SHAPES, load_tracked, select_avatar


def _entry(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    entry = {k: rng.random(shape, dtype=np.float32) for k, shape in TRACKED_SHAPES.items()}
    angle = float(rng.random())  # a camera pose: a rotation about y, then a translation
    c, s = np.cos(angle), np.sin(angle)
    entry["transform_matrix"][:, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    return entry


def test_fixture_tracked_loads_with_numpy_1_pickle_names(gaga_dir: Path) -> None:
    raw = (gaga_dir / "tracked.pt").read_bytes()
    assert b"numpy.core.multiarray" in raw  # written as numpy 1.x writes it
    entries = load_tracked(gaga_dir / "tracked.pt")
    assert list(entries) == ["fix.jpg"]
    e = entries["fix.jpg"]
    assert e.image.shape == (3, 512, 512) and e.image.dtype == np.float32
    assert e.transform_matrix.shape == (3, 4) and e.shapecode.shape == (300,)
    assert len(e.sha256) == 64


def test_numpy_and_tensor_entries_and_a_single_entry_file(tmp_path: Path) -> None:
    data: dict[str, Any] = {"a.jpg": _entry(0), "b.jpg": {k: torch.from_numpy(v) for k, v in _entry(1).items()}}
    data["a.jpg"]["vis_image"] = np.zeros((3, 4, 4), np.float32)  # extra keys are ignored
    torch.save(data, tmp_path / "tracked.pt")
    entries = load_tracked(tmp_path / "tracked.pt")
    assert list(entries) == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(entries["b.jpg"].image, data["b.jpg"]["image"].numpy())
    # the hash depends on the arrays only
    torch.save(_entry(0), tmp_path / "me.pt")
    single = load_tracked(tmp_path / "me.pt")
    assert list(single) == ["me.pt"]
    assert single["me.pt"].sha256 == entries["a.jpg"].sha256 != entries["b.jpg"].sha256


class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))

    marker = ""


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    payload = {"x.jpg": {**_entry(0), "bbox": _Evil()}}
    torch.save(payload, tmp_path / "evil.pt")  # torch.save pickles with the standard pickler
    with pytest.raises(FormatError, match="tensors and numpy arrays"):
        load_tracked(tmp_path / "evil.pt")
    assert not marker.exists()
    # a plain (non-zip) pickle as well
    with open(tmp_path / "evil2.pt", "wb") as f:
        pickle.dump(payload, f)
    with pytest.raises(FormatError):
        load_tracked(tmp_path / "evil2.pt")
    assert not marker.exists()


def test_bad_entries_name_key_and_shape(tmp_path: Path) -> None:
    bad = _entry(0)
    bad["transform_matrix"] = np.zeros((4, 4), np.float32)
    torch.save({"x.jpg": bad}, tmp_path / "t.pt")
    with pytest.raises(InputError, match=r"'transform_matrix' has shape \[4, 4\], expected \[3, 4\]"):
        load_tracked(tmp_path / "t.pt")["x.jpg"]
    nan = _entry(0)
    nan["shapecode"][3] = np.nan
    torch.save({"x.jpg": nan}, tmp_path / "n.pt")
    with pytest.raises(InputError, match="'shapecode' contains NaN"):
        load_tracked(tmp_path / "n.pt")["x.jpg"]
    missing = _entry(0)
    del missing["bbox"]
    torch.save({"x.jpg": missing}, tmp_path / "m.pt")
    with pytest.raises(InputError, match="lacks bbox"):
        load_tracked(tmp_path / "m.pt")["x.jpg"]
    with pytest.raises(AssetError, match="not found"):
        load_tracked(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(FormatError):
        load_tracked(tmp_path / "junk.pt")


def test_unknown_avatar_lists_closest_names(tmp_path: Path) -> None:
    torch.save({"12.jpg": _entry(0), "13.jpg": _entry(1), "mona.png": _entry(2)}, tmp_path / "t.pt")
    entries = load_tracked(tmp_path / "t.pt")
    assert select_avatar(entries, "13.jpg").name == "13.jpg"
    with pytest.raises(InputError, match=r"unknown avatar '12.jgp'.*closest: 12\.jpg"):
        select_avatar(entries, "12.jgp")


def test_avatar_given_as_a_single_entry_file(tmp_path: Path) -> None:
    from artalk_core.render.avatar.renderer import resolve_entry

    torch.save(_entry(4), tmp_path / "me.pt")
    entry, source = resolve_entry(str(tmp_path / "me.pt"))
    assert entry.name == "me.pt" and source == tmp_path / "me.pt"
    torch.save({"a.jpg": _entry(0), "b.jpg": _entry(1)}, tmp_path / "two.pt")
    with pytest.raises(InputError, match="holds 2 avatars"):
        resolve_entry(str(tmp_path / "two.pt"))
    entry, _ = resolve_entry("b.jpg", tracked=tmp_path / "two.pt")
    assert entry.name == "b.jpg"


def test_one_bad_entry_fails_only_the_avatar_that_uses_it(tmp_path: Path) -> None:
    """Entries are checked when used (issue 18.17): a broken one does not block the others."""
    torch.save({"good.jpg": _entry(0), "bad.jpg": {"image": np.zeros(3)}, "odd.jpg": 5}, tmp_path / "t.pt")
    entries = load_tracked(tmp_path / "t.pt")
    assert list(entries) == ["good.jpg", "bad.jpg", "odd.jpg"] and "bad.jpg" in entries
    assert select_avatar(entries, "good.jpg").name == "good.jpg"
    with pytest.raises(InputError, match="'bad.jpg'.*lacks"):
        select_avatar(entries, "bad.jpg")
    with pytest.raises(FormatError, match="'odd.jpg' is a int"):
        entries["odd.jpg"]


@pytest.mark.parametrize(("key", "value", "words"), [
    ("image", lambda e: e["image"] * 255, r"'image' values range over \[0\S*, 255\]; a tracked image is in \[0, 1\]"),
    ("image", lambda e: e["image"] - 0.5, r"'image' values range over \[-0.4\d*, 0.5\]"),
    ("transform_matrix", lambda e: np.zeros((3, 4), np.float32), "does not hold a rotation"),
    ("transform_matrix", lambda e: e["transform_matrix"] * 2, "does not hold a rotation"),
    ("shapecode", lambda e: e["shapecode"] * 1e20, r"'shapecode' holds \S+e\+\d+; FLAME shape values are at most 100"),
])
def test_values_the_renderer_relies_on_are_checked(tmp_path: Path, key: str, value: Any, words: str) -> None:
    entry = _entry(0)
    entry[key] = value(entry).astype(np.float32)
    torch.save({"x.jpg": entry}, tmp_path / "t.pt")
    with pytest.raises(InputError, match=words):
        load_tracked(tmp_path / "t.pt")["x.jpg"]
