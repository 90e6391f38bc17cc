"""The JSON Schemas describe what the writers write (and reject what they should)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artalk_core import schemas
from artalk_core.constants import AUDIO_ENCODERS, CHANNEL_LAYOUT, CHUNK_AUDIO_TOKENS, MOTION_DIM
from artalk_core.errors import AssetError
from artalk_core.fileio import provenance
from artalk_core.formats import safetensors_header
from artalk_core.formats.features import write_features
from artalk_core.formats.motion import write_motion
from artalk_core.postprocess import postprocess_metadata
from artalk_core.schemas import load as load_schema

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).parents[2]
SHA = "0123456789abcdef" * 4


def _validator(name: str) -> Any:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _meta_of(path: Path) -> dict[str, str]:
    header = safetensors_header(path)
    assert header is not None
    return header["__metadata__"]


def test_schemas_are_package_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # They ship inside artalk_core (so a wheel has them), documented in the repository's schemas/README.md.
    assert schemas.names() == ["batch-results", "features", "gltf-extras", "live-client", "motion", "motion-stream",
                               "vertices"]
    assert (REPO / "schemas" / "README.md").is_file()
    assert not list((REPO / "schemas").glob("*.json"))
    for name in schemas.names():
        assert (REPO / "artalk_core" / "schemas" / f"{name}.schema.json").is_file()
        assert load_schema(name) == schemas.load(name)
    # The loader reads through importlib.resources, not from a folder next to the sources.
    (tmp_path / "motion.schema.json").write_text('{"title": "from resources"}')
    monkeypatch.setattr(schemas, "files", lambda package: tmp_path)
    assert schemas.load("motion") == {"title": "from resources"}
    assert schemas.names() == ["motion"]


def test_unknown_schema_is_an_asset_error() -> None:
    with pytest.raises(AssetError, match="no JSON Schema for format 'nope'"):
        schemas.load("nope")


def test_package_data_covers_the_schemas() -> None:
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert any(fnmatch.fnmatch("artalk_core", p) for p in config["packages"]["find"]["include"])
    patterns = config["package-data"]["artalk_core"]
    for name in schemas.names():
        rel = f"schemas/{name}.schema.json"
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_tensor_annotations_match_constants() -> None:
    (motion,) = load_schema("motion")["x-artalk-tensors"]
    assert motion["name"] == "motion" and motion["dtype"] == "float32" and motion["shape"] == ["T", MOTION_DIM]
    assert load_schema("motion")["properties"]["channel_layout"]["const"] == CHANNEL_LAYOUT
    (feats,) = load_schema("features")["x-artalk-tensors"]
    assert feats["name"] == "features" and feats["shape"] == ["chunks", "F", "C"]
    assert f"{CHUNK_AUDIO_TOKENS} for wav2vec2" in feats["description"]  # F depends on the audio encoder
    assert load_schema("features")["properties"]["audio_encoder"]["enum"] == list(AUDIO_ENCODERS)


def test_full_motion_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    meta = {"engine": "artalk", "style": "default", "style_sha256": SHA, "style_start": 0,
            "audio_samples": 16000, "checkpoint_sha256": SHA,
            **postprocess_metadata(clip_length=750, fix_pose=True),
            **provenance("artalk generate", options={"seed": 0}, inputs={"audio": SHA})}
    write_motion(out, np.zeros((25, 106), np.float32), meta)
    v = _validator("motion")
    errors = list(v.iter_errors(_meta_of(out)))
    assert errors == []


def test_minimal_motion_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    write_motion(out, np.zeros((1, 106), np.float32), {})
    _validator("motion").validate(_meta_of(out))


def test_weight_free_engine_motion_validates(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    write_motion(out, np.zeros((3, 106), np.float32),
                 {"engine": "energy", "checkpoint_sha256": "", "style": "none", **postprocess_metadata()})
    _validator("motion").validate(_meta_of(out))


@pytest.mark.parametrize("change", [
    {"fps": "30"}, {"format": "artalk.features"}, {"format_version": "2"}, {"frames": "0"},
    {"postprocessed": "yes"}, {"audio_sha256": "ABC"}, {"clip_length": "0"}, {"channels": "105"},
    {"created_at": "yesterday"}, {"extra": 3},
])
def test_motion_schema_rejects(tmp_path: Path, change: dict) -> None:
    out = tmp_path / "m.safetensors"
    write_motion(out, np.zeros((2, 106), np.float32), provenance("t"))
    meta = {**_meta_of(out), **change}
    assert not _validator("motion").is_valid(meta)


@pytest.mark.parametrize("drop", ["format", "format_version", "fps", "frames", "channels", "channel_layout"])
def test_motion_schema_requires(tmp_path: Path, drop: str) -> None:
    out = tmp_path / "m.safetensors"
    write_motion(out, np.zeros((2, 106), np.float32), {})
    meta = _meta_of(out)
    del meta[drop]
    assert not _validator("motion").is_valid(meta)


def test_features_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "f.safetensors"
    write_features(out, np.zeros((2, 199, 8), np.float32),
                   {"audio_samples": 100000, "checkpoint_sha256": SHA, "audio_sha256": SHA,
                    "model_config": {"a": 1}, **provenance("artalk encode-audio")})
    v = _validator("features")
    meta = _meta_of(out)
    assert list(v.iter_errors(meta)) == []
    for change in ({"format": "artalk.motion"}, {"chunks": "0"}, {"checkpoint_sha256": "x"},
                   {"audio_samples": "-1"}):
        assert not v.is_valid({**meta, **change})
    for drop in ("checkpoint_sha256", "audio_samples", "chunks", "feature_dim", "frames"):
        assert not v.is_valid({k: val for k, val in meta.items() if k != drop})
    mimi = tmp_path / "m.safetensors"  # Mimi features: 50 frames per chunk, and the encoder recorded
    write_features(mimi, np.zeros((2, 50, 8), np.float32),
                   {"audio_samples": 100000, "checkpoint_sha256": SHA, "audio_encoder": "mimi"})
    assert list(v.iter_errors(_meta_of(mimi))) == [] and _meta_of(mimi)["audio_encoder"] == "mimi"
    assert not v.is_valid({**_meta_of(mimi), "audio_encoder": "hubert"})
