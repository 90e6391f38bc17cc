"""The `artalk app` server without a browser: the JSON API over real HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artalk_core.errors import InputError
from artalk_core.webapp import (
    LANGUAGE_LABELS,
    MSG_NO_AUDIO,
    MSG_NO_TEXT,
    PROJECT_ASSETS,
    AppConfig,
    AppServer,
    check_share,
    parse_multipart,
    serve,
)
from tests.conftest import FIXTURE


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """2 s of the fixture speech as a 16 kHz WAV (50 frames)."""
    from artalk_core.audio import load_audio, write_wav

    path = tmp_path_factory.mktemp("wav") / "short.wav"
    write_wav(path, load_audio(FIXTURE / "speech_16k.wav").samples[:32000])
    return path.read_bytes()


@contextlib.contextmanager
def running(assets: Path, **options: Any) -> Iterator[AppServer]:
    options.setdefault("size", 64)
    server = AppServer(AppConfig(assets=assets, **options), port=0).start()
    try:
        yield server
    finally:
        server.close()


def encode_form(fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode("utf-8") + b"\r\n")
    for name, (filename, data) in (files or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(server: AppServer, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None
         ) -> tuple[int, dict[str, Any]]:
    body, ctype = encode_form(fields, files)
    req = urllib.request.Request(server.url + "/api/jobs", data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(server: AppServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_get(server: AppServer, path: str) -> tuple[int, bytes]:
    """A GET with the path sent byte for byte (urllib would not send some of these)."""
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def status(server: AppServer, job_id: str) -> dict[str, Any]:
    code, _, body = get(server, f"/api/jobs/{job_id}")
    assert code == 200, body
    return json.loads(body)


def wait_done(server: AppServer, job_id: str, timeout: float = 120) -> dict[str, Any]:
    end = time.time() + timeout
    while time.time() < end:
        st = status(server, job_id)
        if st["status"] in ("done", "error", "cancelled"):
            return st
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {st}")


# ----- config ---------------------------------------------------------------------------------------

def test_config_lists_styles_heads_languages_and_examples(tiny_assets):
    with running(tiny_assets) as server:
        code, headers, body = get(server, "/api/config")
        assert code == 200 and headers["Content-Type"].startswith("application/json")
        cfg = json.loads(body)
    assert cfg["styles"] == ["default", "happy_1", "tiny_0"]
    assert cfg["heads"] == [{"id": "mesh", "label": "mesh (stand-in head)"}]
    assert cfg["languages"] == ["English", "中文", "日本語", "Deutsch", "Français", "Español"]
    assert cfg["engine"] == "artalk"
    assert "FLAME_with_eye.pt not found" in cfg["notice"] and "stand-in" in cfg["notice"]
    if (PROJECT_ASSETS / "speech_sample.wav").is_file():
        assert "speech_sample.wav" in [e["name"] for e in cfg["examples"]]
    assert cfg["max_upload_bytes"] == 50 * 1024 * 1024 and cfg["max_seconds"] == 60


def test_no_model_uses_energy_engine_and_says_so(tmp_path, short_wav):
    with running(tmp_path) as server:
        cfg = json.loads(get(server, "/api/config")[2])
        assert cfg["engine"] == "energy"
        assert cfg["notice"].startswith(f"released model not found in {tmp_path.resolve()}: using the weight-free "
                                        f"energy engine and the stand-in head")
        assert cfg["styles"] == ["default"]
        code, job = post(server, {"mode": "audio"}, {"audio": ("talk.wav", short_wav)})
        assert code == 202
        st = wait_done(server, job["job_id"])
    assert st["status"] == "done", st
    assert st["frames"] == 50 and st["head_is_standin"] is True


def test_index_page_and_static_files(tmp_path):
    with running(tmp_path) as server:
        code, headers, body = get(server, "/")
        assert code == 200 and headers["Content-Type"].startswith("text/html")
        assert b'id="generate"' in body and b"/app.js" in body
        code, headers, body = get(server, "/app.js")
        assert code == 200 and headers["Content-Type"].startswith("text/javascript") and b"/api/jobs" in body
        assert get(server, "/app.css")[0] == 200


def test_head_files_in_the_assets_are_offered_and_used(tmp_path, short_wav):
    shutil.copy(FIXTURE / "flame_synthetic.pt", tmp_path / "FLAME_with_eye.pt")
    shutil.copy(FIXTURE / "flame_synthetic.pt", tmp_path / "flame_small.pt")
    with running(tmp_path) as server:
        cfg = json.loads(get(server, "/api/config")[2])
        assert [h["id"] for h in cfg["heads"]][:2] == ["mesh", "standin"]
        assert cfg["heads"][0]["label"] == "mesh (FLAME_with_eye.pt)"
        other = [h for h in cfg["heads"] if h["label"] == "flame_small"]
        assert len(other) == 1
        assert cfg["notice"].startswith("released model not found")
        assert "energy engine" in cfg["notice"] and "stand-in" not in cfg["notice"]
        results = {}
        for head in ("mesh", "standin", other[0]["id"]):
            code, job = post(server, {"mode": "audio", "head": head}, {"audio": ("a.wav", short_wav)})
            assert code == 202, job
            results[head] = wait_done(server, job["job_id"])
    assert all(r["status"] == "done" for r in results.values()), results
    assert results["mesh"]["head_is_standin"] is False
    assert results["standin"]["head_is_standin"] is True
    assert results[other[0]["id"]]["head_is_standin"] is False


# ----- a whole job -------------------------------------------------------------------------------

def test_audio_job_serves_video_motion_reference_pt_and_vertices(tiny_assets, short_wav, tmp_path):
    import av
    import torch

    from artalk_core.formats.motion import read_motion
    from artalk_core.formats.vertices import read_vertices

    with running(tiny_assets) as server:
        code, job = post(server, {"mode": "audio", "style": "tiny_0", "head": "mesh"},
                         {"audio": ("my talk.wav", short_wav)})
        assert code == 202 and job["status"] in ("queued", "running")
        st = wait_done(server, job["job_id"])
        assert st["status"] == "done", st
        assert st["progress"] == 1.0 and st["frames"] == 50 and st["style"] == "tiny_0"
        assert set(st["files"]) == {"video.mp4", "motion.safetensors", "motion.pt", "vertices.h5"}
        assert st["files"]["motion.pt"]["download"] == "my_talk_tiny_0_mesh_motions.pt"  # the reference's name
        got: dict[str, bytes] = {}
        for name, info in st["files"].items():
            code, headers, body = get(server, info["url"])
            assert code == 200, (name, body[:200])
            got[name] = body
            if name == "video.mp4":
                assert headers["Content-Type"] == "video/mp4"
                assert "Content-Disposition" not in headers  # played inline
            else:
                assert headers["Content-Disposition"] == f'attachment; filename="{info["download"]}"'
        # byte ranges, as a video player asks for them
        code, headers, part = get(server, st["files"]["video.mp4"]["url"], {"Range": "bytes=10-19"})
        assert code == 206 and part == got["video.mp4"][10:20]
        assert headers["Content-Range"] == f"bytes 10-19/{len(got['video.mp4'])}"
        code, headers, _ = get(server, st["files"]["video.mp4"]["url"] + "?download=1")
        assert headers["Content-Disposition"].startswith("attachment")

    for name, data in got.items():
        (tmp_path / name).write_bytes(data)
    with av.open(str(tmp_path / "video.mp4")) as c:
        frames = sum(1 for _ in c.decode(video=0))
        assert len(c.streams.audio) == 1
    assert frames == 50
    motion = read_motion(tmp_path / "motion.safetensors")
    assert motion.data.shape == (50, 106) and motion.meta["style"] == "tiny_0" and motion.meta["engine"] == "artalk"
    ref = torch.load(tmp_path / "motion.pt", weights_only=True)
    assert isinstance(ref, torch.Tensor) and ref.dtype == torch.float32
    np.testing.assert_array_equal(ref.numpy(), motion.data)
    with read_vertices(tmp_path / "vertices.h5") as vf:
        assert vf.frames == 50


def test_text_job_and_custom_style_upload(tiny_assets):
    style_bytes = (FIXTURE / "style_motion.pt").read_bytes()
    with running(tiny_assets) as server:
        code, job = post(server, {"mode": "text", "text": "Hallo, wie geht es dir?", "lang": "Deutsch",
                                  "style": "default"}, {"style_file": ("mine.pt", style_bytes)})
        assert code == 202, job
        assert job["style"] == "upload_mine"
        st = wait_done(server, job["job_id"])
    assert st["status"] == "done", st
    assert st["frames"] > 10


# ----- validation --------------------------------------------------------------------------------

def test_validation_messages(tiny_assets, short_wav):
    with running(tiny_assets, max_seconds=1.0) as server:
        cases = [
            ({"mode": "audio"}, None, MSG_NO_AUDIO),
            ({"mode": "audio", "style": "tiny_0"}, {"audio": ("empty.wav", b"")}, MSG_NO_AUDIO),
            ({"mode": "text", "text": "   \n "}, None, MSG_NO_TEXT),
            ({"mode": "text"}, None, MSG_NO_TEXT),
            ({"mode": "audio"}, {"audio": ("notes.wav", b"these are not audio samples" * 20)}, "unsupported file"),
            ({"mode": "audio"}, {"audio": ("long.wav", short_wav)}, "too long: 2.0 s (at most 1 s)"),
            ({"mode": "text", "text": "x" * 200}, None, "text is too long"),
            ({"mode": "text", "text": "hi", "lang": "Klingon"}, None, "unsupported language"),
            ({"mode": "audio", "style": "tiny_9"}, {"audio": ("a.wav", short_wav)}, "unknown style 'tiny_9'"),
            ({"mode": "audio", "head": "../../etc/passwd"}, {"audio": ("a.wav", short_wav)}, "unknown appearance"),
            ({"mode": "audio", "example": "ex99"}, None, "unknown example"),
            ({"mode": "video"}, None, "unknown input mode"),
            ({"mode": "text", "text": "hi"}, {"style_file": ("bad.pt", b"garbage")}, "unsupported style file"),
        ]
        for fields, files, message in cases:
            code, body = post(server, fields, files)
            assert code == 400, (fields, body)
            assert message in body["error"], (fields, body)
        # not multipart at all
        req = urllib.request.Request(server.url + "/api/jobs", data=b"{}", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 415
        # nothing was queued by any of these
        assert server.app._jobs == {}


def test_spoken_text_longer_than_the_limit_fails_the_job(tmp_path):
    with running(tmp_path, max_seconds=1.0) as server:
        code, job = post(server, {"mode": "text", "text": "One, two, three, four.",
                                  "lang": "English"})
        assert code == 202, job
        st = wait_done(server, job["job_id"])
    assert st["status"] == "error" and "too long" in st["error"]
    assert st["files"] == {}


def test_upload_size_limit_gives_413(tmp_path, short_wav):
    with running(tmp_path, max_upload_bytes=32 * 1024) as server:
        # a modest excess: the body is sent and drained, the answer is 413
        code, body = post(server, {"mode": "audio"}, {"audio": ("a.wav", short_wav)})
        assert code == 413 and "too large" in body["error"]
        # a huge announced body is refused from its headers alone (nothing is read)
        host, port = server.httpd.server_address[:2]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
        conn.putrequest("POST", "/api/jobs")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(10 * 1024**3))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and "too large" in json.loads(resp.read())["error"]
        conn.close()
        # no length at all
        conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
        conn.putrequest("POST", "/api/jobs")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 411
        conn.close()
        # the server still answers
        assert get(server, "/api/config")[0] == 200


def test_no_path_traversal(tiny_assets, short_wav):
    with running(tiny_assets) as server:
        code, job = post(server, {"mode": "audio"}, {"audio": ("a.wav", short_wav)})
        job_id = job["job_id"]
        assert wait_done(server, job_id)["status"] == "done"
        secret = b"TOP-SECRET-CONTENT"
        (server.app.root / "secret.txt").write_bytes(secret)
        (server.app.root / job_id / "secret.txt").write_bytes(secret)
        (server.app.root.parent / f"{server.app.root.name}-secret.txt").write_bytes(secret)
        try:
            paths = [
                f"/api/jobs/{job_id}/secret.txt",
                f"/api/jobs/{job_id}/../secret.txt",
                f"/api/jobs/{job_id}/%2e%2e/secret.txt",
                f"/api/jobs/{job_id}/..%2fsecret.txt",
                f"/api/jobs/{job_id}/..%2f..%2f{server.app.root.name}-secret.txt",
                "/api/jobs/..%2f..%2fetc%2fpasswd/video.mp4",
                "/api/jobs/../../../../etc/passwd",
                f"/api/jobs/{job_id}/work",
                f"/api/jobs/{job_id}/input.wav",
                "/../../../../etc/passwd",
                "/%2e%2e/%2e%2e/etc/passwd",
                "/app.js/../../webapp.py",
                "/webapp.py",
                "/data/web/index.html",
                "/api/examples/..%2F..%2Fpyproject.toml",
                "/api/examples/ex0/../../../pyproject.toml",
                "/api/jobs/secret.txt",
                "//etc/passwd",
            ]
            for path in paths:
                code, body = raw_get(server, path)
                assert code in (400, 404), (path, code)
                assert secret not in body and b"root:" not in body and b"[project]" not in body, path
        finally:
            (server.app.root.parent / f"{server.app.root.name}-secret.txt").unlink()
        # the real result is still served, by id and fixed name only
        assert raw_get(server, f"/api/jobs/{job_id}/motion.pt")[0] == 200


# ----- queue and cleanup ---------------------------------------------------------------------------

def test_concurrent_jobs_queue_one_at_a_time(tmp_path, short_wav):
    with running(tmp_path) as server:
        results: dict[str, Any] = {}
        with server.app.model_lock:  # hold the model as a running generation would
            def submit(name: str) -> None:
                results[name] = post(server, {"mode": "audio"}, {"audio": (f"{name}.wav", short_wav)})[1]

            first = threading.Thread(target=submit, args=("a",))
            first.start()
            first.join()
            second = threading.Thread(target=submit, args=("b",))
            second.start()
            second.join()
            a, b = results["a"]["job_id"], results["b"]["job_id"]
            assert status(server, a)["status"] == "queued" and status(server, a)["queue_position"] == 1
            assert status(server, b)["status"] == "queued" and status(server, b)["queue_position"] == 2
            code, c = post(server, {"mode": "audio"}, {"audio": ("c.wav", short_wav)})
            assert status(server, c["job_id"])["queue_position"] == 3
            # a waiting job can be withdrawn: it leaves the queue and its files go
            assert get(server, f"/api/jobs/{c['job_id']}")[0] == 200
            req = urllib.request.Request(f"{server.url}/api/jobs/{c['job_id']}", method="DELETE")
            assert urllib.request.urlopen(req, timeout=30).status == 200
            assert get(server, f"/api/jobs/{c['job_id']}")[0] == 404
            assert not (server.app.root / c["job_id"]).exists()
        sa, sb = wait_done(server, a), wait_done(server, b)
    assert sa["status"] == sb["status"] == "done"
    assert sa["finished"] <= sb["started"]  # never two generations at once


def test_finished_jobs_expire_and_shutdown_removes_everything(tmp_path, short_wav):
    server = AppServer(AppConfig(assets=tmp_path, size=64, keep_seconds=3600), port=0).start()
    root = server.app.root
    try:
        _, job = post(server, {"mode": "audio"}, {"audio": ("a.wav", short_wav)})
        job_id = job["job_id"]
        wait_done(server, job_id)
        assert sorted(p.name for p in (root / job_id).iterdir()) == ["motion.pt", "motion.safetensors",
                                                                     "vertices.h5", "video.mp4"]
        assert server.app.cleanup_expired() == []
        assert server.app.cleanup_expired(now=time.time() + 3601) == [job_id]
        assert not (root / job_id).exists()
        assert get(server, f"/api/jobs/{job_id}/video.mp4")[0] == 404
        _, job2 = post(server, {"mode": "audio"}, {"audio": ("a.wav", short_wav)})
        wait_done(server, job2["job_id"])
        assert (root / job2["job_id"]).is_dir()
    finally:
        server.close()
    assert not root.exists()


# ----- share / serve / multipart -------------------------------------------------------------------

def test_share_only_off():
    check_share("off")
    check_share("OFF")
    for value in ("on", "true", "gradio"):
        with pytest.raises(InputError, match="only 'off' is supported"):
            check_share(value)
    with pytest.raises(InputError, match="--share"):
        serve(share="on", port=0)


def test_serve_runs_until_stopped_and_cleans_up(tmp_path):
    started: list[AppServer] = []
    ready = threading.Event()

    def on_ready(server: AppServer) -> None:
        started.append(server)
        ready.set()

    t = threading.Thread(target=serve, kwargs={"port": 0, "assets": tmp_path, "ready": on_ready}, daemon=True)
    t.start()
    assert ready.wait(60)
    server = started[0]
    assert server.url.startswith("http://127.0.0.1:")
    assert get(server, "/api/config")[0] == 200
    server.httpd.shutdown()
    t.join(30)
    assert not t.is_alive() and not server.app.root.exists()


def test_parse_multipart_keeps_binary_and_names():
    payload = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n"
    body, ctype = encode_form({"mode": "audio", "text": "中文"}, {"audio": ("x.wav", payload)})
    form = parse_multipart(body, ctype)
    assert form["mode"] == (None, b"audio")
    assert form["text"][1].decode() == "中文"
    assert form["audio"] == ("x.wav", payload)


def test_cli_app_command_rejects_share_and_parses(tmp_path):
    import typer
    from typer.testing import CliRunner

    from artalk_cli.commands import app as app_module

    cli = typer.Typer()
    app_module.register(cli)

    @cli.command("noop")
    def _noop() -> None:  # a second command keeps `app` a subcommand
        pass

    runner = CliRunner()
    res = runner.invoke(cli, ["app", "--share", "on", "--assets", str(tmp_path)])
    assert res.exit_code == 2
    assert "only 'off' is supported" in res.output
    res = runner.invoke(cli, ["app", "--help"])
    assert res.exit_code == 0
    for flag in ("--host", "--port", "--assets", "--share", "--max-seconds", "--max-upload-mb"):
        assert flag in res.output


def test_languages_match_the_reference_menu():
    from artalk_core.tts import LANGUAGES, normalize_lang

    assert list(LANGUAGE_LABELS) == ["English", "中文", "日本語", "Deutsch", "Français", "Español"]
    assert {normalize_lang(code) for code in LANGUAGE_LABELS.values()} == set(LANGUAGES)
