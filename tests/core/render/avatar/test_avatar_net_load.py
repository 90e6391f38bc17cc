"""The network's module tree against the released checkpoint's keys, strict loading, noise modes, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artalk_core.errors import CheckpointError, InputError
from artalk_core.render.avatar.config import AvatarConfig
from artalk_core.render.avatar.model import build_avatar_net, load_avatar_net

KEYS = Path(__file__).resolve().parents[3] / "fixtures" / "gagavatar_keys.txt"


def _released_keys() -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in KEYS.read_text().splitlines():
        name, shape, dtype = line.split("\t")
        rows.append((name, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype))
    return rows


def test_full_size_tree_matches_released_checkpoint_keys():
    net = build_avatar_net(AvatarConfig(), device="meta")
    got = [(k, tuple(v.shape), str(v.dtype)) for k, v in net.state_dict().items()]
    want = _released_keys()
    assert len(want) == 561
    assert got == want  # names, order, shapes and dtypes
    assert sum(v.numel() for v in net.state_dict().values()) == 169_616_198


def test_fixture_weights_are_the_released_tree_minus_two_levels(gaga_config, gaga_dir):
    from safetensors import safe_open

    with safe_open(str(gaga_dir / "weights.safetensors"), "pt") as f:
        stored = set(f.keys())
    assert set(build_avatar_net(gaga_config, device="meta").state_dict()) == stored
    assert len(stored) == 489


@pytest.fixture(scope="module")
def tiny_state(gaga_dir):
    from safetensors.torch import load_file

    return load_file(str(gaga_dir / "weights.safetensors"))


def test_loads_pt_with_model_wrapper_and_drops_percep_loss(tiny_state, gaga_config, gaga_net, tmp_path):
    ckpt = {"model": {**tiny_state, "percep_loss.net.slice1.0.weight": torch.zeros(64, 3, 11, 11)},
            "meta_cfg": {"note": "plain dict"}}
    torch.save(ckpt, tmp_path / "GAGAvatar.pt")
    net = load_avatar_net(tmp_path / "GAGAvatar.pt", config=gaga_config)
    for k, v in net.state_dict().items():
        assert torch.equal(v, gaga_net.state_dict()[k]), k
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_strict_loading_names_keys(tiny_state, gaga_config):
    state = dict(tiny_state)
    del state["upsampler.final_linear.bias"]
    state["upsampler.extra.weight"] = torch.zeros(1)
    state["head_base"] = torch.zeros(5023, 65)
    with pytest.raises(CheckpointError) as e:
        load_avatar_net(state, config=gaga_config)
    msg = str(e.value)
    assert "upsampler.final_linear.bias" in msg and "upsampler.extra.weight" in msg
    assert "head_base [5023, 65] (model wants [5023, 64])" in msg and "--avatar-config" in msg


def test_released_sizes_reject_the_tiny_checkpoint(gaga_dir):
    with pytest.raises(CheckpointError, match="wrong-shape"):
        load_avatar_net(gaga_dir / "weights.safetensors", config=AvatarConfig())


def test_missing_checkpoint(tmp_path, gaga_config):
    with pytest.raises(CheckpointError, match="not found"):
        load_avatar_net(tmp_path / "GAGAvatar.pt", config=gaga_config)


def test_noise_modes(gaga_net, gaga_expected):
    x = gaga_expected["upsampler.input"][None]
    stored = gaga_net.upsample(x, noise="stored")
    a = gaga_net.upsample(x, noise="seeded", generator=torch.Generator().manual_seed(7))
    b = gaga_net.upsample(x, noise="seeded", generator=torch.Generator().manual_seed(7))
    c = gaga_net.upsample(x, noise="seeded", generator=torch.Generator().manual_seed(8))
    none = gaga_net.upsample(x, noise="none")
    assert torch.equal(a, b)
    assert (a - stored).abs().max() > 1e-3 and (a - c).abs().max() > 1e-3 and (none - stored).abs().max() > 1e-3
    with pytest.raises(InputError, match="noise"):
        gaga_net.upsample(x, noise="random")


def test_seeded_noise_is_per_frame_and_batch_independent(gaga_net, gaga_expected):
    x = gaga_expected["frame.render"][:2]
    batched = gaga_net.upsample(x, noise="seeded", generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    one_by_one = torch.cat([gaga_net.upsample(x[i:i + 1], noise="seeded", generator=g) for i in range(2)])
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    # the same shapes and order as the reference's fresh draws: 11 StyleConvs at 4, 8, 8, ..., 128
    noises = gaga_net.upsampler.make_noise(1, "seeded", generator=torch.Generator().manual_seed(0))
    assert [n.shape[-1] for n in noises] == [4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]


def test_bad_source_input(gaga_net):
    with pytest.raises(InputError, match=r"\[3,H,W\]"):
        gaga_net.build_gaussians(torch.zeros(4, 64, 64), torch.zeros(3, 4))
    with pytest.raises(InputError, match="transform_matrix"):
        gaga_net.build_gaussians(torch.zeros(3, 64, 64), torch.zeros(4, 4))
    with pytest.raises(InputError, match="NaN"):
        gaga_net.build_gaussians(torch.full((3, 64, 64), float("nan")), torch.zeros(3, 4))
    with pytest.raises(InputError, match="feature images"):
        gaga_net.upsample(torch.zeros(1, 3, 128, 128), noise="none")


@pytest.mark.slow
def test_full_size_shape_flow_on_meta():
    # released sizes end to end without weights: 518 -> 37x37 tokens -> DPT 148/74/37/19 -> 296 plane
    net = build_avatar_net(AvatarConfig(), device="meta")
    out = net.source(torch.empty(3, 512, 512, device="meta"), torch.empty(3, 4, device="meta"))
    assert [tuple(t.shape) for t in out.dino_layers] == [(1369, 768)] * 4
    assert tuple(out.f_feature0.shape) == (256, 296, 296) and tuple(out.f_feature1.shape) == (768,)
    g = out.gaussians
    assert g is not None and len(g) == 180_255 and tuple(g.colors.shape) == (180_255, 32)
    assert tuple(net.upsample(torch.empty(2, 32, 512, 512, device="meta"), noise="stored").shape) == (2, 3, 512, 512)
