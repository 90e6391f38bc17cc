"""A real `artalk serve` process: streams over WebSockets equal `artalk generate`, `artalk live`
composes with the other commands, and the server survives hostile clients and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from artalk_core.options import ModelOptions, MotionOptions
from tests.conftest import FIXTURE, assert_clean_error, process_env
from tests.core.test_streaming import wav_bytes

pytest.importorskip("websockets")
pytest.importorskip("uvicorn")

WAV = FIXTURE / "speech_16k.wav"


class Server:
    def __init__(self, *args: object) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "artalk_cli.main", "serve", "--port", "0",
                                      *[str(a) for a in args]],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=process_env())
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []

        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
                continue
            self.seen.append(line)
            m = re.search(r"streams on (ws://127\.0\.0\.1:(\d+)/live)", line)
            if m:
                self.ws, self.port = m.group(1), int(m.group(2))
                self.http = f"http://127.0.0.1:{self.port}"
                return
        self.proc.kill()
        raise AssertionError("artalk serve did not start: " + "".join(self.seen))

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.http + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def streams(self) -> int:
        return int(json.loads(self.get("/live/config.json")[2])["streams"])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return "".join(self.seen + rest)


@pytest.fixture(scope="module")
def server(tiny_assets: Path) -> Iterator[Server]:
    srv = Server("--assets", tiny_assets, "--device", "cpu", "--max-streams", "4")
    yield srv
    assert "Traceback" not in srv.stop()


def stereo_44k(tmp_path: Path) -> tuple[Path, bytes, int]:
    """The fixture speech as 44.1 kHz stereo 16-bit PCM: (WAV file, its PCM, its rate)."""
    from artalk_core.audio import load_audio

    x = load_audio(WAV).samples[:110_000]
    pcm = np.round(np.stack([x, 0.3 * x[::-1]], axis=1) * 32767).astype("<i2")
    path = tmp_path / "stereo44k.wav"
    path.write_bytes(wav_bytes(pcm.ravel(), rate=44100, channels=2))
    return path, pcm.tobytes(), 44100


def test_streams_equal_generate_and_compose(server: Server, tiny_assets: Path, tmp_path: Path, artalk) -> None:
    from artalk_core.formats.motion import read_motion
    from artalk_core.live.client import LiveClient
    from artalk_core.pipeline import generate

    path, pcm, rate = stereo_44k(tmp_path)
    want = generate(str(path), motion=MotionOptions(style="tiny_0", clip_length=0), model=ModelOptions(assets=tiny_assets)).data

    async def client() -> list[np.ndarray]:
        async with LiveClient(server.ws, sample_rate=rate, channels=2, style="tiny_0") as s:
            assert s.header["meta"]["engine"] == "artalk" and s.header["block_frames"] == 100

            async def send() -> None:
                for i in range(0, len(pcm), 17_640):  # 100 ms pieces, as fast as possible
                    await s.send(pcm[i:i + 17_640])
                await s.end()

            task = asyncio.ensure_future(send())
            frames = [f.motion async for f in s.frames()]
            await task
            assert s.end_line is not None and s.end_line["frames"] == len(want)
            return frames

    np.testing.assert_array_equal(np.stack(asyncio.run(client())), want)

    # `artalk live` from a file at real-time pace, and from stdin as fast as possible into `artalk export -`
    out = tmp_path / "live.ndjson"
    res = artalk("live", server.ws, path, "-s", "tiny_0", "-o", out)
    assert res.returncode == 0, res.stderr
    assert "streamed 2.49 s of speech" in res.stderr and "lag p50" in res.stderr
    np.testing.assert_array_equal(read_motion(out).data, want)
    res = artalk("live", server.http, "-", "--fast", "-e", "energy", "-q", input=path.read_bytes())
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(read_motion(res.stdout).data, generate(str(path), motion=MotionOptions(engine="energy", clip_length=0)).data)
    glb = tmp_path / "live.glb"
    res = artalk("export", "-", "-o", glb, "-q", input=res.stdout)
    assert res.returncode == 0 and glb.read_bytes()[:4] == b"glTF"

    # refusals are one error line and the stream's exit code
    res = artalk("live", server.ws, path, "-s", "no_such_style", "--fast")
    assert_clean_error(res, "unknown style 'no_such_style'", "tiny_0")
    assert res.returncode == 2
    res = artalk("live", "ws://127.0.0.1:1/live", path)
    assert_clean_error(res, "cannot connect to ws://127.0.0.1:1/live")
    assert res.returncode == 4


def test_the_page_its_files_and_the_origin_guard(server: Server) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    status, _, body = server.get("/live")
    assert status == 200 and b"artalk <span>live</span>" in body
    for path in ("/live/static/live.js", "/live/static/rig.js", "/live/static/capture-worklet.js",
                 "/live/static/vendor/three/build/three.module.min.js", "/live/static/vendor/three/LICENSE",
                 "/live/static/vendor/three/examples/jsm/loaders/GLTFLoader.js"):
        assert server.get(path)[0] == 200, path
    status, headers, body = server.get("/live/head.glb", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip" and gzip.decompress(body)[:4] == b"glTF"
    assert server.get("/live", Origin="http://evil.example")[0] == 403

    async def foreign() -> None:
        with pytest.raises(InvalidStatus) as e:
            async with websockets.connect(server.ws, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert e.value.response.status_code == 403
        async with websockets.connect(server.ws, origin=server.http) as ws:  # type: ignore[arg-type]  # the page's own
            await ws.send(json.dumps({"type": "start", "engine": "energy"}))
            assert json.loads(await ws.recv())["format"] == "artalk.motion-stream"

    asyncio.run(foreign())


def test_hostile_clients_cost_the_server_nothing(server: Server) -> None:
    """A client that stops reading is dropped; one that vanishes while its chunk is computed is
    freed; a message over the protocol's limit is refused; the server serves on."""
    import websockets

    pcm = np.round(np.tile(np.sin(np.arange(16000) / 5.0), 300) * 8000).astype("<i2").tobytes()  # 300 s: 9 MB of lines
    # (more than the kernel buffers of a loopback connection hold, plus the 1000 lines of the queue)

    async def slow() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        async with websockets.connect(server.ws, sock=sock, max_queue=1, compression=None) as ws:
            await ws.send(json.dumps({"type": "start", "engine": "energy"}))
            try:
                for i in range(0, len(pcm), 64_000):
                    await asyncio.wait_for(ws.send(pcm[i:i + 64_000]), 1)
            except (TimeoutError, websockets.ConnectionClosed):
                pass  # the server stopped reading, or dropped us
            deadline = time.monotonic() + 15  # well before the 30-s idle timeout
            while server.streams() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert server.streams() == 0  # dropped without our reading anything

    async def vanish() -> None:
        ws = await websockets.connect(server.ws)
        await ws.send(json.dumps({"type": "start", "style": "tiny_0"}))
        await ws.recv()
        await ws.send(pcm[:140_000])  # a whole model chunk: the server starts computing it
        ws.transport.abort()  # gone without a close
        deadline = time.monotonic() + 30
        while server.streams() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert server.streams() == 0

    async def too_big() -> None:
        async with websockets.connect(server.ws, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "engine": "energy"}))
            await ws.recv()
            await ws.send(bytes(5 << 20))  # beyond what the WebSocket layer reads at all
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1009

    asyncio.run(slow())
    asyncio.run(vanish())
    asyncio.run(too_big())
    assert server.get("/live/config.json")[0] == 200


