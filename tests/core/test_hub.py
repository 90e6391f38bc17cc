"""Asset manifest, download (resume, verification, failures) and verify against a local fake hub."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import types
from pathlib import Path

import pytest

from artalk_core import assets
from artalk_core.assets import download as dl
from artalk_core.errors import AssetError, DependencyError, FormatError, OutputError
from tests.hubserver import FakeHub, fill_disk, isolate_hub_env

REPO = "xg-chu/ARTalk"
OTHER = "xg-chu/GAGAvatar"
CHUNK = 16_384
CKPT = os.urandom(20 * CHUNK)  # half of it is whole chunks, so a dropped connection resumes exactly at the half
CONFIG = b'{"test": true}\n'
STYLE_A = os.urandom(5_000)
STYLE_B = os.urandom(3_000)
EXTRA = os.urandom(2_000)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_manifest(path: Path, files: list[dict]) -> Path:
    path.write_text(json.dumps({"format": assets.MANIFEST_FORMAT, "revision": "main", "files": files}))
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_hub_env(monkeypatch, tmp_path, chunk=CHUNK)


@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as h:
        h.add(REPO, "ARTalk_wav2vec.pt", CKPT)
        h.add(REPO, "config.json", CONFIG, lfs=False)
        h.add(REPO, "style_motion/a.pt", STYLE_A)
        h.add(REPO, "style_motion/b.pt", STYLE_B, lfs=False)
        h.add(OTHER, "assets/extra.pt", EXTRA)
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "manifest.json", [
        {"repo_id": REPO, "local_path": "ARTalk_wav2vec.pt", "size": len(CKPT), "sha256": sha(CKPT), "required": True,
         "kind": "checkpoint"},
        {"repo_id": REPO, "local_path": "config.json", "size": len(CONFIG), "sha256": sha(CONFIG), "required": True,
         "kind": "config"},
        {"repo_id": REPO, "local_path": "style_motion/a.pt", "size": None, "sha256": None, "kind": "style"},
        {"repo_id": REPO, "local_path": "style_motion/b.pt", "size": None, "sha256": None, "kind": "style"},
        {"repo_id": OTHER, "filename": "assets/extra.pt", "local_path": "GAGAvatar/extra.pt", "size": None,
         "sha256": None, "required": False, "kind": "optional"},
    ])


def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub waits 1 s before each in-call retry; tests need not."""
    from huggingface_hub import file_download

    monkeypatch.setattr(file_download, "time", types.SimpleNamespace(sleep=lambda s: None))


# ----------------------------------------------------------------------------------------------- manifest

def test_packaged_manifest_lists_the_release() -> None:
    files = assets.load_manifest()
    by = {f.local_path: f for f in files}
    ck = by["ARTalk_wav2vec.pt"]
    assert (ck.repo_id, ck.filename, ck.size, ck.required) == (REPO, "ARTalk_wav2vec.pt", 1_959_150_898, True)
    assert ck.sha256 == "d89615a32e2a6b4e35cf5494c1e400b2acedc43812f63423b9f5d705046d67c2"
    assert (by["config.json"].size, by["config.json"].sha256) == (
        303, "7546248a7eace5184a3b072de6fac80f22109e32f073ba4f616a7971a6f190fe")
    styles = sorted(Path(f.local_path).stem for f in files if f.kind == "style")
    assert styles == sorted(["angry_0", "curious_0", "doubtful_0", "doubtful_1", "happy_0", "happy_1", "happy_2",
                             *[f"natural_{i}" for i in range(8)]])
    assert all(f.required and f.size is None and f.sha256 is None and f.filename == f.local_path
               for f in files if f.kind == "style")
    optional = [f for f in files if not f.required]
    assert 1 <= len(optional) <= 3 and all(f.size is None for f in optional)
    assert not any(f.local_path == "FLAME_with_eye.pt" for f in files)
    mimi = by["ARTalk_mimi.pt"]  # named by the reference's loading code, not published
    assert (mimi.required, mimi.downloadable, mimi.kind, mimi.repo_id) == (False, False, "checkpoint", REPO)
    assert all(f.downloadable for f in files if f is not mimi)


