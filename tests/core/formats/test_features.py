"""Features format: round trips, consistency checks, checkpoint matching, errors, atomicity."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save

from artalk_core.errors import FormatError, InputError
from artalk_core.fileio import provenance
from artalk_core.formats import sniff_kind
from artalk_core.formats.features import Features, check_features_match, features_bytes, read_features, write_features
from artalk_core.formats.motion import motion_bytes
from artalk_core.timing import num_chunks, num_frames

SHA_A = "a" * 64
SHA_B = "b" * 64
CONFIG = {"AR_CONFIG": {"EMBED_DIM": 64}, "AUDIO_ENCODER": "wav2vec"}


def _feats(n: int = 3, c: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 199, c)).astype(np.float32)


def _meta(samples: int = 160707, sha: str = SHA_A) -> dict:
    return {"audio_samples": samples, "checkpoint_sha256": sha, "audio_sha256": SHA_B,
            "model_config": CONFIG, **provenance("artalk encode-audio")}


def test_round_trip(tmp_path: Path) -> None:
    data = _feats(3)  # 160707 samples -> 252 frames -> 3 chunks
    out = tmp_path / "f.safetensors"
    write_features(out, data, _meta())
    f = read_features(out)
    assert isinstance(f, Features)
    np.testing.assert_array_equal(f.data, data)
    assert f.chunks == 3 and f.feature_dim == 16
    assert f.audio_samples == 160707 and f.frames == num_frames(160707) == 252
    assert f.checkpoint_sha256 == SHA_A and f.audio_sha256 == SHA_B
    assert f.model_config == CONFIG
    assert f.meta["format"] == "artalk.features" and f.meta["format_version"] == "1"
    assert f.meta["chunks"] == "3" and f.meta["frames"] == "252" and f.meta["feature_dim"] == "16"
    assert json.loads(f.meta["model_config"]) == CONFIG
    assert torch.equal(f.to_torch(), torch.from_numpy(data))


def test_torch_input_bytes_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = torch.randn(1, 199, 8, dtype=torch.float64)
    blob = features_bytes(data, _meta(samples=64000))
    assert sniff_kind(blob) == "features"
    np.testing.assert_allclose(read_features(blob).data, data.float().numpy())

    class _Stdin:
        buffer = io.BytesIO(blob)

    monkeypatch.setattr(sys, "stdin", _Stdin())
    assert read_features("-").chunks == 1


@pytest.mark.parametrize("samples", [1, 63999, 64000, 64001, 128000, 128641])
def test_chunk_count_follows_timing(samples: int) -> None:
    n = num_chunks(num_frames(samples))
    f = read_features(features_bytes(_feats(n, 4), _meta(samples=samples)))
    assert f.chunks == n and f.frames == num_frames(samples)
    with pytest.raises(InputError, match="chunks"):
        features_bytes(_feats(n + 1, 4), _meta(samples=samples))


@pytest.mark.parametrize("data, meta, needle", [
    (_feats(1), {"checkpoint_sha256": SHA_A}, "audio_samples"),
    (_feats(1), {"audio_samples": 0, "checkpoint_sha256": SHA_A}, "audio_samples"),
    (_feats(1), {"audio_samples": 100}, "checkpoint_sha256"),
    (_feats(1), {"audio_samples": 100, "checkpoint_sha256": "nothex"}, "checkpoint_sha256"),
    (_feats(1), {"audio_samples": 100, "checkpoint_sha256": SHA_A, "model_config": "{oops"}, "JSON"),
    (np.zeros((1, 198, 4), np.float32), {"audio_samples": 100, "checkpoint_sha256": SHA_A}, "199"),
    (np.zeros((199, 4), np.float32), {"audio_samples": 100, "checkpoint_sha256": SHA_A}, "shape"),
    (np.zeros((0, 199, 4), np.float32), {"audio_samples": 100, "checkpoint_sha256": SHA_A}, "empty"),
    (np.full((1, 199, 4), np.nan, np.float32), {"audio_samples": 100, "checkpoint_sha256": SHA_A},
     "chunk 0, token 0, channel 0"),
])
def test_write_errors_leave_existing_file(tmp_path: Path, data: np.ndarray, meta: dict, needle: str) -> None:
    out = tmp_path / "f.safetensors"
    write_features(out, _feats(1), _meta(samples=100))
    before = out.read_bytes()
    with pytest.raises(InputError, match=needle):
        write_features(out, data, meta)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.safetensors"]


def test_read_errors() -> None:
    with pytest.raises(FormatError, match="artalk motion file"):
        read_features(motion_bytes(np.zeros((3, 106), np.float32), {}))
    with pytest.raises(FormatError, match="not an artalk features file"):
        read_features(st_save({"features": _feats(1)}))
    with pytest.raises(FormatError, match="empty"):
        read_features(b"")
    blob = features_bytes(_feats(2), _meta(samples=100000))
    with pytest.raises(FormatError, match="truncated"):
        read_features(blob[:-100])
    newer = st_save({"features": _feats(1)}, metadata={"format": "artalk.features", "format_version": "9",
                                                      "audio_samples": "100"})
    with pytest.raises(FormatError, match="version 9"):
        read_features(newer)
    inconsistent = st_save({"features": _feats(2)}, metadata={"format": "artalk.features",
                                                              "format_version": "1", "audio_samples": "100"})
    with pytest.raises(FormatError, match="need 1"):
        read_features(inconsistent)
    nan = _feats(1)
    nan[0, 5, 2] = np.inf
    bad = st_save({"features": nan}, metadata={"format": "artalk.features", "format_version": "1",
                                               "audio_samples": "100"})
    with pytest.raises(FormatError, match="token 5, channel 2"):
        read_features(bad)


def test_check_features_match() -> None:
    f = read_features(features_bytes(_feats(1, 16), _meta(samples=100)))
    check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=16)
    check_features_match(f, checkpoint_sha256="", audio_dim=16)  # unknown checkpoint hash: skip
    with pytest.raises(InputError) as e:
        check_features_match(f, checkpoint_sha256=SHA_B, audio_dim=16)
    assert f"checkpoint {SHA_A[:12]}, not by {SHA_B[:12]}" in str(e.value)
    assert "rerun encode-audio" in str(e.value)
    with pytest.raises(InputError, match=r"shape \[chunks, 199, 16\] but the model expects 1024 channels"):
        check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=1024)
    anonymous = read_features(features_bytes(_feats(1, 16), _meta(samples=100, sha="")))
    with pytest.raises(InputError, match="do not say which checkpoint"):
        check_features_match(anonymous, checkpoint_sha256=SHA_A, audio_dim=16)


def test_in_memory_features_with_torch_data() -> None:
    f = Features(torch.zeros(2, 199, 32), {"audio_samples": "100000", "checkpoint_sha256": SHA_A})
    assert f.chunks == 2 and f.feature_dim == 32 and f.frames == 157
    assert f.to_torch() is f.data
    check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=32)


def test_features_record_their_audio_encoder(tmp_path: Path) -> None:
    # Mimi features: 50 frames of 512 per chunk, refused by a wav2vec2 model and vice versa.
    mimi = np.random.default_rng(1).standard_normal((3, 50, 8)).astype(np.float32)
    path = tmp_path / "m.safetensors"
    write_features(path, mimi, {**_meta(), "audio_encoder": "mimi"})
    f = read_features(path)
    assert (f.audio_encoder, f.tokens, f.feature_dim) == ("mimi", 50, 8) and f.meta["audio_encoder"] == "mimi"
    check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=8, audio_encoder="mimi", audio_tokens=50)
    with pytest.raises(InputError, match="made by the mimi audio encoder but the model uses wav2vec"):
        check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=8)
    with pytest.raises(InputError, match=r"expects \[chunks, 25, 8\]"):
        check_features_match(f, checkpoint_sha256=SHA_A, audio_dim=8, audio_encoder="mimi", audio_tokens=25)
    old = read_features(features_bytes(_feats(1), _meta(samples=100)))  # no audio_encoder: wav2vec2's
    assert old.audio_encoder == "wav2vec" and "audio_encoder" not in old.meta
    with pytest.raises(InputError, match="made by the wav2vec audio encoder but the model uses mimi"):
        check_features_match(old, checkpoint_sha256=SHA_A, audio_dim=16, audio_encoder="mimi", audio_tokens=50)
    with pytest.raises(InputError, match="audio_encoder' must be wav2vec or mimi"):
        write_features(tmp_path / "x.safetensors", mimi, {**_meta(), "audio_encoder": "hubert"})
    with pytest.raises(InputError, match="199 frames per chunk, these have 50"):  # 50 frames need "mimi"
        write_features(tmp_path / "x.safetensors", mimi, _meta())
    from artalk_core.formats.features import FeaturesWriter

    with FeaturesWriter(tmp_path / "g.safetensors", 8, tokens=50) as w:
        w.write(mimi)
        w.finish({**_meta(), "audio_encoder": "mimi"})
    assert (tmp_path / "g.safetensors").read_bytes() == path.read_bytes()


# --- block-wise writing and reading ---------------------------------------------------------------

def test_features_writer_in_groups_equals_write_features(tmp_path: Path) -> None:
    from artalk_core.formats.features import FeaturesWriter, read_features_meta

    data = _feats(3)
    with FeaturesWriter(tmp_path / "g.safetensors", 16) as w:
        w.write(data[:2])
        w.write(torch.from_numpy(data[2:]))
        w.finish(_meta())
        mapped = w.map_rows()
    write_features(tmp_path / "whole.safetensors", data, _meta())
    assert (tmp_path / "g.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    assert np.array_equal(mapped, data)
    assert read_features_meta(tmp_path / "g.safetensors") == read_features(tmp_path / "g.safetensors").meta


def test_features_writer_checks_metadata_against_the_chunks(tmp_path: Path) -> None:
    from artalk_core.formats.features import FeaturesWriter

    with pytest.raises(InputError, match="need"):
        with FeaturesWriter(tmp_path / "g.safetensors", 16) as w:
            w.write(_feats(2))
            w.finish(_meta())  # 160707 samples need 3 chunks
    assert not (tmp_path / "g.safetensors").exists()


def test_features_reader_groups_and_checks(tmp_path: Path) -> None:
    from artalk_core.formats.features import FeaturesReader
    from artalk_core.formats.tensorfile import tensor_file_bytes

    data = _feats(3)
    path = tmp_path / "f.safetensors"
    write_features(path, data, _meta())
    with FeaturesReader(path) as r:
        assert (r.chunks, r.feature_dim, r.frames, r.checkpoint_sha256) == (3, 16, 252, SHA_A)
        assert np.array_equal(np.concatenate(list(r.iter_groups(2))), data)
        check_features_match(r, checkpoint_sha256=SHA_A, audio_dim=16)
        with pytest.raises(InputError, match="not by"):
            check_features_match(r, checkpoint_sha256=SHA_B, audio_dim=16)
    with FeaturesReader(path.read_bytes()) as r:  # bytes: read whole, same interface
        assert np.array_equal(np.concatenate(list(r.iter_groups(2))), data)
    bad = data.copy()
    bad[2, 100, 7] = np.nan
    meta = read_features(path).meta
    path.write_bytes(tensor_file_bytes("features", bad, meta))
    with pytest.raises(FormatError, match="at chunk 2, token 100, channel 7"):
        FeaturesReader(path)
    path.write_bytes(motion_bytes(np.zeros((3, 106), np.float32)))
    with pytest.raises(FormatError, match="motion file, not audio features"):
        FeaturesReader(path)
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        FeaturesReader(path)
