"""`artalk_core.eval` against hostile inputs: index lists of any integer type, pipes read once, folders
holding files that are not clips, and one bad clip found before anything is computed."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from artalk_core.errors import AssetError, FormatError, InputError
from artalk_core.eval import evaluate, load_masks
from tests.cli.test_hostile import Fifo
from tests.core.test_eval import FIXTURES, FLAME_5023, write_h5, write_motion


@pytest.fixture(scope="module")
def cases() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURES / "metrics" / "metrics.safetensors"))


class Calls:
    """A progress callback that counts its calls: none means nothing was computed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))


# ---- index lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("lip, match", [
    (np.array([2**64 - 1], np.uint64), "vertex index 18446744073709551615, out of range"),
    (np.array([2**63], np.uint64), "vertex index 9223372036854775808, out of range"),
    (np.array([-3], np.int8), "vertex index -3"),
    (np.array([True]), "whole numbers"),
])
def test_index_lists_are_range_checked_before_the_cast(tmp_path: Path, lip: np.ndarray, match: str) -> None:
    """A uint64 2**64 - 1 wrapped to -1 (the last vertex: wrong metrics, exit 0); 2**63 to -2**63
    (an unexpected IndexError)."""
    path = tmp_path / "m.npz"
    np.savez(path, lip=lip, upper=np.array([0, 1]))
    with pytest.raises(InputError, match=match):
        load_masks(path)


def test_index_lists_of_any_integer_type(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    small = write_h5(tmp_path / "small.h5", cases["case0_gt"][:, :312])
    path = tmp_path / "m.npz"
    np.savez(path, lip=np.array([1, 2, 311], np.uint16), upper=np.array([4, 5], np.uint64))
    masks = load_masks(path)
    assert masks.lip.dtype == np.int64 and masks.lip.tolist() == [1, 2, 311]
    assert evaluate(small, small, masks=path).metrics == {"LVE": 0.0, "MHD": 0.0, "FDD": 0.0}


def test_a_huge_index_list_is_refused_from_its_header(tmp_path: Path) -> None:
    """An .npz member says its size in its header: 10**10 entries (80 GB) are refused before decompressing."""
    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**10,)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("lip.npy", header.getvalue() + bytes(64))
        buf = io.BytesIO()
        np.save(buf, np.array([1]))
        z.writestr("upper.npy", buf.getvalue())
    with pytest.raises(InputError, match="'lip' has 10000000000 entries"):
        load_masks(path)


def test_a_masks_path_that_is_no_file_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="masks file /dev/zero is not a regular file"):
        load_masks("/dev/zero")  # never read: it would not end
    with pytest.raises(InputError, match="is a folder"):
        load_masks(tmp_path)
    with pytest.raises(InputError, match="masks file not found"):
        load_masks(tmp_path / "absent.json")


@pytest.mark.parametrize("text", ['{"lip": [[1], [1, 2]], "upper": [1]}', '{"lip": {"a": 1}, "upper": [1]}'])
def test_index_lists_of_the_wrong_shape(tmp_path: Path, text: str) -> None:
    (tmp_path / "m.json").write_text(text)
    with pytest.raises(InputError, match="non-empty list of vertex indices"):
        load_masks(tmp_path / "m.json")


# ---- pipes: read once, named as given ------------------------------------------------------------


