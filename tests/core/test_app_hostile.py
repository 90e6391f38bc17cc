"""The web app against hostile clients: API inputs that name server files, wrong value types, slow
and greedy connections. Raw HTTP and gradio_client against one app with small limits.

The app (energy engine, no assets) allows 1 MB uploads, 6 connections per client address and 20
in all, 3 s for a request head and 1 s (plus 1 s per 1000 bytes) for a body.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artalk_core.options import ModelOptions

pytest.importorskip("gradio")

from artalk_core.app import AppConfig  # noqa: E402

REFUSED_SPEECH = "The speech must be a file uploaded to this server (with gradio_client: handle_file(path))."
REFUSED_STYLE = "The style file must be a file uploaded to this server (with gradio_client: handle_file(path))."


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from artalk_core.app.server import AppServer

    config = AppConfig(model=ModelOptions(assets=tmp_path_factory.mktemp("no_assets")), size=32, max_upload_mb=1, max_seconds=10,
                       client_connections=6, max_connections=20, header_seconds=3.0, body_seconds=1.0,
                       body_min_rate=1000.0)
    server = AppServer(config, port=0).start()
    yield server
    server.close()


def port_of(app: Any) -> int:
    return int(app.sock.getsockname()[1])


def http(app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         *, source: str = "127.0.0.1", timeout: float = 30) -> tuple[int, bytes]:
    """One request on a fresh connection from the address ``source``; (status, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port_of(app), timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body=body or None, headers={"Host": f"127.0.0.1:{port_of(app)}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api_index(app: Any) -> int:
    config = json.loads(http(app, "GET", "/config")[1])
    return next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "generate")


def run_api(app: Any, data: list[Any], session: str, *, fn_index: int | None = None,
            event_data: Any = None) -> dict[str, Any]:
    """queue/join the ``generate`` endpoint (or the function ``fn_index``) with raw ``data``; its
    last SSE message."""
    body = json.dumps({"data": data, "fn_index": api_index(app) if fn_index is None else fn_index,
                       "session_hash": session, "event_data": event_data, "trigger_id": None}).encode()
    status, answer = http(app, "POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    assert status == 200, answer
    status, stream = http(app, "GET", f"/gradio_api/queue/data?session_hash={session}")
    messages = [json.loads(line[6:]) for line in stream.decode().splitlines() if line.startswith("data: ")]
    return next(m for m in messages if m.get("msg") == "process_completed")


def file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def upload(app: Any, name: str, content: bytes) -> str:
    boundary = "hostiletest"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    status, answer = http(app, "POST", "/gradio_api/upload", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    return str(json.loads(answer)[0])


def cache_files(app: Any) -> set[Path]:
    return {p for p in app.jobs.cache.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths on the server that are not uploads: a readable file, a dot-file, a folder, a FIFO..."""
    root = tmp_path_factory.mktemp("server_side")
    (root / "notes.wav").write_bytes(b"RIFF not really")
    (root / ".secret").write_text("token=1234")
    os.mkfifo(root / "fifo.wav")
    return {"file": str(root / "notes.wav"), "dot-file": str(root / ".secret"), "folder": str(root),
            "fifo": str(root / "fifo.wav"), "missing": str(root / "missing.wav"), "environ": "/proc/self/environ",
            "zeros": "/dev/zero", "relative": "notes.wav", "url": "http://127.0.0.1:9/speech.wav"}


@pytest.mark.parametrize("kind", ["file", "dot-file", "folder", "fifo", "missing", "environ", "zeros", "relative",
                                  "url"])
def test_api_opens_only_uploads(app, server_files, kind):
    """queue/join naming a server path (as the audio or the style file) is refused in the same words
    whether it exists or not, before Gradio hashes or copies it: /dev/zero or a FIFO no longer stall
    the event loop, and nothing lands in the cache."""
    before = cache_files(app)
    path = server_files[kind]
    done = run_api(app, [file_data(path), None, "en", "mesh", "default", None], f"speech-{kind}")
    assert not done["success"] and done["output"]["error"] == REFUSED_SPEECH
    done = run_api(app, [None, "Hello.", "en", "mesh", "default", file_data(path)], f"style-{kind}")
    assert not done["success"] and done["output"]["error"] == REFUSED_STYLE
    assert cache_files(app) == before
    assert http(app, "GET", "/config", timeout=10)[0] == 200  # the event loop still answers


def test_api_file_checks_inside_the_cache(app, tmp_path):
    """Within the upload cache: a folder, a path climbing out with '..', a link planted there, a file
    over --max-upload-mb, an expired upload; and a value of the wrong type (where pydantic's text
    came through)."""
    uploaded = upload(app, "tiny.wav", b"x" * 100)
    folder = str(Path(uploaded).parent)
    link = Path(folder) / "link.wav"
    link.symlink_to(tmp_path)
    big = Path(folder) / "big.wav"
    big.write_bytes(b"\0" * (1024 * 1024 + 1))
    gone = Path(folder) / "gone.wav"
    cases = {folder: REFUSED_SPEECH, f"{folder}/../../jobs/x.wav": REFUSED_SPEECH, str(link): REFUSED_SPEECH,
             str(big): "The speech is too large (1.0 MB): this server takes files up to 1 MB.",
             str(gone): "The uploaded speech is no longer on this server (uploads are removed after a while): "
                        "upload it again."}
    for i, (path, message) in enumerate(cases.items()):
        done = run_api(app, [file_data(path), None, "en", "mesh", "default", None], f"cache-{i}")
        assert done["output"]["error"] == message, path
    typed = {0: ("a speech path as text", "The speech must be an uploaded file (with gradio_client: handle_file(path)), "
                                          "not text."),
             2: (["en"], "The language must be text, not a list."),
             3: ({"path": uploaded}, "The appearance must be text, not an object."),
             4: ("x" * 100, f"Unknown style '{'x' * 40}...': choose one of default.")}
    for index, (value, message) in typed.items():
        data: list[Any] = [None, "Hello.", "en", "mesh", "default", None]
        data[index] = value
        done = run_api(app, data, f"typed-{index}")
        assert done["output"]["error"] == message
        assert "pydantic" not in json.dumps(done) and "validation error" not in json.dumps(done)
    done = run_api(app, [None, "Hello."], "short")
    assert done["output"]["error"] == "The request carries 2 input values; this function takes 6."


def test_malformed_api_requests_answered_in_words(app):
    """FastAPI's 422 listed pydantic's error objects (types, the input echoed, links to its docs)."""
    for body, detail in ((b'{"data": "x", "fn_index": 0, "session_hash": "s"}', "data: input should be a valid list"),
                         (b"not json", "the body: json decode error"),
                         (b'{"data": [], "fn_index": "first", "session_hash": "s"}', "fn_index: input should be a valid integer")):
        status, answer = http(app, "POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
        assert status == 422 and detail in json.loads(answer)["detail"], answer
        assert b"pydantic" not in answer and b'"input"' not in answer and b'"type"' not in answer


def test_uploaded_playlist_cannot_read_server_files(app, tmp_path):
    """An upload is opened, but FFmpeg opens what an HLS playlist names: a server's own media files."""
    import av
    import numpy as np

    segment = tmp_path / "private.ts"  # a server file FFmpeg would read as the speech
    with av.open(str(segment), "w") as c:
        st = c.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((0.2 * np.sin(np.arange(32000) / 5.0)).astype(np.float32)[None],
                                           format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*st.encode(frame), *st.encode(None)]:
            c.mux(packet)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n".encode()
    uploaded = upload(app, "speech.m3u8", playlist)
    done = run_api(app, [file_data(uploaded), None, "en", "mesh", "default", None], "playlist")
    assert not done["success"]
    assert done["output"]["error"].startswith("The speech could not be used. The audio is not one of the audio or "
                                              "video formats taken here (wav, ")


def test_gradio_client_sees_refusals_in_words(app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app.url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(Exception) as err:  # a URL: the server would fetch it
        client.predict(audio=handle_file("http://127.0.0.1:9/speech.wav"), api_name="/generate")
    assert str(err.value) == REFUSED_SPEECH
    with pytest.raises(Exception) as err:  # a path without handle_file
        client.predict(audio="/etc/hostname", api_name="/generate")
    assert "must be an uploaded file" in str(err.value) and "hostname" not in str(err.value)


def page_functions(app: Any) -> list[tuple[int, str, int]]:
    """(fn_index, name, number of inputs) of every function the page's /config offers a backend for."""
    config = json.loads(http(app, "GET", "/config")[1])
    return [(i, str(d.get("api_name")), len(d["inputs"])) for i, d in enumerate(config["dependencies"])
            if d.get("backend_fn")]


def refusal(app: Any, fn_index: int, data: list[Any], session: str) -> str | None:
    """What the function ``fn_index`` says to ``data`` through queue/join (None: it took it). A
    function with a validator (the button's first step) answers at join: 400 with the refusal, or
    422 with the page's per-input messages."""
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}).encode()
    status, answer = http(app, "POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    if status == 422:
        detail = json.loads(answer)["detail"]
        return " ".join(d["message"] for d in detail if not d["is_valid"])
    if status != 200:
        return str(json.loads(answer)["detail"])
    status, stream = http(app, "GET", f"/gradio_api/queue/data?session_hash={session}")
    messages = [json.loads(line[6:]) for line in stream.decode().splitlines() if line.startswith("data: ")]
    done = next(m for m in messages if m.get("msg") == "process_completed")
    if done["success"]:
        return None
    error = done["output"]["error"]
    assert isinstance(error, str) and error.strip(), f"function {fn_index}: {data} -> {done}"
    return error


def test_every_page_function_refuses_malformed_input_in_words(app, capfd):
    """Each function Gradio exposes (the examples table's load_example, the switch, the validator,
    the button's steps, generate, cancel) answers malformed data with a message in words: never
    Gradio's empty error ({"error": null}) after a traceback in the server's log."""
    capfd.readouterr()
    functions = page_functions(app)
    assert {"load_example", "generate", "switch"} <= {name for _, name, _ in functions}
    for index, name, n in functions:
        for k, value in enumerate((None, "x", 99, -1, True, 1.5, {}, [], {"path": None}, [[]])):
            said = refusal(app, index, [value] * n, f"fn{index}-{k}")
            assert said is None or (isinstance(said, str) and said.strip()), (name, value, said)
        said = refusal(app, index, [None] * 9, f"fn{index}-count")
        assert said is not None and said.startswith("The request carries 9 input values"), (name, said)
    examples = next(index for index, name, _ in functions if name == "load_example")
    said = refusal(app, examples, [None], "example-none")  # the reviewer's case
    assert said is not None and said.startswith("The example must be the number of one of the page's "), said
    assert refusal(app, examples, [0], "example-0") is None  # what the page sends
    err = capfd.readouterr().err
    assert "Traceback" not in err and "TypeError" not in err, err[-2000:]


def test_a_failing_page_function_is_logged_in_one_line_and_answered_in_words(app, monkeypatch, caplog):
    """Whatever still fails inside a function: a log record (the CLI prints its traceback with
    --debug only) and a message in words, not Gradio's empty error."""
    from artalk_core.app.inputs import MSG_FAILED

    index, fn = next((i, f) for i, f in app.parts.blocks.fns.items() if f.name == "switch")

    def broken(mode: str) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fn, "fn", broken)
    with caplog.at_level("ERROR", logger="artalk.app"):
        done = run_api(app, ["Audio"], "broken", fn_index=index)
    assert done["output"]["error"] == MSG_FAILED
    [record] = [r for r in caplog.records if r.name == "artalk.app"]
    assert record.getMessage() == "the page's function switch failed" and record.exc_info is not None


# ----- connections ---------------------------------------------------------------------------------


def stalled(app: Any, source: str, how: str = "head") -> socket.socket:
    """A connection from ``source`` that owes the server bytes: a request head begun and never
    finished, or a body that stops after 5000 of its 100000 bytes (6 s before its deadline)."""
    port = port_of(app)
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if how == "head":
        s.sendall(b"GET / HTTP/1.1\r\n")
    else:
        s.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                  "application/json\r\nContent-Length: 100000\r\n\r\n".encode() + b" " * 5000)
    return s


def closed_by_server(s: socket.socket) -> bytes | None:
    """What the server said before it closed ``s`` (None: it is still open)."""
    s.settimeout(0.05)
    said = b""
    try:
        while chunk := s.recv(4096):
            said += chunk
    except TimeoutError:
        return None
    except OSError:
        pass
    return said


def test_stalled_connections_make_room_for_a_page_load_from_their_address(app):
    """Six connections that owe the server bytes (the address's whole share) no longer lock that
    address out (it was 429): a page load closes the one heard from least recently and is served."""
    held = [stalled(app, "127.0.0.2", "head" if i % 2 else "body") for i in range(6)]
    try:
        time.sleep(0.2)
        for _ in range(3):  # the first makes room; each closes its connection before the next
            assert http(app, "GET", "/config", source="127.0.0.2")[0] == 200
        said = closed_by_server(held[0])  # a body cut off: told why
        assert said is not None and said.startswith(b"HTTP/1.1 503") and b"busy" in said, said
        assert [closed_by_server(s) for s in held[1:]] == [None] * 5  # the more recent ones stay
        held.append(stalled(app, "127.0.0.2"))  # the share is full again
        held[2].sendall(b"Host: 127.0.0.1\r\n")  # held[1] is now the least recently heard from
        time.sleep(0.2)
        assert http(app, "GET", "/config", source="127.0.0.2")[0] == 200
        assert closed_by_server(held[1]) == b""  # a head begun: closed without a word
        assert [closed_by_server(s) for s in held[2:]] == [None] * 5
    finally:
        for s in held:
            s.close()


def test_a_flood_from_many_addresses_does_not_keep_a_newcomer_out(app):
    """Stalled connections from five addresses fill the server (20): a newcomer's page load is
    served each time (it was 503), and the server never holds more than its 20."""
    sources = [f"127.0.1.{i}" for i in range(2, 7)]
    held = [stalled(app, src) for src in sources for _ in range(5)]  # 25 > 20
    try:
        time.sleep(0.2)
        for i in range(3):
            assert http(app, "GET", "/", source=f"127.0.3.{i + 2}")[0] == 200
        still_open = [s for s in held if closed_by_server(s) is None]
        assert len(still_open) <= 20 - 1  # the newcomers made room; the last one's slot is free again
    finally:
        for s in held:
            s.close()


def test_a_client_whose_connections_are_all_served_gets_429(app):
    """Six responses that never end (Gradio's heartbeat streams) use the address's share: a seventh
    connection gets 429 at once, and other addresses are still served."""
    port = port_of(app)
    held = []
    try:
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.4", 0))
            s.sendall(f"GET /gradio_api/heartbeat/hog{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            held.append(s)
            assert s.recv(12) == b"HTTP/1.1 200"  # being served
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.4", 0)) as extra:
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 429") and b"being served" in answer
        assert http(app, "GET", "/config", source="127.0.0.5")[0] == 200
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the share is given back as the streams close
        try:
            if http(app, "GET", "/config", source="127.0.0.4")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the closed connections still count"
        time.sleep(0.1)


def test_addresses_holding_event_streams_make_room_for_a_newcomer(app):
    """Four addresses holding five never-ending responses each fill the server (20): a newcomer
    is still served (it was 503), at the cost of the longest stream of an address holding the most."""
    port = port_of(app)
    held = []
    try:
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(f"127.0.4.{2 + i % 4}", 0))
            s.sendall(f"GET /gradio_api/heartbeat/hog{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            held.append(s)
            assert s.recv(12) == b"HTTP/1.1 200"
        assert http(app, "GET", "/", source="127.0.4.9")[0] == 200
        assert closed_by_server(held[0]) is not None  # the longest stream of the first of the greediest
        assert [closed_by_server(s) for s in held[1:]] == [None] * 19
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("how", ["trickled", "short"])
def test_slow_or_short_body_gets_408(app, how):
    """A body trickled a byte every 0.4 s, or shorter than its Content-Length, no longer holds the
    connection: 408 and closed once its 1 s (+1 s per 1000 bytes) ran out."""
    port = port_of(app)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
        answer = b""
        if how == "trickled":
            s.settimeout(0.4)
            for _ in range(100):
                try:
                    s.sendall(b" ")
                    answer = s.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                break
            s.settimeout(20)
        answer = answer or s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
        assert b"too slowly" in answer + rest


def test_shutdown_message_says_so(tmp_path):
    """A job refused because the server stops reads as that, not as 'Cancelled.'."""
    from artalk_core.app.config import build_catalog
    from artalk_core.app.handlers import MSG_SHUTDOWN, Generator, Refused
    from artalk_core.app.jobs import JobStore

    config = AppConfig(model=ModelOptions(assets=tmp_path / "none"), size=32)
    jobs = JobStore(parent=tmp_path)
    generator = Generator(config, build_catalog(config), jobs)
    started = threading.Event()
    real = generator._report

    def report_then_stop(job: Any, progress: Any) -> Any:
        inner = real(job, progress)

        def report(stage: str, done: int, total: int) -> None:
            started.set()
            jobs.stop()  # SIGTERM while the job runs
            inner(stage, done, total)

        return report

    generator._report = report_then_stop  # type: ignore[method-assign]
    try:
        with pytest.raises(Refused) as refused:
            generator.run(audio=None, text="Hello there.")
        assert started.is_set() and refused.value.message == MSG_SHUTDOWN
        with pytest.raises(Refused) as refused:  # and a job asked for while it stops
            generator.run(audio=None, text="Hello there.")
        assert refused.value.message == MSG_SHUTDOWN
    finally:
        jobs.close()
