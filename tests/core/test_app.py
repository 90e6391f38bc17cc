"""The Gradio app without a browser: its guard over real HTTP, the speech cap, messages, jobs, the API.

One app instance (energy engine, no assets) serves the whole module on a free 127.0.0.1 port.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artalk_core.options import ModelOptions

pytest.importorskip("gradio")

from artalk_core.app import AppConfig  # noqa: E402
from artalk_core.app.handlers import cap_speech, plain_message  # noqa: E402
from artalk_core.app.inputs import MSG_EVENT  # noqa: E402
from artalk_core.app.jobs import Cancelled, JobStore  # noqa: E402
from artalk_core.errors import AssetError, AudioError, InputError, StyleError  # noqa: E402
from tests.conftest import FIXTURE  # noqa: E402

# ----- a decode bomb: hours of FLAC silence in a few KB --------------------------------------------
# Hand-made (65535-sample frames of one CONSTANT subframe each) because an encoder would need to be
# fed the hours of samples; the frames follow the FLAC spec, CRCs included, and FFmpeg decodes them.


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | n >> 6, 0x80 | n & 0x3F])
    return bytes([0xE0 | n >> 12, 0x80 | (n >> 6) & 0x3F, 0x80 | n & 0x3F])


def silent_flac(seconds: float, *, announce: bool) -> bytes:
    """16 kHz mono 16-bit FLAC of silence; ``announce=False`` leaves STREAMINFO's total samples unknown."""
    rate, block = 16000, 65535
    total = int(seconds * rate)
    info = struct.pack(">HH", block, block) + b"\0" * 6
    info += ((rate << 44) | (15 << 36) | (total if announce else 0)).to_bytes(8, "big") + b"\0" * 16
    out = [b"fLaC", bytes([0x80, 0, 0, 34]), info]
    for i in range(-(-total // block)):
        n = min(block, total - i * block)
        head = bytes([0xFF, 0xF8, 0x75, 0x08]) + _utf8_number(i) + struct.pack(">H", n - 1)
        frame = head + bytes([_crc8(head)]) + b"\x00\x00\x00"  # CONSTANT subframe, value 0
        out.append(frame + struct.pack(">H", _crc16(frame)))
    return b"".join(out)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    out = {}
    for name, announce in (("announced", True), ("hidden", False)):
        out[name] = folder / f"{name}.flac"
        out[name].write_bytes(silent_flac(3 * 3600, announce=announce))
    return out


def test_bomb_is_small_and_really_hours_long(bombs):
    from artalk_core.audio import iter_audio

    assert bombs["hidden"].stat().st_size < 100_000
    stream = iter_audio(bombs["announced"])
    assert stream.expected_samples == 3 * 3600 * 16000
    assert iter_audio(bombs["hidden"]).expected_samples is None
    first = next(iter(iter_audio(bombs["hidden"])))
    assert len(first) == 64000 and not first.any()


MEASURE = """
import resource, sys, time
from pathlib import Path
from artalk_core.app.handlers import cap_speech
from artalk_core.errors import InputError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    cap_speech(Path(sys.argv[1]), Path(sys.argv[2]), max_seconds=60)
    print("accepted")
except InputError as e:
    print("refused", e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, time.perf_counter() - t)
"""


@pytest.mark.parametrize("kind", ["announced", "hidden"])
def test_decode_bomb_refused_without_decoding_it_whole(bombs, tmp_path, kind):
    """3 h of silence (172.8 M samples, 0.7 GB as float32) is refused within a few MB of memory."""
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(bombs[kind]), str(tmp_path / "out.wav")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[0].startswith("refused The speech is too long"), lines
    assert ("3 h 0 min" in lines[0]) == (kind == "announced")
    grown, seconds = lines[1].split()
    assert int(grown) < 64 * 2**20, f"peak memory grew by {int(grown) / 2**20:.0f} MB"
    assert float(seconds) < 10
    assert not (tmp_path / "out.wav").exists()


def test_cap_speech_keeps_short_speech_and_refuses_at_the_limit(tmp_path):
    from artalk_core.audio import load_audio

    seconds = cap_speech(FIXTURE / "speech_16k.wav", tmp_path / "a.wav", max_seconds=60)
    original = load_audio(FIXTURE / "speech_16k.wav").samples
    assert seconds == pytest.approx(len(original) / 16000)
    assert load_audio(tmp_path / "a.wav").samples.shape == original.shape
    with pytest.raises(InputError, match="at most 1.0 s"):
        cap_speech(FIXTURE / "speech_16k.wav", tmp_path / "b.wav", max_seconds=1.0)


def test_plain_messages_name_no_server_paths(tmp_path):
    from artalk_core.app.handlers import MSG_SHUTDOWN
    from artalk_core.errors import DependencyError, OutputError, explain

    MSG_ASSETS, MSG_PROGRAM, MSG_SERVER = (explain(k("x")).summary for k in (AssetError, DependencyError, OutputError))

    upload = tmp_path / "artalk-app-xyz" / "cache" / "abc" / "speech_sample.wav"
    names = {str(upload): "the speech file"}
    msg = plain_message(AudioError(f"{upload} is not an audio or video file FFmpeg can read"), names)
    assert msg == "The speech could not be used. The speech file is not an audio or video file FFmpeg can read."
    assert plain_message(AudioError("<audio bytes> contains no decodable audio")) == \
        "The speech could not be used. The audio contains no decodable audio."
    # a path nobody named: the kind of problem only, never a cut-up path ("a file/...", "file:passwd")
    assert plain_message(StyleError("style file not found: /srv/x/y/style.pt")) == "The style could not be used."
    assert plain_message(AudioError(f"cannot read {tmp_path}/a/speech_sample.wav")) == "The speech could not be used."
    assert plain_message(InputError("cannot open file:/etc/passwd")) == "The input could not be used."
    assert plain_message(InputError("Unknown style 'a/b': choose one of default.")) == \
        "Unknown style 'a/b': choose one of default."
    assert plain_message(AssetError("model checkpoint ARTalk_wav2vec.pt not found: /a/b")) == MSG_ASSETS
    assert plain_message(DependencyError("espeak-ng is missing: apt-get install espeak-ng")) == MSG_PROGRAM
    assert plain_message(OutputError(f"cannot write {tmp_path}/x.mp4: disk full")) == MSG_SERVER
    assert plain_message(RuntimeError("boom at /usr/lib/x.py")).startswith("Something went wrong")
    assert plain_message(Cancelled()) == "Cancelled."
    assert plain_message(Cancelled(shutdown=True)) == MSG_SHUTDOWN


def test_jobs_cancel_expire_and_close(tmp_path):
    store = JobStore(keep_seconds=10, sweep_seconds=3600, parent=tmp_path)
    a, b = store.new("s1"), store.new("s2")
    (a.dir / "video.mp4").write_bytes(b"x")
    assert store.cancel_session("s1") == 1
    with pytest.raises(Cancelled):
        store.check(a)
    store.check(b)
    store.finish(a, keep_results=True)
    assert not a.work.exists() and (a.dir / "video.mp4").exists()
    store.finish(b, keep_results=False)
    assert not b.dir.exists()
    assert store.expire(now=time.monotonic() + 5) == []
    assert store.expire(now=time.monotonic() + 11) == [a.id]
    assert not a.dir.exists()
    store.new("s3")
    store.close()
    assert not store.root.exists()
    with pytest.raises(Cancelled):
        store.new("s4")


def test_config_checks():
    with pytest.raises(InputError, match="max-seconds"):
        AppConfig(max_seconds=0).check()
    with pytest.raises(InputError, match="queue-size"):
        AppConfig(queue_size=0).check()


# ----- one app over real HTTP ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from artalk_core.app.server import AppServer

    server = AppServer(AppConfig(model=ModelOptions(assets=tmp_path_factory.mktemp("no_assets")), size=64, max_upload_mb=1,
                                 queue_size=1, max_seconds=30, header_seconds=1.5), port=0).start()
    before = os.environ.get("GRADIO_TEMP_DIR")
    yield server
    server.close()
    assert not server.jobs.root.exists()
    assert os.environ.get("GRADIO_TEMP_DIR") != str(server.jobs.cache) and before == str(server.jobs.cache)


def request(server: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            *, raw_length: str | None = None, source: str | None = None) -> tuple[int, bytes]:
    host, port = server.sock.getsockname()[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0) if source else None)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    hdrs = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    for k, v in hdrs.items():
        conn.putheader(k, v)
    if raw_length is not None:
        conn.putheader("Content-Length", raw_length)
    elif method != "GET":
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        try:
            conn.send(body)
        except OSError:
            pass  # the server may answer and close before the whole body went out
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def multipart(n_files: int, size: int) -> tuple[bytes, str]:
    boundary = "artalktestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="f{i}.wav"\r\n'
             f"Content-Type: audio/wav\r\n\r\n".encode() + b"\0" * size + b"\r\n" for i in range(n_files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_page_served_same_origin(app):
    port = app.sock.getsockname()[1]
    status, body = request(app, "GET", "/")
    assert status == 200 and b"ARTalk" in body
    status, _ = request(app, "GET", "/config", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200
    status, _ = request(app, "GET", "/config", headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
    assert status == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # another local port is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Host": "evil.example"},  # DNS rebinding onto a loopback-bound server
])
def test_foreign_origin_or_host_refused(app, headers):
    body = json.dumps({"data": [None, "hi", "en", "mesh", "default", None], "fn_index": 0,
                       "session_hash": "x", "event_data": None, "trigger_id": None}).encode()
    status, text = request(app, "POST", "/gradio_api/queue/join", body,
                           {"Content-Type": "application/json", **headers})
    assert status == 403, text
    if "Origin" in headers:
        assert request(app, "GET", "/", headers=headers)[0] == 403


def test_upload_limits(app):
    ok_body, ctype = multipart(1, 1000)
    status, text = request(app, "POST", "/gradio_api/upload", ok_body, {"Content-Type": ctype})
    assert status == 200 and len(json.loads(text)) == 1
    # negative, malformed and oversized lengths: refused before any body is read
    for length in ("-1", "12abc"):
        assert request(app, "POST", "/gradio_api/upload", b"", {"Content-Type": ctype}, raw_length=length)[0] == 400
    status, text = request(app, "POST", "/gradio_api/upload", b"", {"Content-Type": ctype},
                           raw_length=str(50 * 2**30))
    assert status == 413 and b"too large" in text
    # a file over max_file_size (1 MB); and many small files in one request
    big, ctype = multipart(1, 1_100_000)
    assert request(app, "POST", "/gradio_api/upload", big, {"Content-Type": ctype})[0] == 413
    many, ctype = multipart(50, 10)
    status, text = request(app, "POST", "/gradio_api/upload", many, {"Content-Type": ctype})
    assert status == 413 and b"too many parts" in text


def test_chunked_body_bounded_while_streaming(app):
    host, port = app.sock.getsockname()[:2]
    sent = 0
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
                  f"Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode())
        head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n\r\n'
        s.sendall(b"%x\r\n" % len(head) + head + b"\r\n")
        chunk = b"\1" * 65536
        try:
            for _ in range(64):  # 4 MB, the limit is 2 MB
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_json_body_bounded_at_one_mb(app):
    """A JSON body (queue/join: Gradio reads it whole into memory) may not be an upload's size: 1 MB,
    whether announced or chunked, while multipart uploads keep --max-upload-mb plus 1 MB."""
    join = json.dumps({"data": [None, "x" * 1_500_000], "fn_index": 0, "session_hash": "big"}).encode()
    status, text = request(app, "POST", "/gradio_api/queue/join", b"", {"Content-Type": "application/json"},
                           raw_length=str(len(join)))  # refused on the announced length, before reading
    assert status == 413 and b"at most 1 MB" in text
    host, port = app.sock.getsockname()[:2]
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Type: application/json\r\n\r\n".encode())
        # 1 MB, then 10 bytes more: nothing sent after the limit is left unread (which would reset
        # the connection and lose the answer)
        for piece in [join[i:i + 65536] for i in range(0, 2**20, 65536)] + [join[2**20:2**20 + 10]]:
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        answer = b""
        while chunk := s.recv(4096):  # the answer, then the close
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"at most 1 MB" in answer, answer[:200]
    body, ctype = multipart(1, 900_000)  # 1.5 MB of JSON was refused; 0.9 MB of upload is not
    assert request(app, "POST", "/gradio_api/upload", body, {"Content-Type": ctype})[0] == 200


def test_api_open_is_off(app):
    status, _ = request(app, "POST", "/gradio_api/run/generate",
                        json.dumps({"data": [None, "hi", "en", "mesh", "default", None]}).encode(),
                        {"Content-Type": "application/json"})
    assert status in (404, 405)


def test_gradio_client_refusals_in_plain_words(app, bombs, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app.url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(Exception, match="Please upload or record speech"):
        client.predict(api_name="/generate")
    t = time.perf_counter()
    with pytest.raises(Exception, match=r"too long \(3 h 0 min\): this server takes at most 30 s") as err:
        client.predict(audio=handle_file(str(bombs["announced"])), api_name="/generate")
    assert time.perf_counter() - t < 20
    assert "/" not in str(err.value).split("too long")[1]
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    with pytest.raises(Exception, match="The speech could not be used") as err:
        client.predict(audio=handle_file(str(bad)), api_name="/generate")
    assert "artalk-app" not in str(err.value) and "/tmp" not in str(err.value)
    bad_style = tmp_path / "style.pt"
    bad_style.write_text("not a style")
    with pytest.raises(Exception, match="The style could not be used"):
        client.predict(text="Hello there.", style_file=handle_file(str(bad_style)), api_name="/generate")
    assert not [j for j in app.jobs.jobs() if j.finished is None]
    assert not list((app.jobs.jobs_dir).iterdir())  # failed jobs leave nothing behind


def test_queue_bounded_and_one_generation_at_a_time(app, tmp_path):
    from gradio_client import Client

    gen = app.parts.generator
    started, release = threading.Event(), threading.Event()
    running = []
    original = gen.run

    def slow_run(**kw: Any) -> Any:
        running.append(1)
        assert len(running) == 1, "two generations at once"
        started.set()
        release.wait(30)
        running.pop()
        raise InputError("stopped by the test")

    gen.run = slow_run
    try:
        clients = [Client(app.url, verbose=False, download_files=str(tmp_path)) for _ in range(3)]
        first = clients[0].submit(text="one", api_name="/generate")
        assert started.wait(30)
        second = clients[1].submit(text="two", api_name="/generate")
        time.sleep(1.0)  # queued behind the first (queue_size 1)
        with pytest.raises(Exception, match="[Qq]ueue is full"):
            clients[2].predict(text="three", api_name="/generate")
        release.set()
        for job in (first, second):
            with pytest.raises(Exception, match="[Ss]topped by the test"):
                job.result(timeout=60)
    finally:
        gen.run = original
        release.set()


# ----- hooks for what other branches add: photoreal avatars, glTF export ---------------------------


def test_photoreal_avatars_listed_from_the_tracked_file(tmp_path, monkeypatch):
    import types

    from artalk_core.app.config import build_catalog, photoreal_avatars

    assert photoreal_avatars(tmp_path) == []  # no <assets>/GAGAvatar/tracked.pt
    (tmp_path / "GAGAvatar").mkdir()
    (tmp_path / "GAGAvatar" / "tracked.pt").write_bytes(b"stand-in")
    assert photoreal_avatars(tmp_path) == []  # unreadable: none offered
    fake = types.ModuleType("artalk_core.render.avatar.tracked")
    fake.load_tracked = lambda path: {"12.jpg": object(), "11.jpg": object()}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "artalk_core.render.avatar.tracked", fake)
    assert photoreal_avatars(tmp_path) == ["11.jpg", "12.jpg"]
    catalog = build_catalog(AppConfig(model=ModelOptions(assets=tmp_path)))
    assert [a for _, a in catalog.appearances] == ["mesh", "11.jpg", "12.jpg"]


def test_generator_offers_the_glb(tmp_path):
    from artalk_core.app.config import build_catalog
    from artalk_core.app.handlers import Generator
    from artalk_core.audio import load_audio, write_wav

    speech = tmp_path / "hi.wav"
    write_wav(speech, load_audio(FIXTURE / "speech_16k.wav").samples[:16000])
    config = AppConfig(model=ModelOptions(assets=tmp_path / "no_assets"), size=32)
    jobs = JobStore(parent=tmp_path)
    try:
        out = Generator(config, build_catalog(config), jobs).run(audio=str(speech), text=None)
        assert [p.name for p in out.files] == ["hi_default_mesh.motion.safetensors", "hi_default_mesh_motions.pt",
                                               "hi_default_mesh.h5", "hi_default_mesh.glb"]
        assert out.video.name == "hi_default_mesh.mp4" and out.frames == 25
        assert not (out.video.parent / "work").exists()
    finally:
        jobs.close()


def test_api_cancel_stops_the_running_generation(app, tmp_path):
    """gradio_client's Job.cancel() reaches the worker thread: the next job does not wait for it."""
    from gradio_client import Client

    gen = app.parts.generator
    real_report = gen._report
    reports: list[str] = []

    def slow_report(job: Any, progress: Any) -> Any:
        inner = real_report(job, progress)

        def report(stage: str, done: int, total: int) -> None:
            reports.append(stage)
            time.sleep(0.3)
            inner(stage, done, total)

        return report

    gen._report = slow_report
    try:
        client = Client(app.url, verbose=False, download_files=str(tmp_path))
        job = client.submit(text="Hello there, this is a longer sentence to speak.", api_name="/generate")
        deadline = time.monotonic() + 60
        while len(reports) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reports, "the job did not start"
        job.cancel()
        t = time.monotonic()
        while [j for j in app.jobs.jobs() if j.finished is None] and time.monotonic() - t < 10:
            time.sleep(0.1)
        assert not [j for j in app.jobs.jobs() if j.finished is None], "the cancelled job kept running"
        assert len(reports) < 20  # uncancelled: ~100 slowed reports
    finally:
        gen._report = real_report


def test_cache_sweep_removes_stale_untracked_files_only(tmp_path):
    store = JobStore(cache_seconds=100, sweep_seconds=3600, parent=tmp_path)
    try:
        example = store.cache / "abc" / "speech_sample.wav"  # Gradio's: an example it keeps forever
        example.parent.mkdir()
        example.write_bytes(b"x")
        empty = store.cache / "def"
        empty.mkdir()
        partial = store.cache / "tmpcutoff"  # a cut-off upload's temp file
        partial.write_bytes(b"y")
        assert store.sweep_cache() == 0  # all new
        assert store.sweep_cache(now=time.time() + 1000) == 1
        assert example.exists() and not partial.exists() and not empty.exists()
    finally:
        store.close()


def test_truncated_upload_is_dropped_quietly(app):
    import logging

    records: list[logging.LogRecord] = []

    class Catcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    catcher = Catcher()
    logging.getLogger("uvicorn.error").addHandler(catcher)
    host, port = app.sock.getsockname()[:2]
    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="cut.wav"\r\n\r\n'
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 100000\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" % port + head + b"x" * 5000)
        time.sleep(0.5)
    time.sleep(1.0)
    logging.getLogger("uvicorn.error").removeHandler(catcher)
    assert not [r for r in records if r.exc_info], "a cut-off upload printed a traceback"
    assert not list(app.jobs.cache.rglob("cut.wav"))


def test_idle_and_slow_header_connections_are_closed(app):
    host, port = app.sock.getsockname()[:2]
    for opening in (b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"):  # silent; headers never finished
        with socket.create_connection((host, port), timeout=20) as s:
            s.sendall(opening)
            t = time.monotonic()
            assert s.recv(100) == b""  # closed by the server
            assert time.monotonic() - t < 5
    with socket.create_connection((host, port), timeout=20) as s:  # a slow but complete client is served
        s.sendall(b"GET /config HTTP/1.1\r\n")
        time.sleep(1.0)
        s.sendall(b"Host: 127.0.0.1:%d\r\n\r\n" % port)
        assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_fifty_simultaneous_page_loads_all_answered(app):
    """Fifty visitors (ten addresses: one address may hold 32 connections) load the page at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda i: request(app, "GET", "/", source=f"127.0.0.{2 + i % 10}")[0], range(50)))
    assert statuses == [200] * 50


def test_without_the_app_extra_one_clear_error(monkeypatch):
    from artalk_core.app.server import AppServer
    from artalk_core.errors import DependencyError

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    with pytest.raises(DependencyError, match=r"pip install 'artalk\[app\]'"):
        AppServer(AppConfig(), port=0)


def test_same_origin_rules():
    from artalk_core.app.server import same_origin

    assert same_origin("http://127.0.0.1:8960", "127.0.0.1:8960")
    assert same_origin("http://[::1]:8960", "[::1]:8960")
    assert same_origin("http://LOCALHOST:8960", "localhost:8960")
    assert same_origin("https://abc.gradio.live", "abc.gradio.live")  # the share tunnel ends TLS
    assert not same_origin("http://127.0.0.1:8961", "127.0.0.1:8960")
    assert not same_origin("http://localhost:8960", "127.0.0.1:8960")
    assert not same_origin("null", "127.0.0.1:8960")
    assert not same_origin("http://evil.example", "abc.gradio.live:8080")
    assert not same_origin("http://127.0.0.1.evil.example:8960", "127.0.0.1:8960")


def test_avatar_pictures_made_once_and_a_click_selects_the_avatar(tmp_path):
    import shutil

    import gradio as gr
    import numpy as np
    from PIL import Image

    from artalk_core.app.server import build_app
    from artalk_core.app.thumbs import THUMB_SIZE
    assets = tmp_path / "assets"
    (assets / "GAGAvatar").mkdir(parents=True)
    shutil.copy(FIXTURE.parent / "tiny_gaga" / "tracked.pt", assets / "GAGAvatar" / "tracked.pt")
    parts = build_app(AppConfig(model=ModelOptions(assets=assets), size=32, preload=False))
    try:
        assert [a for _, a in parts.catalog.appearances] == ["mesh", "fix.jpg"]
        made = sorted((parts.jobs.root / "avatars").iterdir())
        assert [p.name for p in made] == ["avatar_000.png"]
        with Image.open(made[0]) as picture:
            assert picture.size == (THUMB_SIZE, THUMB_SIZE) and picture.mode == "RGB"
            assert np.asarray(picture).std() > 1  # the avatar's photo, not a blank square
        blocks = parts.blocks
        gallery = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "avatar-gallery")
        appearance = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "appearance")
        assert [g["caption"] for g in gallery.value] == ["fix.jpg"]
        str_config = json.dumps(blocks.config)
        assert str(assets) not in str_config  # the asset folder stays private
        pick = next(f for f in blocks.fns.values() if (gallery._id, "select") in f.targets)
        assert [o._id for o in pick.outputs] == [appearance._id]
        update = pick.fn(gr.SelectData(gallery, {"index": 0, "value": None, "selected": True}))
        assert update["value"] == "fix.jpg"
        assert pick.fn(gr.SelectData(gallery, {"index": 5, "value": None, "selected": True})).get("value") is None

        def click(data: Any) -> Any:  # the event data a request carries, through Gradio's own call path
            return asyncio.run(blocks.process_api(block_fn=pick, inputs=[], state=None, request=None,
                                                  event_data=gr.EventData(gallery, data)))

        assert click({"index": 0, "value": None, "selected": True})["data"][0]["value"] == "fix.jpg"
        for junk in (None, "junk", {}, {"index": 0}):  # not what a click sends: refused in words
            with pytest.raises(gr.Error) as refused:
                click(junk)
            assert refused.value.message == MSG_EVENT
        for nothing in ({"index": [], "value": None}, {"index": True, "value": None}):  # a click on no picture
            assert "value" not in click(nothing)["data"][0]
        with pytest.raises(gr.Error) as refused:  # a file in the event data passes the upload rule too
            click({"index": 0, "value": {"image": {"path": "/etc/passwd"}}, "selected": True})
        assert refused.value.message == "The file must be a file uploaded to this server (with gradio_client: " \
                                        "handle_file(path))."
    finally:
        parts.close()


def test_no_avatar_gallery_without_avatars(app):
    assert not any(getattr(b, "elem_id", None) == "avatar-gallery" for b in app.parts.blocks.blocks.values())
    assert not (app.jobs.root / "avatars").exists()


def test_page_events_results_preview_status_and_cancel(tmp_path):
    """The page's Generate: clears the last result and enables Cancel, then shows the video, the
    downloads and the .glb in the 3D viewer (or says why not, under the video); one progress bar,
    on the video; the API keeps (video, files). A fixed language menu; a small, idle Cancel."""
    import asyncio

    import gradio as gr

    from artalk_core.app.config import LANGUAGES, build_catalog
    from artalk_core.app.handlers import Outputs, preview_glb
    from artalk_core.app.layout import build_blocks

    config = AppConfig(model=ModelOptions(assets=tmp_path / "no_assets"), size=32)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    names = ["a.mp4", "a.motion.safetensors", "a_motions.pt", "a.h5", "a.glb"]
    for n in names:
        (out_dir / n).write_bytes(b"x")

    class StubGenerator:
        fail = False

        def input_problems(self, **kw: Any) -> dict[str, str]:
            return {}

        def run(self, **kw: Any) -> Outputs:
            if self.fail:
                raise InputError("no <good>")
            return Outputs(video=out_dir / names[0], files=[out_dir / n for n in names[1:]], frames=25, seconds=1.0)

    stub = StubGenerator()
    jobs = JobStore(parent=tmp_path)
    try:
        blocks = build_blocks(build_catalog(config), stub, jobs, max_seconds=30)  # type: ignore[arg-type]
        by_id = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
        video, files, preview, status, cancel = (by_id[k] for k in ("video", "downloads", "preview-3d", "status",
                                                                    "cancel"))
        assert isinstance(preview, gr.Model3D) and preview.interactive is False
        language = by_id["language"]
        assert language.filterable is False and [tuple(c) for c in language.choices] == LANGUAGES
        assert cancel.variant == "secondary" and cancel.size == "sm" and cancel.interactive is False
        fns = list(blocks.fns.values())
        check = next(f for f in fns if (by_id["generate"]._id, "click") in f.targets)
        start = next(f for f in fns if f.name == "ui_start")
        page = next(f for f in fns if f.name == "ui_generate")
        api = next(f for f in fns if f.api_name == "generate")
        assert check.validator is not None and check.outputs == []  # a refusal changes nothing shown
        assert start.trigger_after == check._id and page.trigger_after == start._id
        assert start.trigger_only_on_success and page.trigger_only_on_success
        assert [o._id for o in start.outputs] == [o._id for o in page.outputs] == \
            [video._id, files._id, preview._id, status._id, cancel._id]
        assert [getattr(c, "_id", c) for c in page.show_progress_on] == [video._id]
        assert [o._id for o in api.outputs] == [video._id, files._id]  # the API's outputs are unchanged
        first = start.fn()
        assert first[:3] == (None, None, None) and first[3]["visible"] is False and first[4]["interactive"] is True

        def no_progress(*a: Any, **k: Any) -> None:
            return None

        def run_page() -> tuple[Any, ...]:
            return asyncio.run(page.fn("Audio", "speech.wav", None, "en", "mesh", "default", None, request=None,
                                       progress=no_progress))

        last = run_page()
        assert last[0] == str(out_dir / "a.mp4") and last[2] == str(out_dir / "a.glb") and last[2] in last[1]
        assert last[3]["visible"] is False and last[4]["interactive"] is False
        stub.fail = True
        last = run_page()  # no popup: the reason, escaped, under the video
        assert last[:3] == (None, None, None) and last[4]["interactive"] is False
        assert "No &lt;good&gt;." in last[3]["value"] and "error" in last[3]["value"] and last[3]["visible"]
        assert preview_glb([str(out_dir / "a.h5")]) is None  # no .glb written: an empty viewer
    finally:
        jobs.close()
