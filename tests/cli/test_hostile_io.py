"""A second hostile review of inputs and outputs (findings 1, 3, 7, 9, 10, 14, 17, 18), each as a class:
a vertices file on a full disk; work bounded by what a file really holds; one bound on motion
values; every input path read through the one spooling helper (FIFOs, ``<(...)``); a closed
stdout; the ``--keep`` check; truncated glTF; messages that name what the user gave; a stop
signal at an output's commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURE, REPO, assert_clean_error, process_env

WAV = FIXTURE / "speech_16k.wav"
FLAME_5023 = FIXTURE.parent / "tiny_gaga" / "flame_synthetic_5023.pt"


@pytest.fixture(scope="module")
def motion(tmp_path_factory) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("motion") / "m.motion.safetensors"
    write_motion(path, 0.1 * np.random.default_rng(0).standard_normal((10, 106)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory) -> Path:
    """The first second of the fixture speech (one model chunk: generation is quick)."""
    from artalk_core.audio import load_audio, write_wav

    path = tmp_path_factory.mktemp("wav") / "short.wav"
    write_wav(path, load_audio(WAV).samples[:16000])
    return path


# ---- 1. a vertices .h5 on a full disk: one line, exit 4, and a batch writes its results ----

def test_a_batch_writing_vertices_past_a_file_size_limit_fails_the_clip(tmp_path) -> None:
    """`ulimit -f` (or a full disk) under a vertices .h5: HDF5 said 'Driver write request failed'
    and the process segfaulted (exit 139) with no results file; now the clip fails with the
    output named and the batch writes results.jsonl."""
    import json
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    (tmp_path / "jobs.csv").write_text(f"audio\n{WAV}\n")
    proc = subprocess.run([sys.executable, "-m", "artalk_cli.main", "batch", str(tmp_path / "jobs.csv"), "-o",
                           str(tmp_path / "out"), "-e", "energy", "--workers", "1", "--outputs", "vertices", "-q"],
                          capture_output=True, env=process_env(), preexec_fn=limit, timeout=300, cwd=REPO)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "Driver" not in stderr and "unexpected" not in stderr, stderr
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert row["status"] == "failed" and row["error"].endswith(".h5: File too large"), row
    assert not [p for p in (tmp_path / "out").rglob("*") if ".part" in p.name]


# ---- 3. work bounded by the file's real content ----

def _wide_bomb(path: Path, vertices: int) -> None:
    """9 KB of gzip chunks announcing 32 frames of ``vertices`` vertices (zeros)."""
    import zlib

    import h5py

    blob = zlib.compress(bytes(vertices * 12), 9)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("vertices", shape=(32, vertices, 3), dtype="f4", chunks=(1, vertices, 3),
                             compression="gzip")
        for t in range(32):
            d.id.write_direct_chunk((t, 0, 0), blob)
        f["faces"] = np.array([[0, 1, 2]], np.int32)


def test_vertices_files_announcing_huge_frames_are_refused_before_reading(artalk, tmp_path) -> None:
    """A few MB of HDF5 announcing 32 frames of 25M vertices: 'unexpected MemoryError: Unable to
    allocate 8.94 GiB' in eval and render. The sizes are checked from the header."""
    _wide_bomb(tmp_path / "bomb.h5", 2_000_000)
    for args in (["eval", tmp_path / "bomb.h5", tmp_path / "bomb.h5"],
                 ["render", tmp_path / "bomb.h5", "-o", tmp_path / "x.mp4", "--size", "32"],
                 ["render", tmp_path / "bomb.h5", "-o", tmp_path / "x.h5"]):
        res = artalk(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert_clean_error(res, "announces 2000000 vertices per frame", "at most 1048576")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.h5"]


def test_eval_checks_the_vertex_count_before_reading_a_frame(artalk, tmp_path) -> None:
    """eval read a first block of frames and only then compared the vertex count with the masks'."""
    import h5py

    v = np.zeros((4, 312, 3), np.float32)
    v[0, 0, 0] = np.nan  # reading any frame fails; the count is known without reading one
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["vertices"] = v
        f["faces"] = np.array([[0, 1, 2]], np.int32)
    res = artalk("eval", tmp_path / "v.h5", tmp_path / "v.h5")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "has 312 vertices per frame", "FLAME's 5023")


