"""artalk_core.batch against hostile use: outputs that are inputs, state files in the way,
damaged resume records, hidden temporary files, interrupts, dead workers, silent Ray addresses."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artalk_core.batch import load_jobs, run
from artalk_core.errors import AssetError, DependencyError, InputError, Interrupted, OutputError

DEFAULTS = {"engine": "energy", "outputs": "motion"}
GAGA = Path(__file__).parents[2] / "fixtures" / "tiny_gaga"



def _run(source: Any, **kw: Any) -> Any:
    """``run`` with the model keywords (assets, checkpoint...) as its ModelOptions."""
    from artalk_core.options import ModelOptions

    model = {k: kw.pop(k) for k in ("assets", "checkpoint", "model_config", "device", "precision") if k in kw}
    return run(source, model=ModelOptions(**model), **kw)

def _speech(path: Path, freq: float = 180.0) -> Path:
    from artalk_core.audio import write_wav

    t = np.arange(8000) / 16000
    write_wav(path, (0.3 * (0.5 + 0.5 * np.sin(6 * np.pi * t)) * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    return path


@pytest.fixture()
def speech_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    _speech(folder / "a.wav")
    _speech(folder / "b.wav", freq=260.0)
    return folder


def _never(result: object) -> None:
    raise AssertionError(f"no clip may run: {result}")


def _hidden_parts(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".part" in p.name]


# --- outputs are never inputs; refusals come before any work ---------------------------------


def test_the_jobs_file_is_never_an_output(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(speech_dir, output_dir=out, defaults=DEFAULTS, workers=1)
    results = out / "results.jsonl"
    before = results.read_bytes()
    with pytest.raises(InputError, match="JOBS"):
        run(results, output_dir=out, defaults=DEFAULTS, workers=1, on_result=_never)
    assert results.read_bytes() == before
    (speech_dir / "jobs.jsonl").write_text(json.dumps({"audio": "a.wav"}) + "\n")
    os.link(speech_dir / "jobs.jsonl", tmp_path / "results.jsonl")  # the same file under the results' name
    with pytest.raises(InputError, match="JOBS"):
        run(speech_dir / "jobs.jsonl", output_dir=tmp_path, defaults=DEFAULTS, workers=1, on_result=_never)
    assert (speech_dir / "jobs.jsonl").read_text() == json.dumps({"audio": "a.wav"}) + "\n"


def test_a_rows_input_is_never_another_rows_output(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _speech(out / "clip.motion.safetensors")  # any file: only that it is the same file matters
    rows = [{"audio": "a.wav", "name": "clip"}, {"audio": str(out / "clip.motion.safetensors")}]
    with pytest.raises(InputError, match="row 1") as info:
        run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=out, workers=1, on_result=_never)
    assert "audio of row 2" in str(info.value)


def _motion_file(path: Path) -> Path:
    from artalk_core.formats.motion import write_motion

    write_motion(path, np.zeros((60, 106), np.float32))
    return path


@pytest.mark.parametrize("where", ["row style", "batch style", "appearance", "checkpoint", "model config",
                                   "asset checkpoint", "asset config", "asset head"])
def test_no_output_is_a_style_an_avatar_or_a_model_file(speech_dir: Path, tmp_path: Path, tiny_assets: Path,
                                                        where: str) -> None:
    """Every input of a clip counts, not only the row's path columns: a style named by the row or by
    the batch, an avatar given as a file, the model files given or found in the asset folder."""
    import shutil

    out = tmp_path / "out"
    out.mkdir()
    assets = tmp_path / "assets"
    shutil.copytree(tiny_assets, assets)
    mine = _motion_file(out / "clip.motion.safetensors")  # the user's file, where clip's output would go
    before = mine.read_bytes()
    row: dict = {"audio": "a.wav", "name": "clip"}
    kwargs: dict = {"defaults": {**DEFAULTS, "outputs": "motion"}, "assets": assets}
    if where == "row style":
        row["style"] = str(mine)
    elif where == "batch style":
        kwargs["defaults"]["style"] = str(mine)
    elif where == "appearance":
        row["appearance"] = str(mine)
    elif where == "checkpoint":
        kwargs["checkpoint"] = mine
    elif where == "model config":
        shutil.copy(assets / "config.json", mine)
        before = mine.read_bytes()
        kwargs["model_config"] = mine
    else:  # the asset folder's own files, hard-linked where the output would go
        name = {"asset checkpoint": "ARTalk_wav2vec.pt", "asset config": "config.json",
                "asset head": "FLAME_with_eye.pt"}[where]
        if where == "asset head":
            shutil.copy(GAGA / "flame_synthetic_5023.pt", assets / name)
        mine.unlink()
        os.link(assets / name, mine)
        before = mine.read_bytes()
    defaults = kwargs.pop("defaults")
    with pytest.raises(InputError, match="would destroy"):
        _run(load_jobs([row], base=speech_dir, defaults=defaults), output_dir=out, workers=1, on_result=_never,
             **kwargs)
    assert mine.read_bytes() == before


def test_a_folder_is_not_its_own_output_folder(speech_dir: Path) -> None:
    with pytest.raises(InputError, match="folder of audio files itself"):
        run(speech_dir, output_dir=speech_dir, defaults=DEFAULTS, workers=1, on_result=_never)
    assert sorted(p.name for p in speech_dir.iterdir()) == ["a.wav", "b.wav"]


@pytest.mark.parametrize("options, error", [
    ({"defaults": {**DEFAULTS, "style": "nosuch"}}, "unknown style 'nosuch'"),
    ({"defaults": {**DEFAULTS, "outputs": "bogus"}}, "unknown bogus"),
    ({"defaults": {**DEFAULTS, "engine": "bogus"}}, "unknown engine"),
    ({"defaults": DEFAULTS, "device": "bogus"}, "device 'bogus'"),
    ({"defaults": DEFAULTS, "ray_timeout": 0.0}, "ray-timeout"),
    ({"defaults": DEFAULTS, "threads": 0}, "--threads must be at least 1"),
    ({"defaults": {**DEFAULTS, "engine": "artalk"}, "checkpoint": "nosuch.pt"}, "model checkpoint not found"),
    ({"defaults": {**DEFAULTS, "engine": "artalk"}, "assets": "/nonexistent"}, "ARTalk_wav2vec.pt not found"),
    ({"defaults": {**DEFAULTS, "engine": "artalk"}, "model_config": __file__}, "model config"),
])
def test_bad_batch_options_fail_before_the_output_folder_exists(speech_dir: Path, tmp_path: Path, options: dict,
                                                                  error: str) -> None:
    with pytest.raises((InputError, AssetError), match=error):
        _run(speech_dir, output_dir=tmp_path / "out", workers=1, on_result=_never, **options)
    assert not (tmp_path / "out").exists()


def test_state_files_in_the_way_are_found_before_any_clip(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)
    with pytest.raises(OutputError, match="it is a folder"):
        run(speech_dir, output_dir=out, defaults=DEFAULTS, workers=1, on_result=_never)
    (out / "results.jsonl").rmdir()
    (out / ".artalk-batch").write_text("not a folder")
    with pytest.raises(OutputError, match="a file of that name exists"):
        run(speech_dir, output_dir=out, defaults=DEFAULTS, workers=1, on_result=_never)


@pytest.mark.parametrize("planted", [".artalk-batch/work/a_default", ".artalk-batch/work/a_default/.artalk-records",
                                     ".artalk-batch/work", ".artalk-batch"])
def test_a_link_planted_in_the_state_folder_is_never_followed(speech_dir: Path, tmp_path: Path,
                                                              planted: str) -> None:
    """The batch writes intermediates (and deletes its temporary ones) in .artalk-batch/work/NAME: a
    link planted there must not make it write, or delete, outside the output folder."""
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "video.mp4").write_bytes(b"the user's video")  # what the clip's work folder would hold
    (elsewhere / ".video.mp4.x.part.mp4").write_bytes(b"the user's file")
    link = out / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    jobs = load_jobs(speech_dir, defaults=DEFAULTS)
    if planted.count("/") < 2:  # the batch's own folders: refused before any work
        with pytest.raises(OutputError, match="symbolic link"):
            run(jobs, output_dir=out, workers=1, on_result=_never)
    else:  # a clip's folder: that clip fails, the others are made
        summary = run(jobs, output_dir=out, workers=1)
        assert [r.status for r in summary.results] == ["failed", "done"]
        assert "symbolic link" in (summary.results[0].error or "")
    assert sorted(p.name for p in elsewhere.iterdir()) == [".video.mp4.x.part.mp4", "video.mp4"]
    assert (elsewhere / "video.mp4").read_bytes() == b"the user's video"
    assert link.is_symlink()  # refused, left as it is


# --- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [
    lambda rec: {**rec, "outputs": ["motion"]},
    lambda rec: {**rec, "outputs": {"motion": "sha"}},
    lambda rec: {**rec, "outputs": {"motion": {"sha256": 5}}},
    lambda rec: [rec],
    lambda rec: "[" * 50_000,
])
def test_a_damaged_record_remakes_its_clip(speech_dir: Path, tmp_path: Path, damage) -> None:
    out = tmp_path / "out"
    jobs = load_jobs(speech_dir, defaults=DEFAULTS)
    assert [r.status for r in run(jobs, output_dir=out, workers=1).results] == ["done", "done"]
    record = out / ".artalk-batch" / "a_default.json"
    damaged = damage(json.loads(record.read_text()))
    record.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    again = run(jobs, output_dir=out, workers=1)
    assert [(r.status, r.error) for r in again.results] == [("done", None), ("skipped", None)]
    assert [r.status for r in run(jobs, output_dir=out, workers=1).results] == ["skipped", "skipped"]


def test_a_record_or_output_that_is_a_folder_fails_its_clip_clearly(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".artalk-batch" / "a_default.json").mkdir(parents=True)
    (out / "b_default.motion.safetensors").mkdir()
    summary = run(load_jobs(speech_dir, defaults=DEFAULTS), output_dir=out, workers=1)
    assert [r.status for r in summary.results] == ["failed", "failed"]
    for r in summary.results:
        assert "it is a folder" in (r.error or "") and "unexpected" not in (r.error or "")
    assert not list(out.glob("**/*.h5")) and not _hidden_parts(out)


def test_reruns_leave_no_hidden_files(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = load_jobs(speech_dir, defaults={**DEFAULTS, "outputs": "motion,vertices"})
    for _ in range(3):
        assert {r.status for r in run(jobs, output_dir=out, workers=1, force=True).results} == {"done"}
    (out / "a_default.h5").write_bytes(b"damaged")
    assert [r.status for r in run(jobs, output_dir=out, workers=1).results] == ["done", "skipped"]
    assert not _hidden_parts(out)


# --- interrupts and lost workers -------------------------------------------------------------


def test_a_signal_mid_batch_still_writes_the_results(speech_dir: Path, tmp_path: Path) -> None:
    from artalk_core.interrupt import note_interrupt

    out = tmp_path / "out"
    jobs = load_jobs(speech_dir, defaults=DEFAULTS)
    run(jobs, output_dir=out, workers=1, force=True)  # an older results file: every clip "done"

    def sigterm(result: object) -> None:  # what the CLI's handler does on SIGTERM
        note_interrupt(signal.SIGTERM)
        raise Interrupted(signal.SIGTERM)

    with pytest.raises(Interrupted) as info:
        run(jobs, output_dir=out, workers=1, force=True, on_result=sigterm)
    assert info.value.signo == signal.SIGTERM  # not a plain KeyboardInterrupt: the CLI exits 143
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [ln["status"] for ln in lines] == ["done", "interrupted"]
    assert not _hidden_parts(out)


def test_a_killed_worker_fails_its_clip_and_the_batch_goes_on(speech_dir: Path, tmp_path: Path,
                                                              test_engines: None) -> None:
    _speech(speech_dir / "c.wav", freq=220.0)
    rows = [{"audio": "a.wav"}, {"audio": "b.wav", "engine": "sigkill"}, {"audio": "c.wav"}]
    out = tmp_path / "out"
    summary = run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=out, workers=2)
    assert [r.status for r in summary.results] == ["done", "failed", "done"]
    error = summary.results[1].error or ""
    assert "worker process" in error and "SIGKILL" in error and "tried 2 times" in error
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [ln["status"] for ln in lines] == ["done", "failed", "done"]
    assert not _hidden_parts(out)


# --- Ray addresses ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_ray_address_that_does_not_answer_is_one_quick_error(speech_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    with pytest.raises(InputError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        run(speech_dir, output_dir=tmp_path / "out", backend="ray", ray_address=f"127.0.0.1:{port}",
            ray_timeout=1.0, defaults=DEFAULTS)
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")  # Ray's own variable is checked the same way
    with pytest.raises(InputError, match="cannot reach"):
        run(speech_dir, output_dir=tmp_path / "out", backend="ray", ray_timeout=1.0, defaults=DEFAULTS)
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "grpc", None)  # Ray Client's dependency missing
    with pytest.raises(DependencyError, match=r"ray\[client\]"):
        run(speech_dir, output_dir=tmp_path / "out", backend="ray", ray_address=f"ray://127.0.0.1:{port}",
            defaults=DEFAULTS)
    with pytest.raises(InputError, match="HOST:PORT"):
        run(speech_dir, output_dir=tmp_path / "out", backend="ray", ray_address="http://x", defaults=DEFAULTS)


def test_an_address_that_accepts_but_is_not_ray_is_one_error_within_the_timeout(speech_dir: Path,
                                                                               tmp_path: Path) -> None:
    """A port that accepts TCP but speaks no Ray (another service, a hung head): Ray's client retried
    for minutes, printing a warning every few seconds, and Ctrl-C waited for it."""
    from artalk_core.batch.ray_backend import check_address

    with socket.socket() as listener:  # the kernel accepts connections into the backlog; nothing answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        words = f"cannot reach the Ray cluster at {address}: it accepts connections, but no Ray cluster answered " \
                f"within 1 s"
        with pytest.raises(InputError, match=words):
            check_address(address, 1.0)
        with pytest.raises(InputError, match=words):
            run(speech_dir, output_dir=tmp_path / "out", backend="ray", ray_address=address, ray_timeout=1.0,
                defaults=DEFAULTS)
    assert not (tmp_path / "out").exists()


def test_a_stop_outside_the_pool_stops_its_workers_at_once(speech_dir: Path, tmp_path: Path, test_engines: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("ARTALK_TEST_HANG_MARK", str(marks))
    rows = [{"audio": "b.wav", "engine": "hang"}, {"audio": "a.wav"}]

    def stop(result: object) -> None:  # e.g. Ctrl-C landing in the caller's progress display
        deadline = time.monotonic() + 60
        while not list(marks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=out, workers=2, on_result=stop)
    [mark] = list(marks.iterdir())
    with pytest.raises(ProcessLookupError):  # the hanging worker is gone before run() returns
        os.kill(int(mark.name), 0)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [ln["status"] for ln in lines] == ["interrupted", "done"]
    assert not _hidden_parts(out)


def test_a_backend_that_fails_midway_still_leaves_the_results(speech_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import artalk_core.batch.runner as runner
    from artalk_core.batch.clip import run_clip

    def broken(jobs, cfg, workers, threads):  # the first clip, then the backend fails (a cluster lost)
        yield run_clip(jobs[0], cfg)
        raise OutputError("the cluster went away")

    monkeypatch.setattr(runner, "_run_local", broken)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="went away"):
        run(speech_dir, output_dir=out, defaults=DEFAULTS, workers=1)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(ln["status"], ln["error"]) for ln in lines] == [
        ("done", None), ("interrupted", "the batch stopped: the cluster went away")]


def test_an_output_edited_in_place_is_remade_from_scratch(speech_dir: Path, tmp_path: Path) -> None:
    """Outputs are hard links of the cached intermediates: editing one in place edits both. The
    remake must not publish the damaged cache again (it failed on every rerun, NaN vertices)."""
    out = tmp_path / "out"
    jobs = load_jobs(speech_dir, defaults={**DEFAULTS, "outputs": "motion,vertices"})
    first = run(jobs, output_dir=out, workers=1)
    from artalk_core.formats.motion import read_motion

    motion = Path(first.results[0].outputs["motion"])
    good = motion.read_bytes()
    expected = read_motion(motion).data
    with open(motion, "r+b") as f:  # a tool "fixing" the file in place: the last value's bytes
        f.seek(len(good) - 4)
        f.write(b"\xff\xff\xff\x7f")  # NaN
    again = run(jobs, output_dir=out, workers=1)
    assert [(r.status, r.error) for r in again.results] == [("done", None), ("skipped", None)]
    assert np.array_equal(read_motion(motion).data, expected)  # made anew (its metadata has a new time)
    assert [r.status for r in run(jobs, output_dir=out, workers=1).results] == ["skipped", "skipped"]


class _FakeRay:
    """Just enough of Ray's API for run_ray: tasks run at once, in this process; ``init`` installs a
    SIGTERM handler as the real one does; the clip named ``lost`` loses its actor every time."""

    class exceptions:  # noqa: N801 - the module's name in Ray
        class RayError(Exception):
            pass

    def __init__(self) -> None:
        self.initialized = False
        self.killed = 0

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs: object) -> None:
        self.initialized = True
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(signal.SIGTERM))

    def shutdown(self) -> None:
        self.initialized = False

    def cluster_resources(self) -> dict:
        return {"CPU": 2.0}

    def remote(self, **kwargs: object):
        fake = self

        def decorate(cls):
            class ActorClass:
                @staticmethod
                def remote(*args):
                    body = cls(*args)

                    def run(job, cfg):
                        if job.name == "lost":
                            def died():
                                raise fake.exceptions.RayError("The actor died unexpectedly.\nmore")
                            return died
                        return lambda: body.run(job, cfg)

                    actor = type("Actor", (), {})()
                    actor.run = type("Method", (), {"remote": staticmethod(run)})()
                    return actor
            return ActorClass
        return decorate

    def wait(self, refs: list, num_returns: int) -> tuple[list, list]:
        return refs[:1], refs[1:]

    def get(self, ref):
        return ref()

    def kill(self, actor: object) -> None:
        self.killed += 1


def test_ray_keeps_the_callers_sigterm_handler_and_fails_a_lost_clip(speech_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    rows = [{"audio": "a.wav"}, {"audio": "b.wav", "name": "lost"}]
    summary = run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=tmp_path / "out", backend="ray")
    assert signal.getsignal(signal.SIGTERM) is handler  # ray.init's sys.exit handler did not stay
    assert [r.status for r in summary.results] == ["done", "failed"]
    assert summary.results[1].error == ("the Ray worker making this clip failed: The actor died unexpectedly. "
                                        "(tried 2 times)")
    assert not fake.initialized and fake.killed >= 2
