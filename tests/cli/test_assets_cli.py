"""`artalk assets download | verify | list` end to end against a local fake hub (no real network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from artalk_cli.commands import assets as assets_cmd
from artalk_core import assets
from tests.hubserver import FakeHub, fill_disk, isolate_hub_env

REPO = "xg-chu/ARTalk"
CKPT = os.urandom(8 * 16_384)
CONFIG = b'{"cli": 1}\n'
STYLE = os.urandom(4_000)


def _app() -> typer.Typer:
    """The real `artalk` app once the assets group is registered there; until then, a local app."""
    from artalk_cli.main import app

    if any(g.name == "assets" for g in app.registered_groups):
        return app
    local = typer.Typer()

    @local.callback()
    def _root() -> None:
        """artalk"""

    assets_cmd.register(local)
    return local


def run(*args: str):
    return CliRunner().invoke(_app(), list(args))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_hub_env(monkeypatch, tmp_path)


@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as h:
        h.add(REPO, "ARTalk_wav2vec.pt", CKPT)
        h.add(REPO, "config.json", CONFIG, lfs=False)
        h.add(REPO, "style_motion/happy_0.pt", STYLE)
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


@pytest.fixture()
def manifest(tmp_path: Path) -> str:
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"format": assets.MANIFEST_FORMAT, "files": [
        {"repo_id": REPO, "local_path": "ARTalk_wav2vec.pt", "size": len(CKPT), "sha256": sha(CKPT),
         "kind": "checkpoint"},
        {"repo_id": REPO, "local_path": "config.json", "size": len(CONFIG), "sha256": sha(CONFIG), "kind": "config"},
        {"repo_id": REPO, "local_path": "style_motion/happy_0.pt", "size": None, "sha256": None, "kind": "style"},
    ]}))
    return str(p)


def test_help_lists_the_commands() -> None:
    r = run("assets", "--help")
    assert r.exit_code == 0
    for name in ("download", "verify", "list"):
        assert name in r.stdout


def test_download_then_verify_then_list(fake_hub: FakeHub, manifest: str, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    r = run("assets", "download", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 0, r.output
    assert "recorded sha256 of style_motion/happy_0.pt on first download; later verifies check it" in r.stderr
    assert "https://flame.is.tue.mpg.de" in r.stderr and "FLAME_with_eye.pt" in r.stderr
    assert "3 downloaded, 0 already present" in r.stderr
    assert (root / "ARTalk_wav2vec.pt").read_bytes() == CKPT

    r = run("assets", "download", "--assets", str(root), "--manifest", manifest)
    assert r.exit_code == 0 and "0 downloaded, 3 already present" in r.stderr

    r = run("assets", "verify", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["ok"] * 3
    assert "3 of 3 files verified" in r.stderr

    r = run("assets", "list", "--root", str(root), "--manifest", manifest, "--json")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["styles"][0]["name"] == "happy_0" and info["styles"][0]["size"] == len(STYLE)
    assert info["checkpoint"]["size"] == len(CKPT)
    r = run("assets", "list", "--root", str(root), "--manifest", manifest)
    assert "happy_0" in r.stdout and "stand-in" in r.stdout and "(default)" in r.stdout


def test_download_says_what_is_not_released(fake_hub: FakeHub, tmp_path: Path) -> None:
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"format": assets.MANIFEST_FORMAT, "files": [
        {"repo_id": REPO, "local_path": "config.json", "size": len(CONFIG), "sha256": sha(CONFIG), "kind": "config"},
        {"repo_id": REPO, "local_path": "ARTalk_mimi.pt", "required": False, "downloadable": False,
         "kind": "checkpoint", "description": "Mimi variant, not released yet"}]}))
    root = tmp_path / "a"
    r = run("assets", "download", "--root", str(root), "--manifest", str(m), "--include-optional")
    assert r.exit_code == 0, r.output
    assert "ARTalk_mimi.pt: not downloadable yet (Mimi variant, not released yet)" in r.output
    assert "1 downloaded, 0 already present" in r.output
    r = run("assets", "list", "--root", str(root), "--manifest", str(m))
    assert "ARTalk_mimi.pt (missing, not released yet)" in r.output


def test_quiet_download_prints_nothing(fake_hub: FakeHub, manifest: str, tmp_path: Path) -> None:
    r = run("assets", "download", "--root", str(tmp_path / "a"), "--manifest", manifest, "-q")
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""


def test_default_root_is_artalk_assets(fake_hub: FakeHub, manifest: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTALK_ASSETS", str(tmp_path / "env_assets"))
    r = run("assets", "download", "--manifest", manifest, "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "env_assets" / "config.json").read_bytes() == CONFIG


def test_verify_reports_problems(fake_hub: FakeHub, manifest: str, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    r = run("assets", "verify", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 3 and "missing" in r.stdout and "not usable" in r.stderr

    assert run("assets", "download", "--root", str(root), "--manifest", manifest, "-q").exit_code == 0
    (root / "ARTalk_wav2vec.pt").write_bytes(bytes(len(CKPT)))
    r = run("assets", "verify", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 3
    assert "wrong hash" in r.stdout and sha(CKPT) in r.stdout
    assert "error:" in r.stderr and "ARTalk_wav2vec.pt (wrong hash)" in r.stderr


def test_corrupted_download_fails_cleanly(fake_hub: FakeHub, manifest: str, tmp_path: Path) -> None:
    fake_hub.files[(REPO, "ARTalk_wav2vec.pt")].corrupt = True
    root = tmp_path / "assets"
    r = run("assets", "download", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 3
    assert "wrong hash" in r.stderr and f"expected sha256 {sha(CKPT)}" in r.stderr
    assert not (root / "ARTalk_wav2vec.pt").exists()


def test_404_and_unreachable(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"format": assets.MANIFEST_FORMAT,
                             "files": [{"repo_id": REPO, "filename": "assets/x.pt", "local_path": "x.pt"}]}))
    r = run("assets", "download", "--root", str(tmp_path / "a"), "--manifest", str(m))
    assert r.exit_code == 3 and "not found on the hub" in r.stderr and "404" in r.stderr

    r = run("assets", "download", "--root", str(tmp_path / "a"), "--manifest", str(m), "--endpoint",
            "http://127.0.0.1:9")
    assert r.exit_code == 3 and "cannot reach the hub" in r.stderr and "HF_ENDPOINT" in r.stderr


def test_disk_full(fake_hub: FakeHub, manifest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_disk(monkeypatch)
    root = tmp_path / "assets"
    r = run("assets", "download", "--root", str(root), "--manifest", manifest)
    assert r.exit_code == 4 and "disk full while downloading ARTalk_wav2vec.pt" in r.stderr
    assert not (root / "ARTalk_wav2vec.pt").exists()


def test_real_command_in_a_subprocess(tmp_path: Path) -> None:
    """The installed entry point, offline: `list` needs no network and no hub."""
    env = {**os.environ, "ARTALK_ASSETS": str(tmp_path / "none")}
    code = ("import sys, typer\n"
            "from artalk_cli.main import app\n"
            "from artalk_cli.commands import assets\n"
            "if not any(g.name == 'assets' for g in app.registered_groups): assets.register(app)\n"
            "sys.argv = ['artalk', 'assets', 'list', '--json']\n"
            "app()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["root"] == str(tmp_path / "none") and info["styles"] == [] and len(info["missing_styles"]) == 15
    assert "https://flame.is.tue.mpg.de" in r.stderr