def test_every_input_may_be_a_pipe(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred, gt = write_h5(tmp_path / "p.h5", cases["case1_pred"]), write_h5(tmp_path / "g.h5", cases["case1_gt"])
    want = evaluate(pred, gt).metrics
    with Fifo(tmp_path, "p.fifo", pred.read_bytes()) as p, Fifo(tmp_path, "g.fifo", gt.read_bytes()) as g:
        assert evaluate(p, g).metrics == want
    small = write_h5(tmp_path / "small.h5", cases["case0_gt"][:, :312])
    with Fifo(tmp_path, "masks.fifo", b'{"lip": [0], "upper": [1, 2]}') as m:
        assert evaluate(small, small, masks=m).metrics == {"LVE": 0.0, "MHD": 0.0, "FDD": 0.0}
    rng = np.random.default_rng(3)
    a = write_motion(tmp_path / "a.motion.safetensors", rng.normal(0, 0.3, (6, 106)))
    b = write_motion(tmp_path / "b.motion.safetensors", rng.normal(0, 0.3, (6, 106)))
    want = evaluate(a, b, flame=FLAME_5023).metrics
    # motion is opened twice (checked, then computed): from a pipe that read the second time nothing
    with Fifo(tmp_path, "a.fifo", a.read_bytes()) as fa, Fifo(tmp_path, "b.fifo", b.read_bytes()) as fb, \
            Fifo(tmp_path, "flame.fifo", FLAME_5023.read_bytes()) as fl:
        assert evaluate(fa, fb, flame=fl).metrics == want


def test_messages_name_the_pipe_as_given(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    good = write_h5(tmp_path / "g.h5", cases["case0_gt"])
    with Fifo(tmp_path, "cut.fifo", good.read_bytes()[:1000]) as cut, pytest.raises(FormatError) as info:
        evaluate(cut, good)
    assert str(tmp_path / "cut.fifo") in str(info.value) and "artalk-input" not in str(info.value)
    m = write_motion(tmp_path / "a.motion.safetensors", np.zeros((3, 106)))
    with Fifo(tmp_path, "flame.fifo", b"not a head") as fl, pytest.raises(AssetError) as info2:
        evaluate(m, m, flame=fl)
    assert str(tmp_path / "flame.fifo") in str(info2.value) and "artalk-input" not in str(info2.value)


# ---- folders: every clip checked before any work -------------------------------------------------


def test_files_of_a_folder_that_cannot_be_clips_are_named(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for name in ("good", "fifo", "loop1", "zero", "gone", "sub"):
        write_h5(gt / f"{name}.h5", cases["case0_gt"])
    write_h5(pred / "good.h5", cases["case0_pred"])
    os.mkfifo(pred / "fifo.h5")  # opening it would block
    (pred / "loop1.h5").symlink_to("loop2.h5")
    (pred / "loop2.h5").symlink_to("loop1.h5")
    (pred / "zero.h5").symlink_to("/dev/zero")  # reading it would never end
    (pred / "gone.h5").symlink_to("nothing.h5")
    (pred / "sub.h5").mkdir()
    progress = Calls()
    with pytest.raises(InputError) as info:
        evaluate(pred, gt, progress=progress)
    text = str(info.value)
    assert f"PRED folder {pred}:" in text
    for words in ("fifo.h5 is a FIFO (named pipe), not a regular file", "gone.h5 is a broken symbolic link",
                  "loop1.h5 cannot be read (Too many levels of symbolic links)", "sub.h5 is a folder"):
        assert words in text, (words, text)
    assert "without a partner" not in text and progress.calls == []


def test_one_bad_clip_fails_the_run_before_any_work(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for k in (0, 1):
        write_h5(pred / f"c{k}.h5", cases[f"case{k}_pred"])
        write_h5(gt / f"c{k}.h5", cases[f"case{k}_gt"])
    for side in (pred, gt):  # a 312-vertex mesh: not FLAME's
        write_h5(side / "small.h5", cases["case0_gt"][:, :312])
    write_h5(pred / "odd.h5", cases["case0_pred"])
    write_h5(gt / "odd.h5", cases["case0_gt"][:, :100])
    progress = Calls()
    with pytest.raises(InputError) as info:
        evaluate(pred, gt, progress=progress)
    text = str(info.value)
    assert text.startswith("2 of 4 clips cannot be compared (nothing was computed): ")
    assert "odd: PRED " in text and "not the same mesh" in text and "small: " in text and "--masks" in text
    assert progress.calls == []


def test_motion_without_a_flame_head_fails_before_any_work(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_h5(pred / "a.h5", cases["case0_pred"])  # a vertex pair comes first...
    write_h5(gt / "a.h5", cases["case0_gt"])
    for side in (pred, gt):  # ...and a motion pair needs FLAME
        write_motion(side / "z.motion.safetensors", np.zeros((3, 106)))
    progress = Calls()
    with pytest.raises(AssetError) as info:
        evaluate(pred, gt, assets=tmp_path, progress=progress)
    assert str(info.value).startswith(f"{pred / 'z.motion.safetensors'} is motion, whose vertices eval computes "
                                      f"with the FLAME head")
    assert "--flame FILE" in str(info.value) and "stand-in" in str(info.value)
    assert progress.calls == []
