"""AvatarConfig: released defaults, the parity fixture's JSON as it is, and one clear error per bad value."""

from __future__ import annotations

import json

import pytest

from artalk_core.errors import ConfigError, InputError
from artalk_core.render.avatar.config import AvatarConfig


def test_released_defaults():
    c = AvatarConfig.released()
    assert c == AvatarConfig()
    assert (c.dino_img_size, c.dino_embed_dim, c.plane_size, c.n_gaussians) == (518, 768, 296, 180_255)
    assert c.linear_in_dim == 1024 and c.dir_dim == 27 and c.unet_ch(512) == 16 and c.decoder_ch(512) == 32


def test_fixture_json_as_it_is(gaga_dir):
    c = AvatarConfig.from_json(gaga_dir / "model_config.json")
    assert (c.dino_img_size, c.dino_embed_dim, c.dino_heads, c.dino_depth) == (210, 64, 4, 12)
    assert c.dpt_out_dims == (32, 64, 128, 128) and c.dpt_hidden == 32 and c.feature_dim == 32
    assert (c.head_base_dim, c.linear_hidden, c.conv_hidden, c.plane_size) == (64, 32, 16, 120)
    assert c.n_gaussians == 33_823 and c.render_size == (128, 128) and c.num_style_feat == 64
    assert c.unet_ch(128) == 8 and c.decoder_ch(4) == 64 and c.forehead_ema == (0.98, 0.02)
    assert AvatarConfig.from_dict(json.loads((gaga_dir / "model_config.json").read_text())) == c
    assert json.loads(json.dumps(c.to_dict()))["plane_size"] == 120


def test_missing_sections_keep_released_values():
    assert AvatarConfig.from_dict({}) == AvatarConfig()
    assert AvatarConfig.from_dict({"FLAME": {"scale": 4.0}}).flame_scale == 4.0


@pytest.fixture()
def fixture_dict(gaga_dir) -> dict:
    return json.loads((gaga_dir / "model_config.json").read_text())


@pytest.mark.parametrize("section,key,value,match", [
    ("DINO", "embed_dim", -64, "DINO.embed_dim' must be a positive integer"),
    ("DINO", "num_heads", 5, "divisible by DINO.num_heads"),
    ("DINO", "img_size", "210", "DINO.img_size' must be a positive integer"),
    ("DINO", "intermediate_blocks", [8, 9, 10, 12], "block indices below depth"),
    ("GAUSSIANS", "plane_size", 100, "plane_size must be 8 x"),
    ("GAUSSIANS", "linear_gs_in_dim", 129, "linear_gs_in_dim' is 129 but the other sizes give 128"),
    ("STYLE_UNET", "in_size", 100, "power of two"),
    ("STYLE_UNET", "unet_channels", {"4": 32}, "lacks resolutions"),
    ("STYLE_UNET", "decoder_channels", {"x": 1}, "map resolutions"),
    ("RENDER", "size", [128], "list of 2 positive integers"),
    ("SOURCE", "imagenet_std", [0.2, 0.2, float("nan")], "list of 3 numbers"),
])
def test_bad_values(fixture_dict, section, key, value, match):
    fixture_dict[section][key] = value
    with pytest.raises(ConfigError, match=match):
        AvatarConfig.from_dict(fixture_dict)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="cannot read avatar config"):
        AvatarConfig.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AvatarConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        AvatarConfig.from_json(tmp_path / "list.json")
    (tmp_path / "sec.json").write_text('{"DINO": 3}')
    with pytest.raises(ConfigError, match="'DINO' must be an object"):
        AvatarConfig.from_json(tmp_path / "sec.json")
