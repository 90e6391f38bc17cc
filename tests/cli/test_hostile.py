"""Hostile input and signals (issue 11): each class of failure, tested as a class.

1 an output that is an input; 2 user text printed as markup; 3 OS write errors; 4 signals;
5 inputs that are streams (FIFO, /dev/stdin); 6 malformed files and options; 7 misleading messages.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from artalk_core.options import ModelOptions, MotionOptions, RenderOptions
from tests.conftest import FIXTURE, assert_clean_error, process_env

WAV = FIXTURE / "speech_16k.wav"


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory, expected) -> Path:
    from artalk_core.formats.motion import write_motion

    path = tmp_path_factory.mktemp("motion") / "speech.motion.safetensors"
    write_motion(path, expected["motion_final"][:20], {"engine": "artalk", "smoothed": "false"})
    return path


@pytest.fixture(scope="module")
def video_file(motion_file, tmp_path_factory) -> Path:
    from artalk_core.render.stage import render

    path = tmp_path_factory.mktemp("video") / "v.mp4"
    render(motion_file, output=path, look=RenderOptions(size=32), model=ModelOptions(assets=path.parent))
    return path


def no_part_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


# ---- 1. an output that is an input: refused before any work, the input kept ----

def _same_file_cases(tmp: Path, motion: Path, video: Path) -> list[tuple[list[object], Path]]:
    wav = tmp / "s.wav"
    shutil.copy(WAV, wav)
    (tmp / "link.wav").symlink_to(wav)
    os.link(wav, tmp / "hard.wav")
    m = tmp / "m.safetensors"
    shutil.copy(motion, m)
    v = tmp / "v.mp4"
    shutil.copy(video, v)
    (tmp / "t.txt").write_text("hello there")
    return [
        (["generate", wav, "-e", "energy", "-o", wav], wav),
        (["generate", wav, "-e", "energy", "-o", tmp / "link.wav"], wav),  # a symlink to the input
        (["generate", tmp / "link.wav", "-e", "energy", "-o", tmp / "hard.wav"], wav),  # a hard link
        (["generate", wav, "-e", "energy", "-o", tmp / "." / "s.wav"], wav),  # another spelling
        (["encode-audio", wav, "-o", wav], wav),
        (["smooth", m, "-o", m, "--force"], m),
        (["render", m, "-o", m], m),
        (["render", m, "-o", tmp / "x.mp4", "--verts", m], m),
        (["render", m, "-o", tmp / "x.mp4", "--audio", wav, "--verts", wav], wav),
        (["mux", v, wav, "-o", v], v),
        (["mux", v, wav, "-o", wav], wav),
        (["frame", v, "-o", v], v),
        (["animate", wav, "-e", "energy", "-o", wav], wav),
        (["tts", "@" + str(tmp / "t.txt"), "-o", tmp / "t.txt"], tmp / "t.txt"),
    ]


def test_output_that_is_an_input_is_refused_before_any_work(artalk, motion_file, video_file, tmp_path):
    for args, victim in _same_file_cases(tmp_path, motion_file, video_file):
        before = victim.read_bytes()
        res = artalk(*args, "--assets", tmp_path) if args[0] in ("generate", "encode-audio", "animate") \
            else artalk(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert_clean_error(res, "input", "another output name")
        assert victim.read_bytes() == before, args
        assert no_part_files(tmp_path)


# ---- 2. user text printed literally, never as markup ----

def test_user_text_is_printed_literally(artalk, tmp_path):
    odd = tmp_path / "a[bold]b.wav"
    shutil.copy(WAV, odd)
    out = tmp_path / "x[red]y[bold].safetensors"
    res = artalk("generate", odd, "-e", "energy", "-o", out)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stderr
    res = artalk("generate", tmp_path / "nope[/].wav", "-e", "energy", "-o", tmp_path / "m.safetensors")
    assert_clean_error(res, "nope[/].wav")
    res = artalk("generate", odd, "-s", "[/]", "-o", tmp_path / "m.safetensors", "--assets", tmp_path)
    assert_clean_error(res, "[/]")
    res = artalk("tts", "hello", "--lang", "[bold]x[/]", "-o", tmp_path / "t.wav")
    assert_clean_error(res, "[bold]x[/]")
    assert "MarkupError" not in res.stderr


# ---- 3. OS write errors are output errors: one line, exit 4 ----

def test_disk_full_is_an_output_error(artalk, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    res = artalk("generate", WAV, "-e", "energy", "-o", "/dev/full")
    assert res.returncode == 4, res.stderr
    assert_clean_error(res, "/dev/full", "no space")


def test_unusable_keep_folder_is_an_output_error(artalk, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = artalk("animate", WAV, "-e", "energy", "--keep", tmp_path / "afile", "-o", tmp_path / "a.mp4")
    assert res.returncode == 4, res.stderr
    assert_clean_error(res, "afile")
    target = Path("/sys/artalk-test-keep")  # refused even to root (EPERM/EACCES/EROFS)
    if not target.parent.is_dir() or os.access(target.parent, os.W_OK) and not _mkdir_fails(target):
        return
    res = artalk("animate", WAV, "-e", "energy", "--keep", target, "-o", tmp_path / "a.mp4")
    assert res.returncode == 4, res.stderr
    assert_clean_error(res, str(target))


def _mkdir_fails(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return True
    path.rmdir()
    return False


def test_write_error_while_writing_is_an_output_error(artalk, tmp_path, monkeypatch):
    """ENOSPC / EFBIG / EROFS raised by a writer inside the output helper: exit 4, nothing left."""
    import errno

    from artalk_core.formats import tensorfile

    real_open = open

    class Full(io.FileIO):
        def write(self, b):  # type: ignore[override]
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    def fake_open(file, mode="r", *a, **k):
        if ".part" in str(file) and "w" in mode:
            return Full(file, "w")
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(tensorfile, "open", fake_open, raising=False)
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    res = artalk("generate", WAV, "-e", "energy", "-o", out)
    assert res.returncode == 4, res.stderr
    assert_clean_error(res, str(out), "too large")
    assert out.read_bytes() == b"old" and no_part_files(tmp_path)


def test_file_size_limit_is_an_output_error(tmp_path):
    """`ulimit -f`: the write fails with EFBIG (Python ignores SIGXFSZ): exit 4, no partial file."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "m.safetensors"
    proc = subprocess.run([sys.executable, "-m", "artalk_cli.main", "generate", str(WAV), "-e", "energy",
                           "-o", str(out)], capture_output=True, env=process_env({"PYTHONDONTWRITEBYTECODE": "1"}),
                          preexec_fn=limit, timeout=300)
    stderr = proc.stderr.decode()
    assert proc.returncode == 4, stderr
    assert "error:" in stderr and "Traceback" not in stderr and "unexpected" not in stderr
    assert not out.exists() and no_part_files(tmp_path)