@pytest.mark.parametrize("bad, msg", [
    ({"format": "nope", "files": []}, "not an artalk asset manifest"),
    ({"format": assets.MANIFEST_FORMAT, "files": [{"repo_id": REPO, "local_path": "a.pt", "downloadable": "no"}]},
     "downloadable must be true or false"),
    ({"format": assets.MANIFEST_FORMAT, "files": [{"repo_id": REPO, "local_path": "a.pt", "downloadable": False}]},
     "cannot be required"),
    ({"format": assets.MANIFEST_FORMAT, "files": [{"repo_id": REPO, "local_path": "../evil.pt"}]}, "unsafe local_path"),
    ({"format": assets.MANIFEST_FORMAT, "files": [{"repo_id": REPO, "local_path": "a.pt", "sha256": "xyz"}]}, "sha256"),
    ({"format": assets.MANIFEST_FORMAT, "files": [{"repo_id": REPO, "local_path": "a.pt", "size": -1}]}, "size"),
])
def test_bad_manifest(tmp_path: Path, bad: dict, msg: str) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=msg):
        assets.load_manifest(p)


# ----------------------------------------------------------------------------------------------- download

def test_download_verifies_records_and_skips(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    seen: list[tuple[str, int, int]] = []
    res = dl.download(root, manifest=manifest, progress=lambda s, d, t: seen.append((s, d, t)))
    assert [r.status for r in res] == ["downloaded"] * 4
    assert (root / "ARTalk_wav2vec.pt").read_bytes() == CKPT
    assert (root / "config.json").read_bytes() == CONFIG
    assert (root / "style_motion/a.pt").read_bytes() == STYLE_A
    assert not (root / "GAGAvatar").exists()  # optional: not without include_optional
    assert not (root / assets.PARTIAL_DIR).exists()
    assert ("ARTalk_wav2vec.pt", len(CKPT), len(CKPT)) in seen
    # unknown figures recorded, with the sentence the CLI prints
    lock = json.loads((root / assets.LOCK_NAME).read_text())["files"]
    assert lock["style_motion/a.pt"]["sha256"] == sha(STYLE_A) and lock["style_motion/a.pt"]["size"] == len(STYLE_A)
    assert lock["style_motion/b.pt"]["sha256"] == sha(STYLE_B)
    by = {r.file.local_path: r for r in res}
    assert by["ARTalk_wav2vec.pt"].recorded == []
    assert "recorded sha256 of style_motion/a.pt on first download; later verifies check it" in by[
        "style_motion/a.pt"].notes()

    n_requests = len(fake_hub.requests)
    again = dl.download(root, manifest=manifest)
    assert [r.status for r in again] == ["present"] * 4
    assert len(fake_hub.requests) == n_requests  # everything known and verified locally: no hub traffic
    assert all(v.status == assets.OK for v in assets.verify(root, manifest=manifest, include_optional=False))


def test_include_optional_uses_the_in_repo_path(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    dl.download(root, manifest=manifest, include_optional=True)
    assert (root / "GAGAvatar/extra.pt").read_bytes() == EXTRA
    assert any("/xg-chu/GAGAvatar/resolve/main/assets/extra.pt" in p for _, p, _ in fake_hub.requests)


def test_a_file_not_published_is_said_and_never_fetched(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    files = json.loads(manifest.read_text())["files"] + [
        {"repo_id": REPO, "local_path": "ARTalk_mimi.pt", "required": False, "downloadable": False,
         "kind": "checkpoint", "description": "not released yet"}]
    m = write_manifest(tmp_path / "m2.json", files)
    root = tmp_path / "assets"
    res = {r.file.local_path: r for r in dl.download(root, manifest=m, include_optional=True)}
    assert res["ARTalk_mimi.pt"].status == dl.NOT_DOWNLOADABLE and res["GAGAvatar/extra.pt"].status == "downloaded"
    assert not (root / "ARTalk_mimi.pt").exists()
    assert not any("ARTalk_mimi" in p for _, p, _ in fake_hub.requests)
    assert [r.status for r in assets.verify(root, manifest=m) if r.file.local_path == "ARTalk_mimi.pt"] == ["missing"]
    assert not any(r.problem for r in assets.verify(root, manifest=m))  # optional: missing is no problem
    listed = {o["name"]: o for o in assets.list_assets(root, manifest=m)["optional"]}
    assert listed["ARTalk_mimi.pt"]["downloadable"] is False and listed["GAGAvatar/extra.pt"]["downloadable"]


def test_corrupted_download_is_deleted(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    fake_hub.files[(REPO, "ARTalk_wav2vec.pt")].corrupt = True
    root = tmp_path / "assets"
    with pytest.raises(AssetError) as ei:
        dl.download(root, manifest=manifest)
    msg = str(ei.value)
    bad = hashlib.sha256(fake_hub.files[(REPO, "ARTalk_wav2vec.pt")].served()).hexdigest()
    assert "wrong hash" in msg and sha(CKPT) in msg and bad in msg
    assert not (root / "ARTalk_wav2vec.pt").exists()
    assert not list((root / assets.PARTIAL_DIR).rglob("*.incomplete"))


def test_corrupted_file_with_unknown_hash_is_caught_by_the_hub_etag(fake_hub: FakeHub, manifest: Path,
                                                                    tmp_path: Path) -> None:
    fake_hub.files[(REPO, "style_motion/a.pt")].corrupt = True
    root = tmp_path / "assets"
    with pytest.raises(AssetError, match=f"expected sha256 {sha(STYLE_A)}"):
        dl.download(root, manifest=manifest)
    assert not (root / "style_motion/a.pt").exists()
    assert "style_motion/a.pt" not in json.loads((root / assets.LOCK_NAME).read_text())["files"]


def test_dropped_connection_is_resumed_within_the_call(fake_hub: FakeHub, manifest: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    no_sleep(monkeypatch)
    fake_hub.files[(REPO, "ARTalk_wav2vec.pt")].drop_once = True
    root = tmp_path / "assets"
    dl.download(root, manifest=manifest)
    assert (root / "ARTalk_wav2vec.pt").read_bytes() == CKPT
    ranges = fake_hub.gets(f"/cdn/{sha(CKPT)}")
    assert ranges[0] is None and ranges[1] == f"bytes={len(CKPT) // 2}-"


def test_connection_lost_for_good_fails_cleanly_then_rerun_downloads(fake_hub: FakeHub, manifest: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub resumes a dropped transfer within the call (above) but keeps no partial file between
    # runs: when the connection stays down, the error says so and a rerun fetches the file whole.
    no_sleep(monkeypatch)
    fake_hub.files[(REPO, "ARTalk_wav2vec.pt")].drop_once = True
    fake_hub.dead_gets = 50  # the connection stays down: huggingface_hub's own retries give up
    root = tmp_path / "assets"
    with pytest.raises(AssetError, match="rerun to download it again") as ei:
        dl.download(root, manifest=manifest)
    assert "lost while downloading ARTalk_wav2vec.pt" in str(ei.value)
    assert not (root / "ARTalk_wav2vec.pt").exists()
    assert not [p for p in root.rglob("*") if p.is_file() and p.name != assets.LOCK_NAME]

    fake_hub.dead_gets = 0
    res = dl.download(root, manifest=manifest)
    assert res[0].status == "downloaded" and res[0].resumed_from == 0
    assert (root / "ARTalk_wav2vec.pt").read_bytes() == CKPT
    assert fake_hub.gets(f"/cdn/{sha(CKPT)}")[-1] is None
    assert not (root / assets.PARTIAL_DIR).exists()


def test_leftovers_of_an_older_download_do_not_matter(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    partial = root / assets.PARTIAL_DIR / "ARTalk_wav2vec.pt.incomplete"  # what artalk's own downloader left
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 1000)
    partial.with_name(partial.name + ".json").write_text(json.dumps({"etag": "someotherversion"}))
    res = dl.download(root, manifest=manifest)
    assert res[0].status == "downloaded" and (root / "ARTalk_wav2vec.pt").read_bytes() == CKPT


def test_disk_full_leaves_no_final_file(fake_hub: FakeHub, manifest: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fill_disk(monkeypatch)
    root = tmp_path / "assets"
    with pytest.raises(OutputError, match="disk full while downloading ARTalk_wav2vec.pt"):
        dl.download(root, manifest=manifest)
    assert not (root / "ARTalk_wav2vec.pt").exists()
    assert not [p for p in root.rglob("*") if p.is_file() and p.name != assets.LOCK_NAME]


def test_not_enough_space_is_said_before_downloading(fake_hub: FakeHub, manifest: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "_free_bytes", lambda folder: 1000)
    with pytest.raises(OutputError, match=f"needs {len(CKPT)} more bytes, 1000 free"):
        dl.download(tmp_path / "assets", manifest=manifest)
    assert not fake_hub.gets("/cdn/")


def test_missing_file_on_the_hub(fake_hub: FakeHub, tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "m.json", [{"repo_id": REPO, "filename": "assets/nope.pt", "local_path": "nope.pt"}])
    with pytest.raises(AssetError, match=r"assets/nope.pt in xg-chu/ARTalk@main not found on the hub .*404"):
        dl.download(tmp_path / "assets", manifest=m)
    assert not (tmp_path / "assets" / "nope.pt").exists()


def test_missing_repository(fake_hub: FakeHub, tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "m.json", [{"repo_id": "someone/else", "local_path": "x.pt"}])
    with pytest.raises(AssetError, match="repository someone/else not found"):
        dl.download(tmp_path / "assets", manifest=m)


def test_unreachable_hub(manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(AssetError) as ei:
        dl.download(tmp_path / "assets", manifest=manifest)
    msg = str(ei.value)
    assert f"cannot reach the hub at http://127.0.0.1:{port}" in msg and "HF_ENDPOINT" in msg and "network" in msg


def test_hub_file_differs_from_the_manifest(fake_hub: FakeHub, tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "m.json", [{"repo_id": REPO, "local_path": "ARTalk_wav2vec.pt",
                                              "size": len(CKPT) + 1, "sha256": None}])
    with pytest.raises(AssetError, match="the hub file changed"):
        dl.download(tmp_path / "assets", manifest=m)
    assert not fake_hub.gets("/cdn/")


def test_wrong_existing_file_is_replaced_and_kept(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    root.mkdir()
    (root / "config.json").write_text('{"mine": 1}')
    res = {r.file.local_path: r for r in dl.download(root, manifest=manifest)}
    assert (root / "config.json").read_bytes() == CONFIG
    assert (root / "config.json.old").read_text() == '{"mine": 1}'
    assert res["config.json"].replaced_old == root / "config.json.old"


def test_existing_file_with_unknown_hash_is_checked_against_the_hub(fake_hub: FakeHub, manifest: Path,
                                                                    tmp_path: Path) -> None:
    root = tmp_path / "assets"
    (root / "style_motion").mkdir(parents=True)
    (root / "style_motion/a.pt").write_bytes(STYLE_A)
    res = {r.file.local_path: r for r in dl.download(root, manifest=manifest)}
    assert res["style_motion/a.pt"].status == "present" and res["style_motion/a.pt"].recorded == ["size", "sha256"]
    assert not fake_hub.gets(f"/cdn/{sha(STYLE_A)}")


def test_missing_huggingface_hub(monkeypatch: pytest.MonkeyPatch, manifest: Path, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(DependencyError, match=r"pip install 'artalk\[hub\]'"):
        dl.download(tmp_path / "assets", manifest=manifest)


# ----------------------------------------------------------------------------------------------- verify / list

def test_verify_statuses(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    before = {v.file.local_path: v for v in assets.verify(root, manifest=manifest)}
    assert all(v.status == assets.MISSING for v in before.values())
    assert before["ARTalk_wav2vec.pt"].problem and not before["GAGAvatar/extra.pt"].problem

    dl.download(root, manifest=manifest)
    (root / "ARTalk_wav2vec.pt").write_bytes(b"\0" + CKPT[1:])
    (root / "config.json").write_bytes(CONFIG + b" ")
    (root / "style_motion/b.pt").unlink()
    (root / assets.LOCK_NAME).unlink()  # forget what was recorded: a.pt becomes unverifiable
    (root / "style_motion/b.pt").write_bytes(STYLE_B)
    res = {v.file.local_path: v for v in assets.verify(root, manifest=manifest)}
    assert res["ARTalk_wav2vec.pt"].status == assets.WRONG_HASH
    assert res["ARTalk_wav2vec.pt"].expected_sha256 == sha(CKPT) and res["ARTalk_wav2vec.pt"].source == "manifest"
    assert res["config.json"].status == assets.WRONG_SIZE
    assert res["style_motion/a.pt"].status == assets.UNVERIFIED and not res["style_motion/a.pt"].problem
    with pytest.raises(AssetError, match=r"2 asset file\(s\) not usable: ARTalk_wav2vec.pt \(wrong hash\), "
                                         r"config.json \(wrong size\)"):
        assets.raise_for_problems(list(res.values()))


def test_verify_uses_recorded_figures(fake_hub: FakeHub, manifest: Path, tmp_path: Path) -> None:
    root = tmp_path / "assets"
    dl.download(root, manifest=manifest)
    (root / "style_motion/a.pt").write_bytes(STYLE_A[:-1] + bytes([STYLE_A[-1] ^ 1]))
    res = {v.file.local_path: v for v in assets.verify(root, manifest=manifest)}
    assert res["style_motion/a.pt"].status == assets.WRONG_HASH and res["style_motion/a.pt"].source == "recorded"
    assert res["style_motion/b.pt"].status == assets.OK


def test_list_assets(tmp_path: Path, manifest: Path) -> None:
    root = tmp_path / "assets"
    (root / "style_motion").mkdir(parents=True)
    (root / "style_motion/a.pt").write_bytes(b"12345")
    (root / "style_motion/mine.pt").write_bytes(b"123")
    info = assets.list_assets(root, manifest=manifest)
    assert info["styles"] == [
        {"name": "a", "path": str(root / "style_motion/a.pt"), "size": 5, "released": True},
        {"name": "mine", "path": str(root / "style_motion/mine.pt"), "size": 3, "released": False}]
    assert info["missing_styles"] == ["b"]
    assert info["checkpoint"]["present"] is False and info["checkpoint"]["size"] is None
    heads = {h["name"]: h for h in info["heads"]}
    assert heads["stand-in"]["default"] and not heads["FLAME_with_eye.pt"]["present"]
    (root / "FLAME_with_eye.pt").write_bytes(b"f" * 7)
    heads = {h["name"]: h for h in assets.list_assets(root, manifest=manifest)["heads"]}
    assert heads["FLAME_with_eye.pt"]["default"] and heads["FLAME_with_eye.pt"]["size"] == 7
    json.dumps(info)  # JSON-ready
    assert "https://flame.is.tue.mpg.de" in assets.flame_notice(root) and str(root) in assets.flame_notice(root)
