"""`--precision auto` and the warning for a slower explicit precision, through the real command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tests.conftest import FIXTURE

WAV = FIXTURE / "speech_16k.wav"


def write_decision(cache_home: Path, bf16_seconds: float) -> None:
    """A cached measurement for the tiny model on this CPU (any thread count): fp32 1 s, bf16 as given."""
    from artalk_core.model.config import ModelConfig
    from artalk_core.model.precision import CACHE_VERSION, choose, device_key

    config = ModelConfig.from_file(FIXTURE / "model_config.json")
    secs = {p: {"encoder": t / 2, "ar": t / 2, "total": t} for p, t in (("fp32", 1.0), ("bf16", bf16_seconds),
                                                                        ("fp16", 9.0))}
    entry = {"seconds": secs, "choice": choose(secs, "cpu"), "measured": "test"}
    threads = torch.get_num_threads()
    entries = {}
    try:
        for n in range(1, (os.cpu_count() or 1) + 1):
            torch.set_num_threads(n)
            entries[device_key(torch.device("cpu"), config)] = entry
    finally:
        torch.set_num_threads(threads)
    path = cache_home / "artalk" / "precision.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}))


def test_slower_bf16_warns_and_auto_takes_fp32(artalk, tiny_assets: Path, tmp_path: Path) -> None:
    from artalk_core.formats.motion import read_motion

    write_decision(tmp_path, bf16_seconds=1.3)
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    out = tmp_path / "bf16.safetensors"
    res = artalk("generate", WAV, "--precision", "bf16", "-o", out, "--assets", tiny_assets, env_extra=env)
    assert res.returncode == 0, res.stderr
    warn_lines = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warn_lines) == 1 and "bf16 is slower than fp32" in warn_lines[0] and "1.30x" in warn_lines[0]

    auto = tmp_path / "auto.safetensors"
    res = artalk("generate", WAV, "--precision", "auto", "-o", auto, "--assets", tiny_assets, env_extra=env)
    assert res.returncode == 0, res.stderr
    assert "warning:" not in res.stderr
    opts = json.loads(read_motion(auto).meta["options"])
    assert opts["precision"] == "fp32" and opts["precision_requested"] == "auto"