# ---- 4. signals: SIGTERM / SIGHUP clean up like SIGINT; an interrupt always stops the run ----

@pytest.mark.slow
@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGHUP", 129)])  # SIGINT: in-process below
def test_signal_mid_stream_leaves_no_partial_file(tiny_assets, tmp_path, signame, code):
    data = WAV.read_bytes()
    out = tmp_path / "m.ndjson"
    out.write_text("old\n")
    proc = subprocess.Popen([sys.executable, "-m", "artalk_cli.main", "generate", "-", "--stream", "-o", str(out),
                             "--assets", str(tiny_assets), "-q"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=process_env({"TMPDIR": str(tmp_path)}))
    try:
        assert proc.stdin is not None
        proc.stdin.write(data[:44 + 64000 * 2 + 3200])  # the first chunk and a bit: frames get written
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not [p for p in tmp_path.iterdir()
                                                   if ".part" in p.name and p.stat().st_size > 1000]:
            time.sleep(0.1)
        assert not no_part_files(tmp_path), "the stream never started writing"
        proc.send_signal(getattr(signal, signame))
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == code, stderr
    assert "Traceback" not in stderr
    assert out.read_text() == "old\n" and no_part_files(tmp_path)


@pytest.mark.parametrize("command", ["smooth", "animate --keep"])
def test_interrupt_swallowed_by_a_finaliser_still_stops_the_run(artalk, motion_file, tmp_path, monkeypatch,
                                                                command):
    """Ctrl-C landing in a __del__ / weakref callback (where Python only prints "Exception ignored"):
    the run must still stop with 130 and leave the old output alone."""
    from artalk_core import postprocess

    class Finaliser:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):  # the handler runs between these bytecodes, inside __del__
                pass

    real_push = postprocess.StreamingPostprocessor.push

    def push(self, raw):
        Finaliser()  # dropped at once: __del__ runs here and swallows whatever it raises
        return real_push(self, raw)

    monkeypatch.setattr(postprocess.StreamingPostprocessor, "push", push)
    out = tmp_path / ("out.safetensors" if command == "smooth" else "out.mp4")
    out.write_bytes(b"old output")
    if command == "smooth":
        res = artalk("smooth", motion_file, "-o", out, "--force")
    else:
        res = artalk("animate", WAV, "-e", "energy", "--keep", tmp_path / "keep", "--size", "32", "-o", out)
    assert res.returncode == 130, res.stderr
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr
    assert out.read_bytes() == b"old output" and no_part_files(tmp_path)


