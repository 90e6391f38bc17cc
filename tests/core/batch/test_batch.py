"""artalk_core.batch: jobs files, stable names, failing rows, resume, interrupts, the results schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artalk_core.batch import Job, load_jobs, plan_workers, run
from artalk_core.errors import InputError

SIZE = 64  # tiny frames keep rendering cheap; the chain is the same


def _speech(path: Path, seconds: float = 0.6, freq: float = 180.0) -> Path:
    from artalk_core.audio import write_wav

    t = np.arange(int(16000 * seconds)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    write_wav(path, (0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    return path


@pytest.fixture()
def speech_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    _speech(folder / "a.wav")
    _speech(folder / "b.wav", freq=260.0)
    return folder


DEFAULTS = {"engine": "energy", "size": SIZE}


def _statuses(summary: object) -> list[str]:
    return [r.status for r in summary.results]  # type: ignore[attr-defined]


# --- jobs -------------------------------------------------------------------------------------


def test_csv_jsonl_and_folder_give_the_same_jobs(speech_dir: Path) -> None:
    (speech_dir / "jobs.csv").write_text("audio,style,outputs,clip_length,fix_pose\n"
                                         "a.wav,happy,\"mp4,motion\",50,yes\n"
                                         "b.wav,,,,\n")
    (speech_dir / "jobs.jsonl").write_text(
        '{"audio": "a.wav", "style": "happy", "outputs": ["motion", "mp4"], "clip_length": 50, "fix_pose": true}\n'
        "# a comment\n\n"
        '{"audio": "b.wav"}\n')
    csv_jobs = load_jobs(speech_dir / "jobs.csv", defaults={"style": "default"})
    jsonl_jobs = load_jobs(speech_dir / "jobs.jsonl", defaults={"style": "default"})
    assert [j.row for j in csv_jobs] == [2, 3] and [j.row for j in jsonl_jobs] == [1, 4]
    for c, j in zip(csv_jobs, jsonl_jobs, strict=True):
        assert c.error is None and c.options == j.options and c.outputs == j.outputs and c.key == j.key
    first = csv_jobs[0]
    assert first.options["audio"] == str(speech_dir.resolve() / "a.wav")  # relative to the jobs file
    assert first.options["clip_length"] == 50 and first.options["fix_pose"] is True
    assert first.outputs == ("mp4", "motion") and first.name == "a_happy"
    assert csv_jobs[1].options["style"] == "default" and csv_jobs[1].outputs == ("mp4",)
    folder_jobs = load_jobs(speech_dir, defaults={"style": "x"})
    assert [j.name for j in folder_jobs] == ["a_x", "b_x"]


@pytest.mark.parametrize("row, words", [
    ({"audio": "a.wav", "stlye": "x"}, ["unknown field 'stlye'", "style"]),
    ({"audio": "a.wav", "text": "hi"}, ["exactly one of"]),
    ({}, ["exactly one of"]),
    ({"audio": "nope.wav"}, ["not found", "nope.wav"]),
    ({"audio": "a.wav", "clip_length": "ten"}, ["clip_length", "whole number"]),
    ({"audio": "a.wav", "clip_length": -3}, ["clip_length", "negative"]),
    ({"audio": "a.wav", "fix_pose": "maybe"}, ["fix_pose"]),
    ({"audio": "a.wav", "outputs": "mp4,avi"}, ["unknown avi"]),
])
def test_a_bad_row_is_a_failed_job_not_an_error(speech_dir: Path, row: dict, words: list[str]) -> None:
    good, bad = load_jobs([{"audio": "a.wav"}, row], base=speech_dir)
    assert good.error is None
    assert bad.error is not None and all(w in bad.error for w in words), bad.error


def test_bad_sources_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "jobs.txt").write_text("audio\n")
    (tmp_path / "folder").mkdir()
    for source, words in [(tmp_path / "missing.csv", "not found"), (tmp_path / "empty.csv", "header"),
                          (tmp_path / "jobs.txt", ".jsonl"), (tmp_path / "folder", "no audio files")]:
        with pytest.raises(InputError, match=words):
            load_jobs(source)
    (tmp_path / "broken.jsonl").write_text('{"audio": "x.wav"\n[1, 2]\n')
    errors = [j.error for j in load_jobs(tmp_path / "broken.jsonl")]
    assert errors[0] is not None and "not valid JSON" in errors[0]
    assert errors[1] == "a row must be a JSON object"


def test_names_are_stable_and_collision_free(speech_dir: Path) -> None:
    rows = [{"audio": "a.wav", "style": "s1"}, {"audio": "a.wav", "style": "s1", "fix_pose": True},
            {"audio": "b.wav", "style": "s1"}, {"text": "hello", "lang": "en"},
            {"audio": "a.wav", "name": "intro take/1"}]
    jobs = load_jobs(rows, base=speech_dir)
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names)
    assert names[2] == "b_s1" and names[4] == "intro_take_1" and names[3].startswith("text-")
    assert names[0].startswith("a_s1-") and names[1].startswith("a_s1-")  # both of a collision get a hash
    again = load_jobs(list(reversed(rows)), base=speech_dir)  # row order does not change a name
    assert sorted(j.name for j in again) == sorted(names)
    same_twice = load_jobs([rows[2], rows[2]], base=speech_dir)
    assert same_twice[0].error is None and same_twice[1].error == "the same clip as an earlier row"


def test_plan_workers_never_oversubscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    import artalk_core.batch.runner as runner

    monkeypatch.setattr(runner, "cpu_count", lambda: 8)
    assert plan_workers(None, None, jobs=100) == (4, 2)
    assert plan_workers(3, None, jobs=100) == (3, 2)
    assert plan_workers(None, None, jobs=2) == (2, 4)  # never more workers than clips
    assert plan_workers(None, None, jobs=100, device="cuda") == (1, 8)
    with pytest.raises(InputError):
        plan_workers(0, None, jobs=3)


# --- runs -------------------------------------------------------------------------------------


def _validate_results(path: Path) -> list[dict]:
    import jsonschema

    from artalk_core.schemas import load as load_schema

    validator = jsonschema.Draft202012Validator(load_schema("batch-results"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        validator.validate(line)
    return lines


def test_local_batch_one_failing_row_resume_and_changed_row(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (speech_dir / "x.wav").write_bytes(b"RIFF not really a wav")
    rows = [{"audio": "a.wav", "outputs": "mp4,motion,vertices"}, {"audio": "x.wav"},
            {"audio": "b.wav", "style": "unknown_style"}, {"audio": "b.wav", "outputs": "motion"}]
    jobs = load_jobs(rows, base=speech_dir, defaults=DEFAULTS)
    seen: list[str] = []
    summary = run(jobs, output_dir=out, workers=1, on_result=lambda r: seen.append(r.status))
    assert _statuses(summary) == ["done", "failed", "failed", "done"] and len(seen) == 4
    assert "x.wav" in (summary.results[1].error or "")
    assert "unknown style 'unknown_style'" in (summary.results[2].error or "")
    a, b = summary.results[0], summary.results[3]
    assert set(a.outputs) == {"mp4", "motion", "vertices"} and set(b.outputs) == {"motion"}
    for path in [*a.outputs.values(), *b.outputs.values()]:
        assert Path(path).is_file() and Path(path).parent == out
    assert not (out / "b_default.mp4").exists()  # not asked for
    from artalk_core.formats.motion import read_motion
    from artalk_core.video import probe_video

    info = probe_video(a.outputs["mp4"])
    assert info["frames"] == read_motion(a.outputs["motion"]).frames and info["width"] == SIZE
    assert info["audio_codec"] is not None
    lines = _validate_results(summary.results_file)
    assert [ln["status"] for ln in lines] == ["done", "failed", "failed", "done"]
    assert not list(out.glob("**/.*.part*"))

    # a rerun skips what is current and retries the failures; a changed row is redone
    mtime = Path(a.outputs["mp4"]).stat().st_mtime_ns
    again = run(jobs, output_dir=out, workers=1)
    assert _statuses(again) == ["skipped", "failed", "failed", "skipped"]
    assert Path(a.outputs["mp4"]).stat().st_mtime_ns == mtime
    rows[0]["fix_pose"] = True
    rows[3]["outputs"] = "motion,mp4"
    changed = run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=out, workers=1)
    assert _statuses(changed) == ["done", "failed", "failed", "done"]
    assert (out / "b_default.mp4").is_file()
    # an output changed behind the batch's back is remade, and so is one whose input changed
    Path(a.outputs["motion"]).write_bytes(b"damaged")
    _speech(speech_dir / "b.wav", freq=300.0)
    last = run(load_jobs(rows, base=speech_dir, defaults=DEFAULTS), output_dir=out, workers=1)
    assert _statuses(last) == ["done", "failed", "failed", "done"]
    assert read_motion(a.outputs["motion"]).frames > 0


def test_interrupted_batch_writes_results_and_resumes(speech_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = load_jobs(speech_dir, defaults=DEFAULTS)

    def stop_after_first(result: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(jobs, output_dir=out, workers=1, on_result=stop_after_first)
    lines = _validate_results(out / "results.jsonl")
    assert [ln["status"] for ln in lines] == ["done", "interrupted"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a_default.mp4"]
    assert not list(out.glob("**/.*.part*"))
    summary = run(jobs, output_dir=out, workers=1)
    assert _statuses(summary) == ["skipped", "done"]


def test_process_pool_matches_in_process(speech_dir: Path, tmp_path: Path) -> None:
    jobs = load_jobs(speech_dir, defaults={**DEFAULTS, "outputs": "motion"})
    one = run(jobs, output_dir=tmp_path / "one", workers=1)
    two = run(jobs, output_dir=tmp_path / "two", workers=2)
    assert two.workers == 2 and _statuses(two) == ["done", "done"]
    from artalk_core.formats.motion import read_motion

    for r1, r2 in zip(one.results, two.results, strict=True):
        assert np.array_equal(read_motion(r1.outputs["motion"]).data, read_motion(r2.outputs["motion"]).data)


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(speech_dir: Path, tmp_path: Path, test_engines: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    (speech_dir / "bad.wav").write_bytes(b"")
    jobs = load_jobs(speech_dir, defaults={**DEFAULTS, "outputs": "motion"})
    killer = load_jobs([{"audio": "a.wav", "engine": "sigkill", "name": "killer"}], base=speech_dir,
                       defaults={**DEFAULTS, "outputs": "motion"})[0]
    jobs.append(Job(row=99, name=killer.name, options=killer.options, outputs=killer.outputs))
    import artalk_core.batch.ray_backend as ray_backend

    monkeypatch.setattr(ray_backend, "BATCH_CLIP_TRIES", 1)  # no retry: a new actor costs seconds here
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = run(jobs, output_dir=tmp_path / "out", backend="ray")
    finally:
        ray.shutdown()
    assert summary.backend == "ray" and summary.workers == 2
    # an actor killed under its clip (SIGKILL, as the OOM killer does) fails that clip; the batch goes on
    assert _statuses(summary) == ["done", "done", "failed", "failed"]
    assert "Ray worker" in (summary.results[3].error or "") and "tried 1 time)" in (summary.results[3].error or "")
    jobs = jobs[:3]
    local = run(jobs, output_dir=tmp_path / "out", workers=1)  # Ray's outputs are current for the local backend
    assert _statuses(local) == ["skipped", "skipped", "failed"]


def test_run_rejects_bad_options(speech_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="backend"):
        run(speech_dir, output_dir=tmp_path, backend="slurm")
    with pytest.raises(InputError, match="--backend ray"):
        run(speech_dir, output_dir=tmp_path, ray_address="ray://x:1")
    assert isinstance(load_jobs(speech_dir)[0], Job)


def test_a_folder_given_relatively_and_an_audio_file_given_by_mistake(speech_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(speech_dir.parent)
    jobs = load_jobs(Path(speech_dir.name))
    assert [j.error for j in jobs] == [None, None]
    assert jobs[0].options["audio"] == str((speech_dir / "a.wav").resolve())
    with pytest.raises(InputError, match="is an audio file"):
        load_jobs(Path(speech_dir.name) / "a.wav")


def test_a_photoreal_row_and_its_resume(speech_dir: Path, tmp_path: Path) -> None:
    gaga = Path(__file__).parents[2] / "fixtures" / "tiny_gaga"
    row = {"audio": "a.wav", "appearance": "fix.jpg", "tracked": str(gaga / "tracked.pt"),
           "avatar_checkpoint": str(gaga / "weights.safetensors"), "avatar_config": str(gaga / "model_config.json"),
           "flame": str(gaga / "flame_synthetic_5023.pt"), "avatar_noise": "stored", "clip_length": 8}
    jobs = load_jobs([row, {**row, "appearance": "nobody.jpg"}], base=speech_dir, defaults=DEFAULTS)
    assert jobs[0].name == "a_default_fix"
    summary = run(jobs, output_dir=tmp_path / "out", workers=1)
    assert _statuses(summary) == ["done", "failed"]
    assert "nobody.jpg" in (summary.results[1].error or "")
    from artalk_core.video import probe_video

    info = probe_video(summary.results[0].outputs["mp4"])
    assert info["frames"] == 8 and info["width"] == 128  # the tiny avatar network renders 128 px
    again = run(jobs[:1], output_dir=tmp_path / "out", workers=1)
    assert _statuses(again) == ["skipped"]
