"""A tiny Hugging Face hub look-alike on 127.0.0.1 for download tests (no real network).

It serves ``HEAD/GET /{repo_id}/resolve/{revision}/{filename}`` like the hub does for huggingface_hub:
git files answer 200 with ``ETag`` (the git blob sha1), ``X-Repo-Commit`` and ``Content-Length``; LFS files
(``lfs=True``) answer 302 to ``/cdn/<sha256>`` on a second port (the CDN) with ``X-Linked-Size`` / ``X-Linked-Etag`` (the sha256), and the
CDN honours ``Range``. Unknown files get 404 with ``X-Error-Code: EntryNotFound``, unknown repositories 401
with ``RepoNotFound``. Faults for tests: ``corrupt`` (served bytes differ from the advertised hash),
``drop_once`` (the next GET of that file closes the connection after half the body), ``dead_gets`` (that
many later GETs close right after the headers, sending no body).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    lfs: bool = True
    corrupt: bool = False
    drop_once: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(f"blob {len(self.data)}\0".encode() + self.data).hexdigest()

    def served(self) -> bytes:
        if not self.corrupt:
            return self.data
        return bytes([self.data[0] ^ 0xFF]) + self.data[1:]


@dataclass
class FakeHub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    """(repo_id, path in repo) -> file."""
    dead_gets: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Range header) of every request, in order."""

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def add(self, repo_id: str, filename: str, data: bytes, **kw: Any) -> HubFile:
        f = self.files[(repo_id, filename)] = HubFile(data, **kw)
        return f

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self, path_part: str) -> list[str | None]:
        """Range headers of the GETs whose path contains ``path_part``."""
        return [r for m, p, r in self.requests if m == "GET" and path_part in p]

    @property
    def cdn(self) -> str:
        """Where LFS files are served from: another origin (port), as the hub's CDN is another host."""
        assert self._cdn is not None
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for server in (self._server, self._cdn):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self._server, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()

    # ------------------------------------------------------------------ request handling

    def _by_sha(self, sha: str) -> HubFile | None:
        return next((f for f in self.files.values() if f.sha256 == sha), None)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", h.path, rng))
        m = re.fullmatch(r"/cdn/([0-9a-f]{64})", h.path)
        if m:
            f = self._by_sha(m.group(1))
            if f is None:
                return self._status(h, 404, {})
            return self._body(h, f, head=head, extra={"ETag": f'"{f.sha256}"'})
        m = re.fullmatch(r"/(?:api/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", h.path)
        if not m:
            return self._status(h, 404, {})
        repo, _rev, name = m.group(1), m.group(2), m.group(3)
        if not any(r == repo for r, _ in self.files):
            return self._status(h, 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        f = self.files.get((repo, name))
        if f is None:
            return self._status(h, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT,
                                         "X-Error-Message": "Entry not found"})
        if f.lfs:
            # To another origin, as the hub's redirect to its CDN is (huggingface_hub follows redirects on its own
            # origin itself while reading metadata, and must stop at this one to see the X-Linked-* headers).
            loc = f"{self.cdn}/cdn/{f.sha256}"
            return self._status(h, 302, {"Location": loc, "X-Repo-Commit": COMMIT, "X-Linked-Size": str(len(f.data)),
                                         "X-Linked-Etag": f'"{f.sha256}"', "ETag": '"redirect-etag"'})
        return self._body(h, f, head=head, extra={"ETag": f'"{f.git_sha1}"', "X-Repo-Commit": COMMIT})

    @staticmethod
    def _status(h: BaseHTTPRequestHandler, code: int, headers: dict[str, str]) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _body(self, h: BaseHTTPRequestHandler, f: HubFile, *, head: bool, extra: dict[str, str]) -> None:
        data = f.served()
        start = 0
        rng = h.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and int(m.group(1)) < len(data):
            start = int(m.group(1))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(data) - start))
        for k, v in extra.items():
            h.send_header(k, v)
        h.end_headers()
        if head:
            return
        body = data[start:]
        with self._lock:
            drop = f.drop_once
            f.drop_once = False
            dead = not drop and self.dead_gets > 0
            if dead:
                self.dead_gets -= 1
        if dead:
            h.close_connection = True
            return
        if drop:
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)


def isolate_hub_env(monkeypatch: Any, tmp_path: Path, *, chunk: int = 16_384) -> None:
    """No token, proxy, offline switch or real hub; HF_HOME and caches under ``tmp_path``.

    huggingface_hub writes in chunks of ``DOWNLOAD_CHUNK_SIZE``: the bytes of an unfinished chunk are lost
    when a connection drops, so tests shrink it to make resume offsets predictable.
    """
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy", "ARTALK_ASSETS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # sha256_file_cached's cache
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real hub, even by mistake
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", chunk)


def fill_disk(monkeypatch: Any) -> None:
    """Make the next download hit a full disk: huggingface_hub's transfer writes part of the file, then
    the disk is full (ENOSPC), as a real full disk would answer."""
    import errno
    import os

    from huggingface_hub import file_download

    def full_disk_get(url: str, temp_file: Any, **kwargs: Any) -> None:
        temp_file.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(file_download, "http_get", full_disk_get)
