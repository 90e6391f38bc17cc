"""`artalk_core.eval`: the reference's LVE / MHD / FDD (tests/fixtures/metrics), on vertex and motion
files, folders of clips, and the inputs it must refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artalk_core.errors import AssetError, FormatError, InputError
from artalk_core.eval import METRICS, MetricSums, compute_metrics, default_masks, evaluate, load_masks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FLAME_5023 = FIXTURES / "tiny_gaga" / "flame_synthetic_5023.pt"
RTOL = 1e-5


@pytest.fixture(scope="module")
def cases() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURES / "metrics" / "metrics.safetensors"))


def _close(got: dict, want: np.ndarray) -> None:
    for key, w in zip(METRICS, want[:3]):
        assert got[key] == pytest.approx(float(w), rel=RTOL), key  # seen: 1.3e-6 at most


def write_h5(path: Path, verts: np.ndarray) -> Path:
    from artalk_core.formats.vertices import write_vertices

    faces = np.array([[0, 1, 2]], np.int32)
    write_vertices(path, verts, faces, {})
    return path


def write_motion(path: Path, data: np.ndarray) -> Path:
    from artalk_core.formats.motion import write_motion as write

    write(path, data.astype(np.float32), {})
    return path


@pytest.mark.parametrize("case", [0, 1, 2])
def test_parity_with_the_reference(cases: dict[str, np.ndarray], case: int) -> None:
    _close(compute_metrics(cases[f"case{case}_pred"], cases[f"case{case}_gt"]), cases[f"case{case}_metrics"])


def test_masks_are_the_references(cases: dict[str, np.ndarray]) -> None:
    m = default_masks()
    assert m.vertices == 5023
    assert np.array_equal(m.lip, cases["lip_indices"]) and np.array_equal(m.upper, cases["upper_indices"])
    assert len(m.lip) == 254 and len(set(m.lip.tolist())) == 250  # the repeats are kept


def test_blocks_of_any_size_give_the_same_numbers(cases: dict[str, np.ndarray]) -> None:
    p, g = cases["case2_pred"], cases["case2_gt"]
    whole = compute_metrics(p, g)
    sums = MetricSums(default_masks())
    for start, stop in ((0, 1), (1, 8), (8, 25)):
        sums.add(p[start:stop], g[start:stop])
    got = sums.result()
    assert all(got[k] == pytest.approx(whole[k], rel=1e-12) for k in METRICS)


def test_vertex_files(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred = write_h5(tmp_path / "p.h5", cases["case1_pred"])
    gt = write_h5(tmp_path / "g.h5", cases["case1_gt"])
    res = evaluate(pred, gt)
    _close(res.metrics, cases["case1_metrics"])
    assert res.frames == 10 and res.notes == [] and res.to_json() == {"metrics": res.metrics, "frames": 10}


def test_frame_counts_that_differ_compare_the_common_prefix(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    pred = write_h5(tmp_path / "p.h5", cases["case2_pred"])  # 25 frames
    gt = write_h5(tmp_path / "g.h5", cases["case2_gt"][:10])
    res = evaluate(pred, gt)
    want = compute_metrics(cases["case2_pred"][:10], cases["case2_gt"][:10])
    assert all(res.metrics[k] == pytest.approx(want[k], rel=1e-12) for k in METRICS)
    assert res.frames == 10 and res.notes == ["PRED has 25 frames and GT 10: compared the first 10"]


def test_one_frame_has_no_fdd(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    res = evaluate(write_h5(tmp_path / "p.h5", cases["case0_pred"][:1]), write_h5(tmp_path / "g.h5", cases["case0_gt"]))
    assert res.metrics["FDD"] is None and res.metrics["LVE"] is not None and res.frames == 1
    assert any("FDD needs at least 2 frames" in n for n in res.notes)
    assert res.to_json()["metrics"]["FDD"] is None


def test_motion_through_flame_without_the_head_rotation(tmp_path: Path) -> None:
    from artalk_core.flame import load_flame

    rng = np.random.default_rng(0)
    a, b = (rng.normal(0, 0.3, (12, 106)).astype(np.float32) for _ in range(2))
    head = load_flame(FLAME_5023)
    va, vb = head.vertices(a, with_global=False).numpy(), head.vertices(b, with_global=False).numpy()
    pa, pb = write_motion(tmp_path / "a.motion.safetensors", a), write_motion(tmp_path / "b.motion.safetensors", b)
    res = evaluate(pa, pb, flame=FLAME_5023)
    want = compute_metrics(va, vb)
    assert all(res.metrics[k] == pytest.approx(want[k], rel=1e-6) for k in METRICS)
    b_turned = b.copy()
    b_turned[:, 100:103] += 0.2  # the head rotation is left out, as the reference evaluates
    res2 = evaluate(pa, write_motion(tmp_path / "c.motion.safetensors", b_turned), flame=FLAME_5023)
    assert all(res2.metrics[k] == pytest.approx(want[k], rel=1e-6) for k in METRICS)
    res3 = evaluate(pa, tmp_path / "c.motion.safetensors", flame=FLAME_5023, head_pose=True)
    assert res3.metrics["MHD"] > res.metrics["MHD"] * 1.01
    # a vertices file against a motion file: compared, with a note on the head rotation
    mixed = evaluate(write_h5(tmp_path / "a.h5", va), pb, flame=FLAME_5023)
    assert all(mixed.metrics[k] == pytest.approx(want[k], rel=1e-6) for k in METRICS)
    assert any("--head-pose" in n for n in mixed.notes)


def test_motion_needs_flame(tmp_path: Path) -> None:
    m = write_motion(tmp_path / "a.motion.safetensors", np.zeros((3, 106)))
    with pytest.raises(AssetError, match="FLAME"):
        evaluate(m, m, assets=tmp_path)


def test_folders(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    for k in (0, 1, 2):
        write_h5(tmp_path / "pred" / f"clip{k}.h5", cases[f"case{k}_pred"])
        write_h5(tmp_path / "gt" / f"clip{k}.h5", cases[f"case{k}_gt"])
    write_h5(tmp_path / "pred" / "extra.h5", cases["case0_pred"])
    (tmp_path / "gt" / "readme.txt").write_text("not a clip")
    res = evaluate(tmp_path / "pred", tmp_path / "gt")
    assert [c.name for c in res.clips] == ["clip0", "clip1", "clip2"] and res.frames == 39
    for k, clip in enumerate(res.clips):
        _close(clip.metrics, cases[f"case{k}_metrics"])
    for key in METRICS:
        assert res.metrics[key] == pytest.approx(np.mean([c.metrics[key] for c in res.clips]), rel=1e-12)
    assert res.notes == ["1 PRED clip(s) without a partner, left out: extra"]
    out = res.to_json()
    assert set(out) == {"metrics", "frames", "clips"} and out["clips"][1]["name"] == "clip1"
    assert out["clips"][1]["frames"] == 10 and set(out["clips"][1]["metrics"]) == set(METRICS)


def test_hostile_inputs(cases: dict[str, np.ndarray], tmp_path: Path) -> None:
    import h5py

    good = write_h5(tmp_path / "good.h5", cases["case0_gt"])
    nan = tmp_path / "nan.h5"
    with h5py.File(nan, "w") as f:  # written around the writer, which refuses NaN
        v = cases["case0_pred"].copy()
        v[2, 10, 1] = np.nan
        f["vertices"] = v
        f["faces"] = np.array([[0, 1, 2]], np.int32)
    with pytest.raises(FormatError, match="frame 2 contains NaN"):
        evaluate(nan, good)
    small = write_h5(tmp_path / "small.h5", cases["case0_gt"][:, :312])
    with pytest.raises(InputError, match="has 5023 vertices per frame but GT .* has 312"):
        evaluate(good, small)
    with pytest.raises(InputError, match="for FLAME's 5023: give --masks"):
        evaluate(small, small)
    masks = tmp_path / "m.json"
    masks.write_text('{"lip": [1, 2, 3], "upper": [4, 5, 5]}')
    assert evaluate(small, small, masks=masks).metrics == {"LVE": 0.0, "MHD": 0.0, "FDD": 0.0}
    masks.write_text('{"lip": [1, 2, 400], "upper": [4]}')
    with pytest.raises(InputError, match="index 400 is out of range"):
        evaluate(small, small, masks=masks)
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    write_h5(tmp_path / "other" / "x.h5", cases["case0_gt"])
    with pytest.raises(InputError, match="holds no vertex or motion files"):
        evaluate(tmp_path / "empty", tmp_path / "other")
    (tmp_path / "named").mkdir()
    write_h5(tmp_path / "named" / "y.h5", cases["case0_gt"])
    with pytest.raises(InputError, match="no clip names in common: PRED has y, GT has x"):
        evaluate(tmp_path / "named", tmp_path / "other")
    with pytest.raises(InputError, match="both be files or both be folders"):
        evaluate(good, tmp_path / "other")
    with pytest.raises(InputError, match="apply to motion inputs"):
        evaluate(good, good, flame=FLAME_5023)
    with pytest.raises(InputError, match="not found"):
        evaluate(tmp_path / "absent.h5", good)


@pytest.mark.parametrize("text, match", [
    ('{"lip": [1]}', "'lip' and 'upper'"),
    ('{"lip": [], "upper": [1]}', "non-empty list"),
    ('{"lip": [1.5], "upper": [1]}', "whole numbers"),
    ('{"lip": [-1], "upper": [1]}', "whole numbers"),
    ("[1, 2", "not readable"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"lip": [' + "9" * 5000 + '], "upper": [1]}', "5000 digits"),
])
def test_bad_masks(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "m.json"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        load_masks(p)