# ---- 5. inputs that are streams: a FIFO, /dev/stdin, <(...) work like - ----

class Fifo:
    """A named pipe fed once by a thread. If a command opens it a second time (a bug: nothing
    writes again), a watchdog hands that reader an end of file, so the test fails instead of hanging."""

    def __init__(self, folder: Path, name: str, data: bytes) -> None:
        self.path = folder / name
        os.mkfifo(self.path)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(data,), daemon=True)
        self._thread.start()

    def _feed(self, data: bytes) -> None:
        try:
            with open(self.path, "wb") as f:
                f.write(data)
        except BrokenPipeError:  # the reader stopped early (it only looked at the head)
            pass
        while not self._done.wait(2.0):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only if a reader waits
            except OSError:
                continue
            os.close(fd)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def test_fifo_inputs_are_read_once_like_stdin(artalk, motion_file, video_file, tmp_path):
    from artalk_core.formats.motion import read_motion

    with Fifo(tmp_path, "speech.fifo", WAV.read_bytes()) as fifo:
        res = artalk("generate", fifo, "-e", "energy", "-o", tmp_path / "m.safetensors")
    assert res.returncode == 0, res.stderr
    assert read_motion(tmp_path / "m.safetensors").frames == 252
    with Fifo(tmp_path, "motion.fifo", motion_file.read_bytes()) as fifo:
        res = artalk("render", fifo, "-o", tmp_path / "v.h5")
    assert res.returncode == 0, res.stderr
    with Fifo(tmp_path, "motion2.fifo", motion_file.read_bytes()) as fifo:
        res = artalk("info", fifo, "--json")
    assert res.returncode == 0 and b'"frames": 20' in res.stdout
    with Fifo(tmp_path, "speech2.fifo", WAV.read_bytes()) as fifo:
        res = artalk("mux", video_file, fifo, "-o", tmp_path / "muxed.mp4")
    assert res.returncode == 0, res.stderr
    with Fifo(tmp_path, "speech3.fifo", WAV.read_bytes()) as fifo:
        res = artalk("animate", fifo, "-e", "energy", "--size", "32", "-o", tmp_path / "a.mp4")
    assert res.returncode == 0, res.stderr
    assert no_part_files(tmp_path)


def test_dev_stdin_and_process_substitution_carry_a_wav(artalk_process, tmp_path):
    res = artalk_process("generate", "/dev/stdin", "-e", "energy", "-o", tmp_path / "a.safetensors",
                         input=WAV.read_bytes())
    assert res.returncode == 0, res.stderr
    if shutil.which("bash") is None:
        return
    cmd = (f"{sys.executable} -m artalk_cli.main generate <(cat '{WAV}') -e energy "
           f"-o '{tmp_path / 'b.safetensors'}'")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, env=process_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "a.safetensors").read_bytes()[-2000:] == (tmp_path / "b.safetensors").read_bytes()[-2000:]


# ---- 6. malformed files and options: typed errors, before the heavy work ----

