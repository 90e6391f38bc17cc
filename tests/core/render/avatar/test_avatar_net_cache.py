"""The on-disk cache of built avatar Gaussians: a hit skips the network, any changed input misses."""

from __future__ import annotations

import pytest
import torch

from artalk_core.errors import ArtalkWarning
from artalk_core.render.avatar.cache import cached_gaussians, default_cache_dir


@pytest.fixture()
def counted(gaga_net, monkeypatch):
    """The fixture net with build_gaussians counting its calls."""
    calls = []
    real = type(gaga_net).build_gaussians

    def counting(self, image, transform_matrix):
        calls.append(1)
        return real(self, image, transform_matrix)

    monkeypatch.setattr(type(gaga_net), "build_gaussians", counting)
    return calls


def _args(entry):
    return {"image": torch.from_numpy(entry.image), "transform_matrix": torch.from_numpy(entry.transform_matrix)}


def test_hit_skips_the_network(gaga_net, gaga_entry, counted, tmp_path):
    kw = {**_args(gaga_entry), "checkpoint_sha256": "c" * 64, "entry_sha256": gaga_entry.sha256, "cache_dir": tmp_path}
    first = cached_gaussians(gaga_net, **kw)
    assert len(counted) == 1 and len(list(tmp_path.glob("*.safetensors"))) == 1
    second = cached_gaussians(gaga_net, **kw)
    assert len(counted) == 1
    for name, t in first.tensors().items():
        assert torch.equal(t, getattr(second, name)) and getattr(second, name).dtype == torch.float32
    assert second.n_global == 5023 and not list(tmp_path.glob(".*part*"))


def test_changed_entry_or_checkpoint_misses(gaga_net, gaga_entry, counted, tmp_path):
    kw = {**_args(gaga_entry), "cache_dir": tmp_path}
    cached_gaussians(gaga_net, checkpoint_sha256="a" * 64, entry_sha256="e1", **kw)
    cached_gaussians(gaga_net, checkpoint_sha256="a" * 64, entry_sha256="e2", **kw)
    cached_gaussians(gaga_net, checkpoint_sha256="b" * 64, entry_sha256="e1", **kw)
    assert len(counted) == 3 and len(list(tmp_path.glob("*.safetensors"))) == 3


def test_damaged_file_is_rebuilt(gaga_net, gaga_entry, counted, tmp_path):
    kw = {**_args(gaga_entry), "checkpoint_sha256": "c", "entry_sha256": "e", "cache_dir": tmp_path}
    good = cached_gaussians(gaga_net, **kw)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"garbage")
    again = cached_gaussians(gaga_net, **kw)
    assert len(counted) == 2 and torch.equal(again.xyz, good.xyz)
    assert cached_gaussians(gaga_net, **kw) is not None and len(counted) == 2  # rewritten


def test_unwritable_folder_warns_and_still_returns(gaga_net, gaga_entry, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(ArtalkWarning, match="avatar cache not written"):
        g = cached_gaussians(gaga_net, **_args(gaga_entry), checkpoint_sha256="c", entry_sha256="e",
                             cache_dir=blocker / "sub")
    assert len(g) == 33_823


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("ARTALK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "artalk" / "avatars"
    monkeypatch.setenv("ARTALK_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
