"""Jobs files as written by people and spreadsheets: quotes, line breaks, big cells, duplicate
columns, hostile JSON, pipes, and batch defaults checked before any work."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from artalk_core.batch import load_jobs
from artalk_core.errors import InputError


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.wav").write_bytes(b"RIFF")  # parsing only checks that the file is there
    (tmp_path / "b.wav").write_bytes(b"RIFF")
    return tmp_path


def _rows(jobs: list) -> list[tuple[int, str | None]]:
    return [(j.row, j.error) for j in jobs]


def test_an_unterminated_quote_fails_its_row_only(folder: Path) -> None:
    (folder / "jobs.csv").write_text('audio,name\na.wav,"first\nb.wav,second\n', newline="")
    jobs = load_jobs(folder / "jobs.csv")
    assert len(jobs) == 2, _rows(jobs)  # the row after the broken one is not swallowed into its cell
    assert jobs[0].row == 2 and jobs[0].error is not None and "unterminated quote" in jobs[0].error
    assert jobs[1].row == 3 and jobs[1].error is None and jobs[1].name == "second"


def test_quoted_line_breaks_are_kept_and_rows_are_numbered_by_their_first_line(folder: Path) -> None:
    (folder / "jobs.csv").write_text('text,name\r\n"Hello,\r\nworld.",one\r\n\r\n"Two\nlines",two\r\n'
                                     'b\u2028c,three\n', newline="")
    jobs = load_jobs(folder / "jobs.csv")
    assert _rows(jobs) == [(2, None), (5, None), (7, None)]
    assert jobs[0].options["text"] == "Hello,\r\nworld." and jobs[1].options["text"] == "Two\nlines"
    assert jobs[2].options["text"] == "b\u2028c"  # U+2028 is a character, not a row break


def test_jsonl_lines_end_at_newlines_only(folder: Path) -> None:
    (folder / "jobs.jsonl").write_text(json.dumps({"text": "a\u2028b\u2029c\x85d", "name": "x"}, ensure_ascii=False)
                                       + "\r\n" + json.dumps({"audio": "a.wav"}) + "\n", encoding="utf-8")
    jobs = load_jobs(folder / "jobs.jsonl")
    assert _rows(jobs) == [(1, None), (2, None)]
    assert jobs[0].options["text"] == "a\u2028b\u2029c\x85d"


def test_big_cells_up_to_the_bound(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = "word " * 60_000  # 300 kB: over the csv module's default 128 KiB field limit
    (folder / "jobs.csv").write_text(f'text,name\n"{big}",big\na.wav-not-text,small\n')
    jobs = load_jobs(folder / "jobs.csv")
    assert jobs[0].error is None and jobs[0].options["text"] == big
    import artalk_core.batch.jobfile as jobfile
    import artalk_core.batch.jobs as jobs_module

    monkeypatch.setattr(jobfile, "BATCH_MAX_CELL_CHARS", 1000)
    monkeypatch.setattr(jobs_module, "BATCH_MAX_CELL_CHARS", 1000)
    (folder / "jobs.csv").write_text(f'text,name\n"{big[:5000]}\nmore",big\nshort,small\n')
    jobs = load_jobs(folder / "jobs.csv")
    assert jobs[0].row == 2 and "longer than 1000 characters" in (jobs[0].error or "")
    assert [(j.row, j.error, j.name) for j in jobs[1:]] == [(4, None, "small")]  # not the rest of the big cell
    (folder / "jobs.jsonl").write_text(json.dumps({"text": big}) + "\n")
    assert "longer than 1000" in (load_jobs(folder / "jobs.jsonl")[0].error or "")


@pytest.mark.parametrize("header", ["audio,style,audio", "audio,style,Audio", "audio, AUDIO "])
def test_duplicate_csv_columns_are_refused(folder: Path, header: str) -> None:
    (folder / "jobs.csv").write_text(f"{header}\na.wav,x,b.wav\n")
    with pytest.raises(InputError, match="duplicate columns") as info:
        load_jobs(folder / "jobs.csv")
    assert str(info.value).lower().count("audio") >= 2


def test_duplicate_fields_fail_their_row(folder: Path) -> None:
    (folder / "jobs.jsonl").write_text('{"audio": "a.wav", "audio": "b.wav"}\n{"audio": "a.wav", "Audio": "b.wav"}\n'
                                       '{"audio": "b.wav"}\n')
    errors = [j.error for j in load_jobs(folder / "jobs.jsonl")]
    assert errors[0] is not None and "duplicate field 'audio'" in errors[0]
    assert errors[1] is not None and "'audio' and 'Audio'" in errors[1]
    assert errors[2] is None
    listed = load_jobs([{"audio": "a.wav", " AUDIO": "b.wav"}], base=folder)
    assert "same column" in (listed[0].error or "")


def test_hostile_json_rows_are_row_errors(folder: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "jobs.jsonl").write_text('{"audio": "a.wav", "x": ' + deep + "}\n"
                                       '{"audio": "a.wav", "seed": ' + "9" * 5000 + "}\n"
                                       '{"audio": "a.wav", "clip_length": 1e400}\n{"audio": "b.wav"}\n')
    jobs = load_jobs(folder / "jobs.jsonl")
    assert [j.error is not None for j in jobs] == [True, True, True, False]
    assert all("not valid JSON" in (j.error or "") or "clip_length" in (j.error or "") for j in jobs[:3])


@pytest.mark.parametrize("row, words", [
    ({"audio": 5}, "audio must be a file path (a string), got 5"),
    ({"audio": ["a.wav"]}, "audio must be a file path (a string), got ['a.wav']"),
    ({"audio": "a.wav", "shape": {"p": 1}}, "shape must be a file path (a string), got {'p': 1}"),
    ({"audio": "a.wav", "flame": True}, "flame must be a file path (a string), got True"),
    ({"audio": "a.wav", "style": ["happy"]}, "style must be text, got ['happy']"),
    ({"audio": "a.wav", "color": [1, 2, 3]}, "color must be text, got [1, 2, 3]"),
    ({"audio": "a.wav", "name": list(range(100))}, "name must be text, got [0, 1, 2, 3, 4, 5, ...]"),
])
def test_jsonl_values_of_the_wrong_type_say_so(folder: Path, row: dict, words: str) -> None:
    (folder / "jobs.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({"audio": "b.wav", "name": 7}) + "\n")
    jobs = load_jobs(folder / "jobs.jsonl")
    assert jobs[0].error == words
    assert jobs[1].error is None and jobs[1].name == "7"  # a number where text goes reads as its digits


def test_text_rows_with_an_unknown_language_or_speaker_fail_at_once(folder: Path) -> None:
    jobs = load_jobs([{"text": "hi", "lang": "zz"}, {"text": "hi", "tts_engine": "bogus"}, {"text": "hi"}],
                     base=folder)
    assert "unsupported language 'zz'" in (jobs[0].error or "")
    assert "unknown TTS engine 'bogus'" in (jobs[1].error or "")
    assert jobs[2].error is None


def test_a_seed_beyond_32_bits_fails_its_row(folder: Path) -> None:
    jobs = load_jobs([{"audio": "a.wav", "seed": 2**32 - 1}, {"audio": "b.wav", "seed": str(2**32)}], base=folder)
    assert jobs[0].error is None and jobs[0].options["seed"] == 2**32 - 1
    assert jobs[1].error is not None and "4294967295" in jobs[1].error


@pytest.mark.parametrize("defaults, words", [
    ({"outputs": "bogus"}, "unknown bogus"),
    ({"engine": "bogus"}, "unknown engine 'bogus'"),
    ({"precision": "fp8"}, "unknown precision"),
    ({"seed": 2**40}, "seed"),
    ({"clip_length": "ten"}, "clip_length"),
    ({"lang": "zz"}, "unsupported language 'zz'"),
    ({"tts_engine": "bogus"}, "unknown TTS engine"),
])
def test_bad_defaults_are_one_error_for_the_batch(folder: Path, defaults: dict, words: str) -> None:
    with pytest.raises(InputError, match=words):
        load_jobs(folder, defaults=defaults)


def test_a_row_naming_an_unknown_engine_fails_at_once(folder: Path) -> None:
    jobs = load_jobs([{"audio": "a.wav", "engine": "bogus"}, {"audio": "a.wav", "engine": "energy"}], base=folder)
    assert "unknown engine 'bogus'" in (jobs[0].error or "") and jobs[1].error is None


def test_a_row_whose_audio_is_a_folder_or_a_pipe(folder: Path) -> None:
    (folder / "sub").mkdir()
    os.mkfifo(folder / "pipe.wav")
    jobs = load_jobs([{"audio": "sub"}, {"audio": "pipe.wav"}], base=folder)
    assert "is a folder" in (jobs[0].error or "")
    assert "not a regular file" in (jobs[1].error or "")


def _feed_fifo(path: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(path, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name, text", [
    ("jobs_fifo", '{"audio": "a.wav", "name": "one"}\n{"text": "hi"}\n'),  # sniffed: JSONL
    ("jobs_fifo", "audio,name\na.wav,one\n,\n"),                                # sniffed: CSV
    ("named.csv", "audio,name\na.wav,one\n"),                                   # a FIFO with a name
])
def test_jobs_from_a_fifo(folder: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> None:
    fifo = folder / "pipes" / name
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    monkeypatch.chdir(folder)  # a pipe's relative paths start from the current folder
    writer = _feed_fifo(fifo, text.encode())
    jobs = load_jobs(fifo)
    writer.join(5)
    assert jobs[0].error is None and jobs[0].name == "one"
    assert jobs[0].options["audio"] == str(folder.resolve() / "a.wav")
