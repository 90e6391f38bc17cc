"""``--precision auto``: the measured choice, its cache, and the warning for a slow explicit precision."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from artalk_core.errors import ArtalkWarning, InputError
from artalk_core.model import precision as prec
from artalk_core.model.checkpoint import load_model
from artalk_core.model.config import ModelConfig
from artalk_core.options import ModelOptions

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_en"
CPU = torch.device("cpu")


def seconds(fp32: float, bf16: float, fp16: float = 9.0) -> dict[str, dict[str, float]]:
    return {p: {"encoder": t / 2, "ar": t / 2, "total": t} for p, t in (("fp32", fp32), ("bf16", bf16), ("fp16", fp16))}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user cache and no decision remembered in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(prec, "_memo", {})
    return tmp_path / "artalk" / "precision.json"


class FakeMeasure:
    """Stands in for :func:`prec.measure`: each call returns the next queued figures."""

    def __init__(self) -> None:
        self.queue: list[dict[str, dict[str, float]]] = []
        self.calls = 0

    def append(self, figures: dict[str, dict[str, float]]) -> None:
        self.queue.append(figures)

    def __call__(self, config: ModelConfig, device: torch.device, precisions: list[str],
                 repeat: int = 3) -> dict[str, dict[str, float]]:
        self.calls += 1
        return self.queue.pop(0)


@pytest.fixture()
def measured(cache: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMeasure:
    fake = FakeMeasure()
    monkeypatch.setattr(prec, "measure", fake)
    return fake


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig.from_file(FIXTURE / "model_config.json")


def test_check_precision() -> None:
    for p in ("fp32", "bf16", "fp16", "auto"):
        assert prec.check_precision(p) == p
    with pytest.raises(InputError, match="fp8.*auto"):
        prec.check_precision("fp8")


def test_choose() -> None:
    assert prec.choose(seconds(1.0, 1.2), "cpu") == "fp32"  # slower
    assert prec.choose(seconds(1.0, 0.95), "cpu") == "fp32"  # not clearly faster
    assert prec.choose(seconds(1.0, 0.5), "cpu") == "bf16"
    assert prec.choose(seconds(1.0, 0.5, 0.4), "cpu") == "fp16"  # the fastest
    assert prec.choose(seconds(1.0, 0.5, 0.4), "cuda") == "bf16"  # CUDA: bf16 whenever it is faster
    assert prec.choose(seconds(1.0, 2.0, 0.4), "cuda") == "fp16"


def test_auto_picks_fp32_when_reduced_precision_is_slower(measured: FakeMeasure, config: ModelConfig, cache: Path) -> None:
    measured.append(seconds(1.0, 1.3, 4.0))
    assert prec.resolve_precision("auto", CPU, config) == "fp32"


def test_auto_picks_bf16_when_faster_and_caches_it(measured: FakeMeasure, config: ModelConfig, cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    measured.append(seconds(1.0, 0.4))
    assert prec.resolve_precision("auto", CPU, config) == "bf16"
    assert measured.calls == 1
    entry = json.loads(cache.read_text())["entries"][prec.device_key(CPU, config)]
    assert entry["choice"] == "bf16" and entry["seconds"]["fp32"]["total"] == 1.0
    # A new process (nothing remembered) reads the file and measures nothing.
    monkeypatch.setattr(prec, "_memo", {})
    assert prec.resolve_precision("auto", CPU, config) == "bf16"
    assert measured.calls == 1
    # Another thread count is another machine state: measured again.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        measured.append(seconds(1.0, 1.5))
        assert prec.resolve_precision("auto", CPU, config) == "fp32"
    finally:
        torch.set_num_threads(threads)
    assert measured.calls == 2


def test_explicit_slower_precision_warns_once_measured(measured: FakeMeasure, config: ModelConfig) -> None:
    measured.append(seconds(1.0, 1.3, 5.0))
    with pytest.warns(ArtalkWarning, match=r"bf16 is slower than fp32.*1\.30x"):
        assert prec.resolve_precision("bf16", CPU, config) == "bf16"  # still runs what was asked
    with pytest.warns(ArtalkWarning, match=r"fp16 is slower than fp32.*5\.00x"):
        assert prec.resolve_precision("fp16", CPU, config) == "fp16"
    assert measured.calls == 1  # one measurement answers both


def test_explicit_faster_precision_and_fp32_do_not_warn(measured: FakeMeasure, config: ModelConfig) -> None:
    measured.append(seconds(1.0, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prec.resolve_precision("fp32", CPU, config) == "fp32"
        assert measured.calls == 0  # fp32 never measures
        assert prec.resolve_precision("bf16", CPU, config) == "bf16"


def test_unreadable_cache_is_remeasured(measured: FakeMeasure, config: ModelConfig, cache: Path) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    measured.append(seconds(1.0, 0.4))
    assert prec.resolve_precision("auto", CPU, config) == "bf16"
    assert json.loads(cache.read_text())["version"] == prec.CACHE_VERSION


def test_real_measurement_on_tiny_shapes(config: ModelConfig) -> None:
    got = prec.measure(config, CPU, ["bf16", "fp16"], repeat=1)
    assert set(got) == {"fp32", "bf16", "fp16"}
    for parts in got.values():
        assert set(parts) == {"encoder", "ar", "total"}
        assert all(np.isfinite(v) and v > 0 for v in parts.values())
        assert parts["total"] == pytest.approx(parts["encoder"] + parts["ar"])


def test_real_measurement_of_the_mimi_encoder() -> None:
    # --precision auto measures the encoder the model has: Mimi's layers, not wav2vec2's.
    mimi = ModelConfig.from_file(FIXTURE.parent / "tiny_mimi" / "model_config.json")
    got = prec.measure(mimi, CPU, ["bf16"], repeat=1)
    assert set(got) == {"fp32", "bf16"} and all(parts["encoder"] > 0 for parts in got.values())
    assert prec.device_key(CPU, mimi) != prec.device_key(CPU, mimi.with_audio_encoder("wav2vec"))


def test_model_auto_resolves_before_running(measured: FakeMeasure, config: ModelConfig) -> None:
    """``auto`` measured as fp32-is-fastest runs exactly the fp32 path (bit for bit)."""
    from safetensors.torch import load_file

    model = load_model(FIXTURE / "weights.safetensors", config)
    audio = load_file(str(FIXTURE / "expected.safetensors"))["audio"][:16000]
    measured.append(seconds(1.0, 1.3))
    feats = model.encode_audio(audio, precision="auto")
    assert torch.equal(feats, model.encode_audio(audio))
    assert torch.equal(model.generate(feats, 25, precision="auto"), model.generate(feats, 25))
    assert measured.calls == 1
    with pytest.raises(InputError, match="fp8"):
        model.generate(feats, 25, precision="fp8")


def test_pipeline_records_the_resolved_precision(measured: FakeMeasure, tiny_assets: Path, tmp_path: Path) -> None:
    from artalk_core.formats.features import read_features_meta
    from artalk_core.pipeline import encode_audio, generate

    wav = FIXTURE / "speech_16k.wav"
    measured.append(seconds(1.0, 0.4))  # bf16 measured faster here
    motion = generate(wav, output=tmp_path / "m.safetensors", model=ModelOptions(assets=tiny_assets, precision="auto", device="cpu"))
    opts = json.loads(motion.meta["options"])
    assert opts["precision"] == "bf16" and opts["precision_requested"] == "auto"
    encode_audio(wav, output=tmp_path / "f.safetensors", model=ModelOptions(assets=tiny_assets, precision="auto", device="cpu"))
    opts = json.loads(read_features_meta(tmp_path / "f.safetensors")["options"])
    assert opts["precision"] == "bf16" and opts["precision_requested"] == "auto"
    explicit = generate(wav, model=ModelOptions(assets=tiny_assets, precision="bf16", device="cpu"))  # no warning: bf16 is faster
    assert "precision_requested" not in json.loads(explicit.meta["options"])
    assert measured.calls == 1


@pytest.mark.parametrize("step", ["generate", "encode_audio", "animate"])
def test_bad_precision_fails_before_any_work(step: str, tmp_path: Path) -> None:
    """An asset folder that does not exist would fail loading: the precision is checked first."""
    import artalk_core.animate
    import artalk_core.pipeline

    fn = getattr(artalk_core.animate if step == "animate" else artalk_core.pipeline, step)
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        if step == "animate":
            fn(FIXTURE / "speech_16k.wav", assets=tmp_path / "missing", precision="fp8")
        else:
            fn(FIXTURE / "speech_16k.wav", model=ModelOptions(assets=tmp_path / "missing", precision="fp8"))


def test_a_precision_the_device_cannot_run_is_left_out(config: ModelConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    import artalk_core.model.artalk as artalk_mod

    real = artalk_mod.precision_context

    def no_fp16(precision: str, device: torch.device) -> Any:
        if precision == "fp16":
            raise RuntimeError("fp16 autocast is not supported here")
        return real(precision, device)

    monkeypatch.setattr(artalk_mod, "precision_context", no_fp16)
    got = prec.measure(config, CPU, ["bf16", "fp16"], repeat=1)
    assert set(got) == {"fp32", "bf16"}
    assert prec.choose(got, "cpu") in ("fp32", "bf16")


def test_api_takes_auto(measured: FakeMeasure, tiny_assets: Path, tmp_path: Path) -> None:
    from artalk_core.api import Animator

    with pytest.raises(InputError, match="fp8"):
        Animator(assets=tmp_path / "missing", precision="fp8")  # refused before loading
    measured.append(seconds(1.0, 0.4))
    motion = Animator(assets=tiny_assets, device="cpu", precision="auto").generate(FIXTURE / "speech_16k.wav")
    opts = json.loads(motion.meta["options"])
    assert opts["precision"] == "bf16" and opts["precision_requested"] == "auto"


def test_a_cache_that_cannot_be_written_is_only_not_saved(measured: FakeMeasure, config: ModelConfig,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    measured.append(seconds(1.0, 0.4))
    assert prec.resolve_precision("auto", CPU, config) == "bf16"
    assert prec.resolve_precision("auto", CPU, config) == "bf16"  # remembered in this process
    assert measured.calls == 1
