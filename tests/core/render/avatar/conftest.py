"""The tiny_gaga parity fixture for the avatar network tests: config, loaded net, tracked entry, expected tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

GAGA = Path(__file__).resolve().parents[3] / "fixtures" / "tiny_gaga"


@pytest.fixture(scope="session")
def gaga_dir() -> Path:
    return GAGA


@pytest.fixture(scope="session")
def gaga_config() -> Any:
    from artalk_core.render.avatar.config import AvatarConfig

    return AvatarConfig.from_json(GAGA / "model_config.json")


@pytest.fixture(scope="session")
def gaga_expected() -> dict:
    from safetensors.torch import load_file

    return load_file(str(GAGA / "expected.safetensors"))


@pytest.fixture(scope="session")
def gaga_net(gaga_config: Any) -> Any:
    from artalk_core.render.avatar.model import load_avatar_net

    return load_avatar_net(GAGA / "weights.safetensors", config=gaga_config)


@pytest.fixture(scope="session")
def gaga_entry() -> Any:
    from artalk_core.render.avatar.tracked import load_tracked

    return load_tracked(GAGA / "tracked.pt")["fix.jpg"]


@pytest.fixture(scope="session")
def gaga_source(gaga_net: Any, gaga_entry: Any) -> Any:
    """The source path's intermediates for the fixture's avatar."""
    import torch

    return gaga_net.source(torch.from_numpy(gaga_entry.image), torch.from_numpy(gaga_entry.transform_matrix))
