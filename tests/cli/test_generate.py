"""`artalk encode-audio`, `generate`, `smooth`, `info`: the real commands on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"


def load_motion(path: Path) -> np.ndarray:
    from artalk_core.formats.motion import read_motion

    return read_motion(path).data


def test_generate_matches_reference_with_style(artalk, tiny_assets, expected, tmp_path):
    raw = tmp_path / "raw.safetensors"
    res = artalk("generate", WAV, "-s", "tiny_0", "--raw", "-o", raw, "--assets", tiny_assets, "-q")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == ""  # -q: nothing on stderr
    np.testing.assert_allclose(load_motion(raw), expected["motion_raw_style"], atol=1e-4, rtol=0)

    final = tmp_path / "final.safetensors"
    res = artalk("generate", WAV, "-s", "tiny_0", "-o", final, "--assets", tiny_assets)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stderr
    np.testing.assert_allclose(load_motion(final), expected["motion_final"], atol=1e-4, rtol=0)


def test_generate_default_style_and_default_output_name(artalk, tiny_assets, expected, tmp_path):
    shutil.copy(WAV, tmp_path / "speech.wav")
    res = artalk("generate", "speech.wav", "--raw", "--assets", tiny_assets, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "speech.motion.safetensors"
    np.testing.assert_allclose(load_motion(out), expected["motion_raw_nostyle"], atol=1e-4, rtol=0)


def test_style_by_path_and_assets_from_environment(artalk, tiny_assets, expected, tmp_path):
    out = tmp_path / "m.safetensors"
    res = artalk("generate", WAV, "-s", FIXTURE / "style_motion.pt", "--raw", "-o", out,
                 env_extra={"ARTALK_ASSETS": str(tiny_assets)})
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(load_motion(out), expected["motion_raw_style"], atol=1e-4, rtol=0)


def test_explicit_checkpoint_and_config_files(artalk, expected, tmp_path):
    out = tmp_path / "m.safetensors"
    res = artalk("generate", WAV, "--raw", "-o", out, "--checkpoint", FIXTURE / "weights.safetensors",
                 "--model-config", FIXTURE / "model_config.json", "--assets", tmp_path)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(load_motion(out), expected["motion_raw_nostyle"], atol=1e-4, rtol=0)


def test_a_model_config_of_absurd_sizes_is_one_line(artalk, tmp_path):
    """EMBED_DIM 2**40 was an unexpected RuntimeError (exit 1); sizes that fit no checkpoint exit 3."""
    cfg = json.loads((FIXTURE / "model_config.json").read_text())
    cfg["AR_CONFIG"]["EMBED_DIM"] = 2**40
    (tmp_path / "huge.json").write_text(json.dumps(cfg))
    cfg["AR_CONFIG"]["EMBED_DIM"] = 128
    (tmp_path / "other.json").write_text(json.dumps(cfg))
    common = ("generate", WAV, "-o", tmp_path / "m.safetensors", "--checkpoint", FIXTURE / "weights.safetensors")
    res = artalk(*common, "--model-config", tmp_path / "huge.json")
    assert res.returncode == 2
    assert_clean_error(res, "AR_CONFIG.EMBED_DIM' 1099511627776 is larger than an ARTalk model can be")
    res = artalk(*common, "--model-config", tmp_path / "other.json")
    assert res.returncode == 3
    assert_clean_error(res, "does not match the model config")
    assert not (tmp_path / "m.safetensors").exists()


def test_encode_audio_then_generate_from_features(artalk, tiny_assets, expected, tmp_path):
    feats = tmp_path / "speech.features.safetensors"
    res = artalk("encode-audio", WAV, "-o", feats, "--assets", tiny_assets)
    assert res.returncode == 0, res.stderr
    from artalk_core.formats.features import read_features

    f = read_features(feats)
    assert f.data.shape[0] == 3 and f.frames == 252
    np.testing.assert_allclose(np.asarray(f.data)[0], expected["audio_features_chunk0"], atol=1e-4, rtol=0)
    out = tmp_path / "m.safetensors"
    res = artalk("generate", feats, "-s", "tiny_0", "--raw", "-o", out, "--assets", tiny_assets)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(load_motion(out), expected["motion_raw_style"], atol=1e-4, rtol=0)


def test_pipe_generate_raw_into_smooth(artalk, tiny_assets, expected, tmp_path):
    gen = artalk("generate", "-", "-s", "tiny_0", "--raw", "-o", "-", "--assets", tiny_assets, "-q",
                 input=WAV.read_bytes())
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout[:8] != b"" and gen.stderr.strip() == ""
    final = tmp_path / "final.safetensors"
    sm = artalk("smooth", "-", "-o", final, input=gen.stdout)
    assert sm.returncode == 0, sm.stderr
    np.testing.assert_allclose(load_motion(final), expected["motion_final"], atol=1e-4, rtol=0)
    from artalk_core.formats.motion import read_motion

    meta = read_motion(final).meta
    assert meta["smoothed"] == "true" and meta["style"] == "tiny_0" and meta["created_by"] == "artalk smooth"


def test_piped_input_is_named_stdin_and_features_pipe_too(artalk, tiny_assets, tmp_path):
    import hashlib

    res = artalk("generate", "-", "-e", "energy", "-o", tmp_path / "m.safetensors", input=b"")
    assert_clean_error(res, "<stdin>", "empty")
    res = artalk("generate", "-", "-e", "energy", "-o", tmp_path / "m.safetensors", input=b"not audio at all" * 10)
    assert_clean_error(res, "<stdin>")
    assert not (tmp_path / "m.safetensors").exists()
    # Piped speech is hashed like the file; piped features generate like the file.
    res = artalk("generate", "-", "-e", "energy", "-o", tmp_path / "e.safetensors", "-q", input=WAV.read_bytes())
    assert res.returncode == 0, res.stderr
    from artalk_core.formats.motion import read_motion

    assert read_motion(tmp_path / "e.safetensors").meta["audio_sha256"] == hashlib.sha256(WAV.read_bytes()).hexdigest()
    feats = tmp_path / "f.features.safetensors"
    assert artalk("encode-audio", "-", "-o", feats, "--assets", tiny_assets, "-q", input=WAV.read_bytes()).returncode == 0
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert artalk("generate", feats, "-o", a, "--assets", tiny_assets, "-q").returncode == 0
    res = artalk("generate", "-", "-o", b, "--assets", tiny_assets, "-q", input=feats.read_bytes())
    assert res.returncode == 0, res.stderr
    assert np.array_equal(load_motion(a), load_motion(b))


def test_metadata_records_what_made_the_file(artalk, tiny_assets, tmp_path):
    from artalk_core.fileio import sha256_file
    from artalk_core.formats.motion import read_motion

    out = tmp_path / "m.safetensors"
    res = artalk("generate", WAV, "-s", "happy_1", "-o", out, "--assets", tiny_assets, "--fix-pose",
                 "--clip-length", "100")
    assert res.returncode == 0, res.stderr
    m = read_motion(out)
    assert m.data.shape == (100, 106)
    assert np.all(m.data[:, 100:103] == 0) and np.all(m.data[:, 104:106] == 0)
    meta = m.meta
    assert meta["audio_sha256"] == sha256_file(WAV)
    assert meta["checkpoint_sha256"] == sha256_file(tiny_assets / "ARTalk_wav2vec.pt")
    assert meta["style"] == "happy_1" and meta["engine"] == "artalk"
    assert meta["fix_pose"] == "true" and meta["clip_length"] == "100" and meta["postprocessed"] == "true"
    assert meta["fps"] == "25" and meta["artalk_version"]


def test_smooth_refuses_smoothed_input_unless_forced(artalk, tiny_assets, tmp_path):
    out = tmp_path / "m.safetensors"
    assert artalk("generate", WAV, "-o", out, "--engine", "energy").returncode == 0
    res = artalk("smooth", out, "-o", tmp_path / "again.safetensors")
    assert_clean_error(res, "already smoothed", "--force")
    assert not (tmp_path / "again.safetensors").exists()
    res = artalk("smooth", out, "-o", tmp_path / "again.safetensors", "--force")
    assert res.returncode == 0, res.stderr


def test_smooth_reference_pt_and_short_sequences(artalk, expected, tmp_path):
    ref = tmp_path / "speech_default_mesh_motions.pt"
    torch.save(torch.from_numpy(expected["motion_raw_style"]), ref)
    out = tmp_path / "s.safetensors"
    res = artalk("smooth", ref, "-o", out)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(load_motion(out), expected["motion_final"], atol=1e-5, rtol=0)
    for n in (1, 3, 7):
        short = tmp_path / f"short{n}.pt"
        torch.save(torch.from_numpy(expected["motion_raw_style"][:n].copy()), short)
        res = artalk("smooth", short, "-o", tmp_path / f"short{n}.safetensors")
        assert res.returncode == 0, res.stderr
        assert load_motion(tmp_path / f"short{n}.safetensors").shape == (n, 106)


def test_energy_engine_needs_no_weights(artalk, tmp_path):
    out = tmp_path / "e.safetensors"
    res = artalk("generate", WAV, "--engine", "energy", "-o", out, "--assets", tmp_path / "nothing-here")
    assert res.returncode == 0, res.stderr
    from artalk_core.formats.motion import read_motion

    m = read_motion(out)
    assert m.data.shape == (252, 106) and m.meta["engine"] == "energy" and m.meta["checkpoint_sha256"] == ""
    assert m.data[:, 103].max() > 0.05  # the jaw opens while speaking


def test_info_human_and_json(artalk, tmp_path):
    out = tmp_path / "e.safetensors"
    assert artalk("generate", WAV, "--engine", "energy", "-o", out).returncode == 0
    res = artalk("info", out)
    assert res.returncode == 0 and b"252" in res.stdout and b"energy" in res.stdout
    res = artalk("info", out, "--json")
    d = json.loads(res.stdout)
    assert d["kind"] == "motion" and d["frames"] == 252
    res = artalk("info", WAV, "--json")
    assert json.loads(res.stdout)["kind"] == "audio"


def test_silence_gives_a_closed_mouth_not_an_error(artalk, tiny_assets, tmp_path):
    from artalk_core.audio import write_wav

    wav = tmp_path / "silence.wav"
    write_wav(wav, np.zeros(32000, dtype=np.float32))
    out = tmp_path / "s.safetensors"
    res = artalk("generate", wav, "-o", out, "--assets", tiny_assets)
    assert res.returncode == 0, res.stderr
    assert "warning: the audio is silent" in res.stderr
    assert np.isfinite(load_motion(out)).all()
    res = artalk("generate", wav, "-o", out, "--engine", "energy")
    assert res.returncode == 0 and np.all(load_motion(out)[:, 103] == 0)


# ---- bad input: a clear error, a non-zero exit, never a partial file ----

def _bad_case(artalk, tiny_assets, tmp_path, src: Path, *words: str, extra: tuple = ()) -> None:
    out = tmp_path / "out.safetensors"
    res = artalk("generate", src, "-o", out, "--assets", tiny_assets, *extra)
    assert_clean_error(res, *words)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_empty_file(artalk, tiny_assets, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "empty.wav", "empty")


def test_truncated_wav_header(artalk, tiny_assets, tmp_path):
    (tmp_path / "cut.wav").write_bytes(WAV.read_bytes()[:30])
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "cut.wav", "cut.wav")


def test_not_audio(artalk, tiny_assets, tmp_path):
    (tmp_path / "notes.txt").write_text("this is not speech\n" * 50)
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "notes.txt", "notes.txt")


def test_audio_shorter_than_one_frame(artalk, tiny_assets, tmp_path):
    from artalk_core.audio import write_wav

    write_wav(tmp_path / "tiny.wav", np.zeros(100, dtype=np.float32))
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "tiny.wav", "shorter")


def test_missing_input(artalk, tiny_assets, tmp_path):
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "nope.wav", "nope.wav")


def test_motion_file_given_to_generate(artalk, tiny_assets, tmp_path, expected):
    from artalk_core.formats.motion import write_motion

    write_motion(tmp_path / "m.safetensors", expected["motion_final"], {"engine": "artalk"})
    _bad_case(artalk, tiny_assets, tmp_path, tmp_path / "m.safetensors", "motion")


def test_nan_in_style_file(artalk, tiny_assets, tmp_path):
    style = torch.load(FIXTURE / "style_motion.pt", weights_only=True).clone()
    style[7, 3] = float("nan")
    torch.save(style, tmp_path / "bad_style.pt")
    _bad_case(artalk, tiny_assets, tmp_path, WAV, "nan", extra=("-s", tmp_path / "bad_style.pt"))


def test_wrong_style_shape(artalk, tiny_assets, tmp_path):
    torch.save(torch.zeros(50, 100), tmp_path / "narrow.pt")
    _bad_case(artalk, tiny_assets, tmp_path, WAV, "106", extra=("-s", tmp_path / "narrow.pt"))
    torch.save(torch.zeros(20, 106), tmp_path / "short.pt")
    _bad_case(artalk, tiny_assets, tmp_path, WAV, "50", extra=("-s", tmp_path / "short.pt"))


def test_nan_in_motion_for_smooth(artalk, tmp_path, expected):
    m = expected["motion_raw_style"].copy()
    m[5, 101] = np.inf
    torch.save(torch.from_numpy(m), tmp_path / "bad.pt")
    res = artalk("smooth", tmp_path / "bad.pt", "-o", tmp_path / "o.safetensors")
    assert_clean_error(res, "bad.pt")
    assert not (tmp_path / "o.safetensors").exists()


def test_unknown_style_lists_the_available_ones_and_suggests(artalk, tiny_assets, tmp_path):
    _bad_case(artalk, tiny_assets, tmp_path, WAV, "happy_1", "tiny_0", "did you mean", extra=("-s", "hapy_1"))


def test_features_from_another_checkpoint(artalk, tiny_assets, tmp_path):
    feats = tmp_path / "f.safetensors"
    assert artalk("encode-audio", WAV, "-o", feats, "--assets", tiny_assets).returncode == 0
    other = tmp_path / "other_assets"
    shutil.copytree(tiny_assets, other)
    sd = torch.load(other / "ARTalk_wav2vec.pt", weights_only=True)
    sd["logits_head.bias"] = sd["logits_head.bias"] + 1.0
    torch.save(sd, other / "ARTalk_wav2vec.pt")
    res = artalk("generate", feats, "-o", tmp_path / "m.safetensors", "--assets", other)
    assert_clean_error(res, "checkpoint", "encode-audio")
    assert not (tmp_path / "m.safetensors").exists()


def test_unwritable_output(artalk, tmp_path):
    res = artalk("generate", WAV, "--engine", "energy", "-o", tmp_path / "no" / "such" / "dir" / "m.safetensors")
    assert_clean_error(res, "does not exist")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file instead
            (tmp_path / "afile").write_text("x")
            res = artalk("generate", WAV, "--engine", "energy", "-o", tmp_path / "afile" / "m.safetensors")
            assert_clean_error(res, "not a folder")
        else:
            res = artalk("generate", WAV, "--engine", "energy", "-o", ro / "m.safetensors")
            assert_clean_error(res, "not writable")
    finally:
        ro.chmod(0o700)


def test_failed_step_never_overwrites_a_good_file(artalk, tiny_assets, tmp_path):
    out = tmp_path / "out.safetensors"
    assert artalk("generate", WAV, "--engine", "energy", "-o", out).returncode == 0
    good = out.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    res = artalk("generate", tmp_path / "empty.wav", "-o", out, "--engine", "energy")
    assert res.returncode != 0
    assert out.read_bytes() == good


def test_missing_checkpoint_says_where_and_how(artalk, tmp_path):
    res = artalk("generate", WAV, "-o", tmp_path / "m.safetensors", "--assets", tmp_path / "empty_assets")
    assert_clean_error(res, "ARTalk_wav2vec.pt", str(tmp_path / "empty_assets"), "download")


def test_bad_checkpoint_names_the_keys(artalk, tiny_assets, tmp_path):
    bad = tmp_path / "assets"
    shutil.copytree(tiny_assets, bad)
    sd = torch.load(bad / "ARTalk_wav2vec.pt", weights_only=True)
    del sd["vqfeat_embed.weight"]
    sd["surprise.weight"] = torch.zeros(3)
    torch.save(sd, bad / "ARTalk_wav2vec.pt")
    res = artalk("generate", WAV, "-o", tmp_path / "m.safetensors", "--assets", bad)
    assert_clean_error(res, "vqfeat_embed.weight", "surprise.weight")


def test_debug_shows_the_traceback(artalk, tmp_path):
    res = artalk("generate", tmp_path / "nope.wav", "--engine", "energy", "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_raw_with_postprocessing_flags_is_refused(artalk, tmp_path):
    res = artalk("generate", WAV, "--engine", "energy", "--raw", "--fix-pose", "-o", tmp_path / "m.safetensors")
    assert_clean_error(res, "smooth")


def test_damaged_audio_is_used_with_a_warning(artalk, tmp_path):
    cut = tmp_path / "cut.wav"
    cut.write_bytes(WAV.read_bytes()[: 44 + 2 * 16000])  # the header promises 10 s, 1 s is there
    out = tmp_path / "m.safetensors"
    res = artalk("generate", cut, "--engine", "energy", "-o", out)
    assert res.returncode == 0, res.stderr
    assert "warning:" in res.stderr and "cut short" in res.stderr
    assert load_motion(out).shape == (25, 106)


def test_precision_option(artalk, tiny_assets, expected, tmp_path):
    from artalk_core.formats.motion import read_motion

    out = tmp_path / "bf16.safetensors"
    res = artalk("generate", WAV, "-s", "tiny_0", "--precision", "bf16", "-o", out, "--assets", tiny_assets)
    assert res.returncode == 0, res.stderr
    m = read_motion(out)
    assert json.loads(m.meta["options"])["precision"] == "bf16"
    assert m.data.shape == expected["motion_final"].shape and np.isfinite(m.data).all()
    assert_clean_error(artalk("generate", WAV, "--precision", "fp8", "-o", out, "--assets", tiny_assets), "fp8")


def test_reference_pt_output(artalk, tmp_path, expected):
    out = tmp_path / "speech_default_mesh_motions.pt"
    res = artalk("generate", WAV, "--engine", "energy", "-o", out)
    assert res.returncode == 0, res.stderr
    assert "keeps no metadata" in res.stderr
    t = torch.load(out, weights_only=True)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == (252, 106)