# ---- 7. one bound on motion values, everywhere motion is read ----

@pytest.mark.parametrize("value", [3e38, 1e30, 101.0, -150.0])
def test_motion_values_beyond_the_bound_are_refused_everywhere(artalk, tmp_path, value) -> None:
    """3e38 rendered a video with numpy overflow warnings, 1e30 wrote a vertices file that artalk's
    own reader then refused; both exported and evaluated with exit 0."""
    m = 0.3 * torch.randn(10, 106)
    m[3, 5] = value
    torch.save(m, tmp_path / "bad_motions.pt")
    bad = tmp_path / "bad_motions.pt"
    for args in (["render", bad, "--flame", FLAME_5023, "-o", tmp_path / "x.mp4", "--size", "32"],
                 ["render", bad, "--flame", FLAME_5023, "-o", tmp_path / "x.h5"],
                 ["export", bad, "--flame", FLAME_5023, "-o", tmp_path / "x.glb"],
                 ["smooth", bad, "-o", tmp_path / "s.motion.safetensors"],
                 ["eval", bad, bad, "--flame", FLAME_5023, "--json"]):
        res = artalk(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert_clean_error(res, f"has the value {value:g} at frame 3, channel 5 (expression[5])", "at most 100")
        assert "Warning" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_motions.pt"]


def test_motion_at_the_bound_is_read(tmp_path) -> None:
    from artalk_core.formats.motion import read_motion, write_motion

    m = np.zeros((2, 106), np.float32)
    m[1, 104] = -100.0
    write_motion(tmp_path / "m.safetensors", m)
    assert read_motion(tmp_path / "m.safetensors").data[1, 104] == -100.0


# ---- 10. a closed stdout: exit 4 "cannot write stdout" for every command that writes to it ----

def run_without_stdout(*args: object, env_extra: dict | None = None) -> tuple[int, str]:
    """``artalk *args`` in-process with ``sys.stdout`` None, as Python sets it in a process started
    with stdout closed (``>&-``); (exit code, stderr)."""
    import signal

    import typer
    from typer.testing import CliRunner

    from artalk_cli import console
    from artalk_cli.main import app
    from tests.conftest import CLI_ENV

    handlers = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP")}
    code: int = 0
    with CliRunner().isolation(env={**CLI_ENV, "ARTALK_ASSETS": None, **(env_extra or {})}) as (_out, err, _mixed):
        console.reset_consoles()
        saved, sys.stdout = sys.stdout, None  # type: ignore[assignment]
        try:
            typer.main.get_command(app).main(args=[str(a) for a in args], prog_name="artalk", standalone_mode=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            sys.stdout = saved
            for name, handler in handlers.items():
                signal.signal(getattr(signal, name), handler)
        stderr = err.getvalue().decode()
    console.reset_consoles()
    return code, stderr


def test_a_closed_stdout_is_an_output_error(tiny_assets, motion, tmp_path) -> None:
    """`generate -o - >&-` was 'unexpected AttributeError', `info --json >&-` and `eval >&-` exit 0
    having written nothing."""
    from artalk_core.formats.vertices import write_vertices

    v = 0.1 * np.random.default_rng(1).standard_normal((3, 5023, 3)).astype(np.float32)
    write_vertices(tmp_path / "v.h5", v, np.array([[0, 1, 2]], np.int32), {})
    for args in (["generate", WAV, "-e", "energy", "-o", "-"],
                 ["generate", WAV, "--stream", "--assets", tiny_assets],
                 ["smooth", motion, "-o", "-"],
                 ["info", motion], ["info", motion, "--json"],
                 ["eval", tmp_path / "v.h5", tmp_path / "v.h5"], ["eval", tmp_path / "v.h5", tmp_path / "v.h5", "--json"],
                 ["assets", "list", "--root", tiny_assets], ["--version"]):
        code, stderr = run_without_stdout(*args)
        assert code == 4, (args, stderr)
        assert stderr.count("error:") == 1 and "error: cannot write stdout: it is closed" in stderr, (args, stderr)
        assert "Traceback" not in stderr and "unexpected" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.h5"]


def test_a_process_started_without_stdout(tmp_path) -> None:
    """The real thing, `>&-`: exit 4 before the work; a closed stdin read as `-` is an input error."""
    import os

    for args, closed, code, words in ((["generate", str(WAV), "-e", "energy", "-o", "-"], 1, 4, "cannot write stdout"),
                                      (["generate", "-", "-e", "energy", "-o", str(tmp_path / "m.safetensors")], 0, 2,
                                       "cannot read stdin: it is closed")):
        proc = subprocess.run([sys.executable, "-m", "artalk_cli.main", *args], stderr=subprocess.PIPE,
                              stdout=None if closed == 1 else subprocess.DEVNULL, stdin=None if closed == 0 else
                              subprocess.DEVNULL, preexec_fn=lambda fd=closed: os.close(fd), env=process_env(),
                              timeout=120, cwd=REPO)
        stderr = proc.stderr.decode()
        assert proc.returncode == code, stderr
        assert stderr.count("error:") == 1 and words in stderr and "Traceback" not in stderr, stderr
    assert list(tmp_path.iterdir()) == []


def test_a_stdout_that_cannot_be_written(motion) -> None:
    """`info --json > /dev/full` said 'cannot write the output', and a stdout open for reading only
    gave 'unexpected OSError: [Errno 9] Bad file descriptor'."""
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    for mode, why in (("wb", "No space left on device"), ("rb", "Bad file descriptor")):
        with open("/dev/full", mode) as out:
            proc = subprocess.run([sys.executable, "-m", "artalk_cli.main", "info", str(motion), "--json"],
                                  stdout=out, stderr=subprocess.PIPE, env=process_env(), timeout=120, cwd=REPO)
        stderr = proc.stderr.decode()
        assert proc.returncode == 4, stderr
        assert stderr.strip() == f"error: cannot write stdout: {why}", stderr


# ---- 18. a stop signal at an output's commit: before it wins, after it the output is complete and said ----

def _signal_at_commit(monkeypatch, target: Path, when: str) -> list[str]:
    """Deliver SIGINT (to this process: the in-process command's handler) just before or just
    after ``target`` is renamed into place; or note one as a finaliser that swallowed it would."""
    import os
    import signal

    from artalk_core.interrupt import note_interrupt

    real_replace, real_chmod = os.replace, os.chmod
    fired: list[str] = []

    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if Path(dst) == target and not fired:
            fired.append(when)
            if when == "during":  # the handler runs after the rename returns
                os.kill(os.getpid(), signal.SIGINT)
            elif when == "swallowed":  # lands in a finaliser after the commit: only noted
                note_interrupt(signal.SIGINT)

    def chmod(path, mode, *a, **k):
        real_chmod(path, mode, *a, **k)
        if when == "before" and Path(path).name.startswith(f".{target.name}.") and not fired:
            fired.append(when)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "chmod", chmod)
    return fired


@pytest.mark.parametrize("when", ["before", "during", "swallowed"])
def test_a_stop_signal_at_the_commit_of_render_h5(artalk, motion, tmp_path, monkeypatch, when) -> None:
    """A Ctrl-C in the last moments of `render -o x.h5` twice ended with exit 0 and 'wrote x.h5'.
    Now: a signal before the commit leaves no output; one during or after it finds the output
    complete and says so; the exit status is 130 either way."""
    from artalk_core.formats.vertices import read_vertices

    out = tmp_path / "x.h5"
    fired = _signal_at_commit(monkeypatch, out, when)
    res = artalk("render", motion, "-o", out, "-q")
    assert fired == [when]
    assert res.returncode == 130, res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == [
        "error: interrupted" if when == "before" else f"error: interrupted after writing {out} (complete)"]
    if when == "before":
        assert list(tmp_path.iterdir()) == []
    else:
        with read_vertices(out) as vf:
            assert vf.frames == 10 and len(list(vf)) == 10
        assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


# ---- 9. every input path may be a pipe: read once through the one spooling helper, named as given ----

def test_style_checkpoint_and_model_config_read_from_fifos(artalk, tiny_assets, short_wav, tmp_path) -> None:
    """-s, --checkpoint and --model-config as FIFOs or <(...) were 'not found' (or, for the
    checkpoint, named /proc/N/fd/pipe:[...]); now each is read once into a temp copy."""
    from artalk_core.formats.motion import read_motion
    from tests.cli.test_hostile import Fifo

    style, ckpt, cfg = (tiny_assets / "style_motion" / "tiny_0.pt", tiny_assets / "ARTalk_wav2vec.pt",
                        tiny_assets / "config.json")
    res = artalk("generate", short_wav, "-s", style, "--checkpoint", ckpt, "--model-config", cfg, "-o",
                 tmp_path / "files.motion.safetensors", "-q")
    assert res.returncode == 0, res.stderr
    with Fifo(tmp_path, "style.fifo", style.read_bytes()) as s, Fifo(tmp_path, "ckpt.fifo", ckpt.read_bytes()) as c, \
            Fifo(tmp_path, "cfg.fifo", cfg.read_bytes()) as g:
        res = artalk("generate", short_wav, "-s", s, "--checkpoint", c, "--model-config", g, "-o",
                     tmp_path / "fifo.motion.safetensors", "-q")
    assert res.returncode == 0, res.stderr
    a, b = read_motion(tmp_path / "files.motion.safetensors"), read_motion(tmp_path / "fifo.motion.safetensors")
    np.testing.assert_array_equal(a.data, b.data)
    assert b.meta["style"] == str(tmp_path / "style.fifo")  # the name given, not the temp copy
    for key in ("style_sha256", "checkpoint_sha256"):
        assert a.meta[key] == b.meta[key], key
    with Fifo(tmp_path, "style2.fifo", style.read_bytes()) as s:
        res = artalk("animate", short_wav, "-s", s, "-e", "energy", "--size", "32", "-o", tmp_path / "a.mp4", "-q")
    assert res.returncode == 0, res.stderr


def test_messages_name_the_pipe_given_not_the_temp_copy(artalk, motion, tiny_assets, tmp_path) -> None:
    from tests.cli.test_hostile import Fifo

    with Fifo(tmp_path, "head.fifo", FLAME_5023.read_bytes()) as f:
        res = artalk("render", motion, "--flame", f, "-o", tmp_path / "r.h5")
    assert res.returncode == 0, res.stderr
    assert f"head FLAME ({tmp_path / 'head.fifo'})" in res.stderr and "artalk-input" not in res.stderr
    with Fifo(tmp_path, "bad.fifo", b"\0" * 1000) as c:
        res = artalk("generate", WAV, "--checkpoint", c, "--assets", tiny_assets, "-o", tmp_path / "m.safetensors")
    assert res.returncode == 3, res.stderr
    assert_clean_error(res, f"checkpoint '{tmp_path / 'bad.fifo'}'", "truncated or corrupt")
    assert "artalk-input" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fifo", "head.fifo", "r.h5"]


# ---- 14. animate --keep: the kept WAV is an output only when --text writes it ----

def test_keep_accepts_the_audio_sitting_in_the_keep_folder(artalk, short_wav, tmp_path) -> None:
    """`animate s.wav --keep .` (s.wav in .) was refused: '--keep s.wav is the input AUDIO: writing
    it would destroy that file'; --keep writes the WAV only for --text."""
    import shutil

    shutil.copy(short_wav, tmp_path / "s.wav")
    before = (tmp_path / "s.wav").read_bytes()
    res = artalk("animate", "s.wav", "-e", "energy", "--keep", ".", "-o", "k.mp4", "--size", "32", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "s.wav").read_bytes() == before
    assert {"k.mp4", "s_default.motion.safetensors", "s_default.h5"} <= {p.name for p in tmp_path.iterdir()}
    # with --text the kept WAV is written: an input at its place is still refused, before any work
    shutil.copy(FLAME_5023, tmp_path / "tts.wav")
    res = artalk("animate", "--text", "hello", "-e", "energy", "--keep", ".", "-o", "t.mp4", "--flame", "tts.wav",
                 cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "--keep tts.wav is the input --flame")
    assert (tmp_path / "tts.wav").read_bytes() == FLAME_5023.read_bytes() and not (tmp_path / "t.mp4").exists()


# ---- 17. info on a truncated glTF, or one whose lengths lie ----

def test_info_refuses_a_gltf_whose_bytes_are_not_all_there(artalk, motion, tmp_path) -> None:
    """A .glb cut in half, or one whose GLB header or BIN chunk length lies, was described in full
    with exit 0; a .gltf whose .bin is cut short or missing likewise."""
    import struct

    from artalk_core.export import export

    export(motion, output=tmp_path / "ok.glb", flame=FLAME_5023)
    export(motion, output=tmp_path / "ok.gltf", flame=FLAME_5023)
    data = (tmp_path / "ok.glb").read_bytes()
    json_len = struct.unpack("<I", data[12:16])[0]
    bin_at = 20 + json_len
    cut = len(data) // 2

    def patched(blob: bytes, at: int, value: int) -> bytes:
        return blob[:at] + struct.pack("<I", value) + blob[at + 4:]

    lying_header = patched(data[:cut], 8, cut)  # the header agrees with the cut file, the BIN chunk does not
    lying_bin = patched(lying_header, bin_at, cut - bin_at - 8)  # both agree, the buffer is longer
    cases = {"half.glb": (data[:cut], f"truncated: its GLB header says {len(data)} bytes, the file holds {cut}"),
             "longer.glb": (data + b"\0" * 8, "corrupt: its GLB header says"),
             "header.glb": (lying_header, "its BIN chunk says"),
             "bin.glb": (lying_bin, "truncated: buffers[0] announces")}
    for name, (blob, words) in cases.items():
        (tmp_path / name).write_bytes(blob)
        res = artalk("info", tmp_path / name)
        assert res.returncode == 2, (name, res.stderr)
        assert_clean_error(res, f"{tmp_path / name} is", words)
    res = artalk("info", tmp_path / "ok.glb")
    assert res.returncode == 0, res.stderr
    res = artalk("info", tmp_path / "ok.gltf")
    assert res.returncode == 0, res.stderr
    bin_file = tmp_path / "ok.bin"
    bin_file.write_bytes(bin_file.read_bytes()[:1000])
    res = artalk("info", tmp_path / "ok.gltf")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "buffers[0] announces", f"{bin_file} holds 1000 (truncated)")
    bin_file.unlink()
    res = artalk("info", tmp_path / "ok.gltf")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, f"buffers[0] is in {bin_file}, which is missing")