def test_truncated_legacy_torch_files_are_format_errors(artalk, expected, tmp_path):
    buf = io.BytesIO()
    torch.save(torch.from_numpy(expected["motion_raw_style"][:3].copy()), buf, _use_new_zipfile_serialization=False)
    blob = buf.getvalue()
    # every cut inside the pickle header (where torch raises IndexError and struct.error), then coarser
    for cut in [*range(1, 120), *range(120, len(blob), max(1, len(blob) // 20))]:
        (tmp_path / "cut.pt").write_bytes(blob[:cut])
        res = artalk("smooth", tmp_path / "cut.pt", "-o", tmp_path / "o.safetensors")
        assert res.returncode == 2, (cut, res.stderr)  # a FormatError ("truncated or corrupt", or too
        assert_clean_error(res, "cut.pt")  # short to be recognised at all), never "unexpected IndexError"
        assert "unexpected" not in res.stderr
    shape = io.BytesIO()
    torch.save(torch.zeros(300), shape, _use_new_zipfile_serialization=False)
    (tmp_path / "shape.pt").write_bytes(shape.getvalue()[:-100])
    from artalk_core.errors import InputError
    from artalk_core.flame import load_shape

    with pytest.raises(InputError, match="truncated or corrupt"):
        load_shape(tmp_path / "shape.pt")


def test_seed_and_precision_are_checked_before_any_work(artalk, tmp_path):
    res = artalk("generate", WAV, "-e", "energy", "--seed", "-1", "-o", tmp_path / "m.safetensors")
    assert res.returncode == 2
    assert_clean_error(res, "--seed")
    # a missing checkpoint would be reported if the model were loaded first: the option fails first
    res = artalk("generate", WAV, "--precision", "fp8", "-o", tmp_path / "m.safetensors", "--assets", tmp_path)
    assert_clean_error(res, "fp8")
    assert "ARTalk_wav2vec.pt" not in res.stderr
    res = artalk("encode-audio", WAV, "--precision", "int4", "-o", tmp_path / "f.safetensors", "--assets", tmp_path)
    assert_clean_error(res, "int4")
    from artalk_core.errors import InputError
    from artalk_core.pipeline import generate

    with pytest.raises(InputError, match="precision"):
        generate(WAV, model=ModelOptions(precision="fp8", assets=tmp_path))
    with pytest.raises(InputError, match="seed"):
        generate(WAV, motion=MotionOptions(engine="energy", seed=2**40))


def test_huge_vertices_are_refused_cleanly(artalk, tmp_path):
    import h5py

    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        verts = np.zeros((4, 5, 3), np.float32)
        verts[2, 1, 0] = 1e30
        f["vertices"] = verts
        f["faces"] = np.array([[0, 1, 2], [2, 3, 4]], np.int32)
    res = artalk("render", path, "-o", tmp_path / "v.mp4", "--size", "32")
    assert_clean_error(res, "v.h5", "frame 2")
    assert "RuntimeWarning" not in res.stderr
    assert not (tmp_path / "v.mp4").exists()


# ---- 7. messages that point the right way ----

class Evil:
    """Any object a plain tensor file must not hold."""


def test_messages_do_not_mislead(artalk, motion_file, tmp_path):
    res = artalk("render", motion_file, "-o", tmp_path / "v.mp4", "--renderer", "pytorch3d", "--size", "32")
    if res.returncode != 0:  # pytorch3d is not installed here: the hint names a flag that exists
        assert_clean_error(res, "--renderer gl")
        assert "--backend" not in res.stderr
    blob = motion_file.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[: len(blob) // 2])
    res = artalk("info", tmp_path / "cut.safetensors")
    assert_clean_error(res, "cut.safetensors")
    assert "<bytes>" not in res.stderr

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    res = artalk("render", motion_file, "--shape", tmp_path / "evil.pt", "-o", tmp_path / "x.h5")
    assert_clean_error(res, "evil.pt", "not a plain tensor file")
    assert "weights_only" not in res.stderr
    res = artalk("smooth", tmp_path / "evil.pt", "-o", tmp_path / "x.safetensors")
    assert_clean_error(res, "evil.pt")
    assert "weights_only" not in res.stderr


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_unknown_voice_is_bad_input(artalk, tmp_path):
    res = artalk("tts", "hello", "--voice", "unknown", "-o", tmp_path / "x.wav")
    assert res.returncode == 2
    assert_clean_error(res, "'unknown'", "voice")


def test_gtts_hint_names_the_real_extra(artalk, tmp_path):
    import importlib.util

    import tomllib

    if importlib.util.find_spec("gtts") is not None:
        pytest.skip("gTTS is installed")
    res = artalk("tts", "hello", "--engine", "gtts", "-o", tmp_path / "x.wav")
    assert res.returncode == 6
    assert "pip install 'artalk[gtts]'" in res.stderr
    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "gtts" in extras["project"]["optional-dependencies"]