def test_sigterm_ends_every_stream_with_an_error_line(tmp_path: Path) -> None:
    import websockets

    srv = Server("--engine", "energy", "--assets", tmp_path)
    pcm = np.round(np.sin(np.arange(64_000) / 7.0) * 8000).astype("<i2").tobytes()

    async def stream() -> tuple[list[str], int | None]:
        async with websockets.connect(srv.ws) as ws:
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(pcm)
            lines = [await ws.recv() for _ in range(20)]  # the stream is well under way
            srv.proc.send_signal(signal.SIGTERM)
            t = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    lines.append(await ws.recv())
            assert time.monotonic() - t < 5
            return [str(x) for x in lines], ws.close_code

    try:
        lines, code = asyncio.run(stream())
        assert json.loads(lines[-1]) == {"error": "the server is shutting down"} and code == 1001
        assert srv.proc.wait(10) == 0
    finally:
        log = srv.stop()
    assert "Traceback" not in log


def test_listening_beyond_loopback_needs_a_token(artalk) -> None:
    res = artalk("serve", "--host", "0.0.0.0", "--port", "0", "--engine", "energy")
    assert_clean_error(res, "--token")
    assert res.returncode == 2
    env = os.environ.get("ARTALK_ASSETS")
    assert env is None or env  # (the fixture removes it for the run)