# ---- 18. messages that name what the user gave ----

def test_the_bin_of_a_gltf_is_named_with_the_output_given(artalk, motion, tmp_path) -> None:
    """`export -o x.gltf --embed-audio x.bin` said 'the .bin of -o x.bin': the user gave -o x.gltf."""
    import shutil

    shutil.copy(WAV, tmp_path / "x.bin")
    res = artalk("export", motion, "-o", tmp_path / "x.gltf", "--embed-audio", tmp_path / "x.bin")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, f"the .bin of -o {tmp_path / 'x.gltf'} ({tmp_path / 'x.bin'}) is the input --embed-audio")
    assert (tmp_path / "x.bin").read_bytes() == WAV.read_bytes()


def test_a_video_past_a_file_size_limit_names_the_output_not_its_temp_file(artalk, motion, tmp_path) -> None:
    """A full disk under an mp4 printed FFmpeg's text with the hidden temp name
    ("[Errno 28] ... '.an.mp4.dfsidm1y.part.mp4'")."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, hard))  # like `ulimit -f`: EFBIG (Python ignores SIGXFSZ)
    try:
        res = artalk("render", motion, "-o", tmp_path / "v.mp4", "--size", "256", "-q")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert res.returncode == 4, res.stderr
    assert_clean_error(res, f"cannot write video {tmp_path / 'v.mp4'}: File too large")
    assert ".part" not in res.stderr and "Errno" not in res.stderr and list(tmp_path.iterdir()) == []
