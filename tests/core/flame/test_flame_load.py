"""Loading FLAME heads (.pt, official .pkl without chumpy), resolving assets, and shape files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

from artalk_core.errors import AssetError, InputError
from artalk_core.flame.load import load_flame, load_shape, resolve_flame

FIXTURE = Path(__file__).parents[2] / "fixtures" / "tiny_en"


@pytest.fixture(scope="module")
def fixture_head() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE / "flame_synthetic.pt", weights_only=True)["flame_model"]


def _fake_chumpy_module() -> tuple[types.ModuleType, types.ModuleType, type]:
    """A module pretending to be chumpy.ch whose Ch pickles its state like chumpy does."""
    pkg = types.ModuleType("chumpy")
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False
            self._parents = object()  # chumpy drops these unpicklable members in __getstate__
            self._cache = object()

        def __getstate__(self) -> dict:
            state = dict(self.__dict__)
            del state["_parents"], state["_cache"]
            return state

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    return pkg, mod, Ch


def _write_official_pkl(path: Path, head: dict[str, torch.Tensor], *, protocol: int = 2,
                        extra: dict | None = None) -> None:
    pkg, mod, Ch = _fake_chumpy_module()
    v = head["v_template"].shape[0]
    parents = head["kintree_table"].numpy().copy()
    data = {
        "f": head["f"].numpy().astype(np.uint32),
        "v_template": head["v_template"].numpy().astype(np.float64),
        "shapedirs": Ch(head["shapedirs"].numpy()),
        "posedirs": head["posedirs"].numpy().astype(np.float64),
        "J_regressor": scipy.sparse.csc_matrix(head["J_regressor"].numpy().astype(np.float64)),
        "kintree_table": np.where(parents < 0, 4294967295, parents).astype(np.int64),
        "weights": Ch(head["weights"].numpy()),
        "J": Ch(np.zeros((5, 3))),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "weights_prior": Ch(np.zeros((v, 5))),
    }
    data.update(extra or {})
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    finally:
        for k, old in saved.items():
            if old is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = old


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_official_pkl_loads_without_chumpy(tmp_path, fixture_head, protocol) -> None:
    pkl = tmp_path / "generic_model.pkl"
    _write_official_pkl(pkl, fixture_head, protocol=protocol)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    model = load_flame(pkl)
    assert "chumpy" not in sys.modules
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    assert model.faces.dtype == np.int32 and model.num_faces == 576
    expected = load_file(str(FIXTURE / "expected.safetensors"))
    verts = model.vertices(expected["motion_final"])
    assert torch.allclose(verts, expected["flame_vertices"], atol=1e-5)


def test_pkl_with_chumpy_expression_is_refused(tmp_path, fixture_head) -> None:
    pkg, mod, Ch = _fake_chumpy_module()

    class Expr:  # a chumpy operation node: no 'x' state
        def __getstate__(self) -> dict:
            return {"a": 1, "b": 2}

    Expr.__module__ = "chumpy.ch_ops"
    Expr.__qualname__ = "add"
    ops = types.ModuleType("chumpy.ch_ops")
    ops.add = Expr
    sys.modules["chumpy.ch_ops"] = ops
    try:
        _write_official_pkl(tmp_path / "m.pkl", fixture_head, extra={"shapedirs": Expr()})
    finally:
        sys.modules.pop("chumpy.ch_ops", None)
    with pytest.raises(AssetError, match="chumpy expression"):
        load_flame(tmp_path / "m.pkl")


def test_pkl_with_foreign_class_is_refused(tmp_path) -> None:
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"f": os.getcwd}, protocol=2))
    with pytest.raises(AssetError, match="not a FLAME head file"):
        load_flame(bad)


def test_pt_round_trip_of_full_layout(tmp_path, fixture_head) -> None:
    p = tmp_path / "FLAME_with_eye.pt"
    shutil.copy(FIXTURE / "flame_synthetic.pt", p)
    model = load_flame(p)
    assert model.source == str(p) and not model.is_standin
    assert torch.equal(model.v_template, fixture_head["v_template"])


def test_missing_flame_file_says_where_and_licence(tmp_path) -> None:
    missing = tmp_path / "nope" / "FLAME_with_eye.pt"
    for call in (lambda: load_flame(missing), lambda: resolve_flame(missing)):
        with pytest.raises(AssetError) as e:
            call()
        msg = str(e.value)
        assert str(missing.resolve()) in msg and "https://flame.is.tue.mpg.de" in msg and "licence" in msg


def test_resolve_flame_search_order(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ARTALK_ASSETS", raising=False)
    monkeypatch.chdir(tmp_path)
    assets = tmp_path / "myassets"
    assets.mkdir()
    with pytest.raises(AssetError) as e:
        resolve_flame(assets=assets, allow_standin=False)
    assert str((assets / "FLAME_with_eye.pt").resolve()) in str(e.value)
    assert "flame.is.tue.mpg.de" in str(e.value)
    standin = resolve_flame(assets=assets)
    assert standin.is_standin and standin.source == "stand-in"
    shutil.copy(FIXTURE / "flame_synthetic.pt", assets / "FLAME_with_eye.pt")
    found = resolve_flame(assets=assets)
    assert not found.is_standin and found.num_vertices == 312
    explicit = resolve_flame(FIXTURE / "flame_synthetic.pt", assets=tmp_path / "elsewhere")
    assert explicit.num_vertices == 312
    # the default asset folder: $ARTALK_ASSETS, else ./assets
    monkeypatch.setenv("ARTALK_ASSETS", str(assets))
    assert resolve_flame().num_vertices == 312
    monkeypatch.delenv("ARTALK_ASSETS")
    with pytest.raises(AssetError, match="assets"):
        resolve_flame(allow_standin=False)


def test_wrong_flame_files(tmp_path, fixture_head) -> None:
    text = tmp_path / "head.pt"
    text.write_text("hello")
    with pytest.raises(AssetError, match="not a FLAME head file"):
        load_flame(text)
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(AssetError, match="folder"):
        load_flame(folder)
    partial = {k: v for k, v in fixture_head.items() if k != "weights"}
    torch.save({"flame_model": partial}, tmp_path / "partial.pt")
    with pytest.raises(AssetError, match="missing weights"):
        load_flame(tmp_path / "partial.pt")
    few = dict(fixture_head, shapedirs=fixture_head["shapedirs"][:, :, :300].clone())
    torch.save({"flame_model": few}, tmp_path / "few.pt")
    with pytest.raises(AssetError, match="300 shape"):
        load_flame(tmp_path / "few.pt")
    badv = dict(fixture_head, weights=fixture_head["weights"][:10].clone())
    torch.save({"flame_model": badv}, tmp_path / "badv.pt")
    with pytest.raises(AssetError, match="weights must be"):
        load_flame(tmp_path / "badv.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(AssetError):
        load_flame(tmp_path / "tensor.pt")


def _shape(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(300).astype(np.float32)


def test_load_shape_formats(tmp_path) -> None:
    s = _shape()
    torch.save(torch.from_numpy(s), tmp_path / "a.pt")
    torch.save(torch.from_numpy(s)[None], tmp_path / "b.pt")
    torch.save({"shape": torch.from_numpy(s)}, tmp_path / "c.pt")
    np.save(tmp_path / "d.npy", s[None])
    save_file({"betas": s}, str(tmp_path / "e.safetensors"))
    (tmp_path / "f.txt").write_text("\n".join(repr(float(x)) for x in s))
    (tmp_path / "g.json").write_text(json.dumps([float(x) for x in s]))
    np.savez(tmp_path / "h.npz", shape=s)
    for name in ("a.pt", "b.pt", "c.pt", "d.npy", "e.safetensors", "f.txt", "g.json", "h.npz"):
        got = load_shape(tmp_path / name)
        assert got.shape == (300,) and got.dtype == torch.float32, name
        assert np.allclose(got.numpy(), s, atol=1e-6), name


def test_load_shape_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_shape(tmp_path / "missing.pt")
    torch.save(torch.zeros(100), tmp_path / "short.pt")
    with pytest.raises(InputError, match=r"\[100\]"):
        load_shape(tmp_path / "short.pt")
    np.save(tmp_path / "two.npy", np.zeros((2, 300), np.float32))
    with pytest.raises(InputError, match="300"):
        load_shape(tmp_path / "two.npy")
    bad = _shape()
    bad[7] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match="NaN"):
        load_shape(tmp_path / "nan.npy")
    save_file({"a": _shape(), "b": _shape(1)}, str(tmp_path / "many.safetensors"))
    with pytest.raises(InputError, match="exactly one"):
        load_shape(tmp_path / "many.safetensors")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # json.loads: RecursionError
    with pytest.raises(InputError, match="nested too deeply"):
        load_shape(tmp_path / "deep.json")
    (tmp_path / "junk.txt").write_text("1 2 three")
    with pytest.raises(InputError, match="cannot read"):
        load_shape(tmp_path / "junk.txt")
