"""Hostile files are typed errors, one line, never "unexpected" (issue 18.15): glTF documents with
wrong types, counts and indices, deep nesting and 5000-digit integers; motion streams with huge
numbers or deep nesting; `mux` of a missing file or a folder; a tiny stride-0 tensor announcing a
billion frames; an avatar config with huge sizes."""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artalk_core.options import ModelOptions, RenderOptions
from tests.conftest import FIXTURE, assert_clean_error

WAV = FIXTURE / "speech_16k.wav"
DEEP = 100_000
HUGE_INT = "9" * 5000


@pytest.fixture(scope="module")
def gltf_doc(tmp_path_factory) -> dict[str, Any]:
    """The JSON of a real (small) export, mutated by every variant below."""
    from artalk_core.export import export
    from artalk_core.formats.gltf import read_gltf_json
    from artalk_core.formats.motion import write_motion

    folder = tmp_path_factory.mktemp("gltf")
    write_motion(folder / "m.safetensors", np.zeros((3, 106), np.float32))
    export(folder / "m.safetensors", output=folder / "t.glb", flame=FIXTURE / "flame_synthetic.pt")
    return read_gltf_json(folder / "t.glb")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``doc[a][b]...`` (keys separated by '/', list indices as numbers)."""
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in path.split("/")]
        obj: Any = doc
        for k in parents:
            obj = obj[k]
        obj[last] = value
    return apply


def gltf_variants() -> Iterator[tuple[str, Callable[[dict[str, Any]], None] | str]]:
    """About 35 hostile glTF documents: (name, a mutation of a real document, or the raw JSON text)."""
    for key in ("accessors", "meshes", "nodes", "skins", "animations", "asset", "bufferViews", "buffers"):
        yield f"{key} a string", _set(key, "x")
        yield f"{key} a list of numbers", _set(key, [1, 2])
    for value in (-1, "12", 1e30, None, True, [3], 2**70):
        yield f"accessor count {value!r}", _set("accessors/0/count", value)
    for value in (-1, "0", 10**9, 1.5, None):
        yield f"POSITION index {value!r}", _set("meshes/0/primitives/0/attributes/POSITION", value)
    yield "primitives a number", _set("meshes/0/primitives", 5)
    yield "attributes a list", _set("meshes/0/primitives/0/attributes", [0])
    yield "targets a number", _set("meshes/0/primitives/0/targets", 5)
    yield "skin joints a number", _set("skins/0/joints", 5)
    yield "samplers a number", _set("animations/0/samplers", 3)
    yield "sampler input a string", _set("animations/0/samplers/0/input", "x")
    yield "sampler input huge", _set("animations/0/samplers/0/input", 10**30)
    yield "time max a string", _set("accessors/{time}/max", "x")
    yield "time max empty", _set("accessors/{time}/max", [])
    yield "time max [null]", _set("accessors/{time}/max", [None])
    yield "time max ['a']", _set("accessors/{time}/max", ["a"])
    yield "extras a list", _set("asset/extras", [1])
    yield "extras format a list", _set("asset/extras/format", [1])
    yield "top level a list", '[{"asset": {"version": "2.0"}}]'
    yield "deep nesting", '{"asset": {"version": "2.0"}, "extras": ' + "[" * DEEP + "]" * DEEP + "}"
    yield "5000-digit integer", '{"asset": {"version": "2.0"}, "scene": ' + HUGE_INT + "}"
    yield "5000-digit count", '{"asset": {"version": "2.0"}, "accessors": [{"count": ' + HUGE_INT + "}]}"
    yield "huge float", '{"asset": {"version": "2.0"}, "accessors": [{"count": 1e999}]}'


def _buffer_length(text: bytes) -> int | None:
    """buffers[0].byteLength of a document, when it has a plausible one (the buffer's bytes are
    then supplied, so a variant reaches the checks it was made for)."""
    try:
        length = json.loads(text)["buffers"][0]["byteLength"]
    except Exception:  # noqa: BLE001 - a variant that is not such a document
        return None
    return length if type(length) is int and 0 <= length < 1 << 26 else None


def _glb(text: bytes) -> bytes:
    body = text + b" " * (-len(text) % 4)
    n = _buffer_length(text)
    binary = b"" if n is None else struct.pack("<II", n + (-n % 4), 0x004E4942) + bytes(n + (-n % 4))
    return (b"glTF" + struct.pack("<II", 2, 20 + len(body) + len(binary)) + struct.pack("<II", len(body), 0x4E4F534A)
            + body + binary)


def _gltf(text: bytes, bin_path: Path) -> bytes:
    """The document as a .gltf whose first buffer is ``bin_path`` (zeros), when it has one."""
    n = _buffer_length(text)
    if n is None:
        return text
    doc = json.loads(text)
    doc["buffers"][0]["uri"] = bin_path.name
    bin_path.write_bytes(bytes(n))
    return json.dumps(doc).encode()


def _materialise(doc: dict[str, Any], variant: Callable[[dict[str, Any]], None] | str) -> bytes:
    if isinstance(variant, str):
        return variant.encode()
    d = copy.deepcopy(doc)
    time = d["animations"][0]["samplers"][0]["input"]
    if variant.__closure__ and "{time}" in str(variant.__closure__[0].cell_contents):
        variant = _set(str(variant.__closure__[0].cell_contents).replace("{time}", str(time)),
                       variant.__closure__[1].cell_contents)
    variant(d)
    return json.dumps(d).encode()


def test_hostile_gltf_documents_are_typed_errors(artalk, gltf_doc, tmp_path) -> None:
    variants = list(gltf_variants())
    assert len(variants) >= 30
    for i, (name, variant) in enumerate(variants):
        text = _materialise(gltf_doc, variant)
        for path, data in ((tmp_path / f"{i}.glb", _glb(text)), (tmp_path / f"{i}.gltf", _gltf(text, tmp_path / f"{i}.bin"))):
            path.write_bytes(data)
            res = artalk("info", path)
            assert res.returncode in (0, 2), (name, path.suffix, res.stderr[-500:])
            assert "unexpected" not in res.stderr and "Traceback" not in res.stderr, (name, res.stderr[-500:])
            if res.returncode == 2:
                assert_clean_error(res, str(path))


# ---- motion streams with huge numbers or deep nesting ----

def _stream(rows: list[str], *, header: str | None = None, end: str | None = None) -> bytes:
    import io

    from artalk_core.formats.motion_stream import MotionStreamWriter

    buf = io.BytesIO()
    MotionStreamWriter(buf)  # the real header line
    head = header if header is not None else buf.getvalue().decode().strip()
    lines = [head, *(f'{{"t": {t}, "motion": [{row}]}}' for t, row in enumerate(rows)),
             end if end is not None else f'{{"end": true, "frames": {len(rows)}}}']
    return ("\n".join(lines) + "\n").encode()


def stream_variants() -> Iterator[tuple[str, bytes]]:
    zeros = ", ".join(["0"] * 106)

    def row(value: str) -> str:
        return ", ".join([value] + ["0"] * 105)

    yield "5000-digit integer", _stream([row(HUGE_INT)])
    yield "99-digit integer", _stream([row("9" * 99)])
    yield "beyond float32", _stream([row("1e39")])
    yield "beyond float64", _stream([row("1e999")])
    yield "a string", _stream([row('"1"')])
    yield "a boolean", _stream([row("true")])
    yield "a null", _stream([row("null")])
    yield "a nested number", _stream([", ".join(["[0]"] * 106)])
    yield "deep nesting in a frame", _stream([row("[" * DEEP + "]" * DEEP)])
    yield "deep nesting in a line", _stream([zeros]).replace(b'{"end"', ("[" * DEEP + "]" * DEEP + '\n{"end"').encode())
    yield "huge frame number", _stream([zeros]).replace(b'"t": 0', b'"t": ' + HUGE_INT.encode())
    yield "huge end count", _stream([zeros], end='{"end": true, "frames": ' + HUGE_INT + "}")
    yield "nested header meta", _stream([zeros]).replace(b'"meta": {', b'"meta": {"x": ' + b"[" * DEEP
                                                          + b"]" * DEEP + b", ", 1)


def test_hostile_motion_streams_are_typed_errors(artalk, tmp_path) -> None:
    variants = list(stream_variants())
    for i, (name, data) in enumerate(variants):
        path = tmp_path / f"{i}.motion.ndjson"
        path.write_bytes(data)
        for args in (["info", path], ["export", path, "-o", tmp_path / f"{i}.glb"]):
            res = artalk(*args)
            assert res.returncode == 2, (name, args[0], res.stderr[-500:])
            assert_clean_error(res, str(path))
            assert "warning" not in res.stderr.lower(), (name, res.stderr)
    assert not list(tmp_path.glob("*.glb"))


# ---- files that are missing, folders or streams ----

def test_mux_of_a_missing_video_or_a_folder_is_an_input_error(artalk, tmp_path) -> None:
    (tmp_path / "folder").mkdir()
    for video, words in ((tmp_path / "missing.mp4", "video file not found"),
                         (tmp_path / "folder", "video file is a folder")):
        res = artalk("mux", video, WAV, "-o", tmp_path / "o.mp4")
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, words, str(video))
        res = artalk("frame", video, "-o", tmp_path / "f.png")
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_frame_and_embed_audio_read_fifos(artalk, tmp_path) -> None:
    from artalk_core.formats.gltf import read_gltf
    from artalk_core.formats.motion import write_motion
    from artalk_core.render.stage import render
    from tests.cli.test_hostile import Fifo

    write_motion(tmp_path / "m.safetensors", np.zeros((3, 106), np.float32))
    render(tmp_path / "m.safetensors", output=tmp_path / "v.mp4", look=RenderOptions(size=32), model=ModelOptions(assets=tmp_path))
    with Fifo(tmp_path, "video.fifo", (tmp_path / "v.mp4").read_bytes()) as fifo:
        res = artalk("frame", fifo, "--index", "2", "-o", tmp_path / "f.png")
    assert res.returncode == 0, res.stderr
    with Fifo(tmp_path, "speech.fifo", WAV.read_bytes()) as fifo:
        res = artalk("export", tmp_path / "m.safetensors", "--embed-audio", fifo, "-o", tmp_path / "t.glb")
    assert res.returncode == 0, res.stderr
    doc = read_gltf(tmp_path / "t.glb")
    audio = doc.asset.extras["audio"]
    view = doc.bufferViews[audio["bufferView"]]
    blob = doc.binary_blob()
    assert blob[view.byteOffset:view.byteOffset + view.byteLength] == WAV.read_bytes()
    assert audio["name"] == "speech.fifo" and audio["mimeType"] == "audio/wav"


# ---- work bounded by what the file really holds ----

def test_a_tiny_broadcast_tensor_is_refused_by_its_stored_size(artalk, tmp_path) -> None:
    """2 KB on disk, 424 GB once read: a MemoryError before; now refused at once."""
    import torch

    torch.save(torch.zeros(1, 106).expand(10**9, 106), tmp_path / "huge.pt")
    torch.save(torch.zeros(1, 300).expand(10**8, 300), tmp_path / "shape.pt")
    assert (tmp_path / "huge.pt").stat().st_size < 4096
    from artalk_core.formats.motion import write_motion

    write_motion(tmp_path / "m.safetensors", np.zeros((3, 106), np.float32))
    for args in (["info", tmp_path / "huge.pt"], ["export", tmp_path / "huge.pt", "-o", tmp_path / "o.glb"],
                 ["smooth", tmp_path / "huge.pt", "-o", tmp_path / "o.safetensors"],
                 ["render", tmp_path / "m.safetensors", "--shape", tmp_path / "shape.pt", "-o", tmp_path / "o.h5"]):
        res = artalk(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert_clean_error(res, "stored bytes", "expand()")


def test_an_avatar_config_with_huge_sizes_is_refused_before_building(artalk, tmp_path) -> None:
    gaga = FIXTURE.parent / "tiny_gaga"
    from artalk_core.formats.motion import write_motion

    write_motion(tmp_path / "m.safetensors", np.zeros((2, 106), np.float32))
    for section, key, value, words in (("DINO", "embed_dim", 2**40, "dino_embed_dim 1099511627776"),
                                       ("DINO", "depth", 10**9, "dino_depth 1000000000"),
                                       ("STYLE_UNET", "num_style_feat", 2**62, "num_style_feat")):
        config = json.loads((gaga / "model_config.json").read_text())
        config[section][key] = value
        (tmp_path / "cfg.json").write_text(json.dumps(config))
        res = artalk("render", tmp_path / "m.safetensors", "--avatar", "fix.jpg", "--tracked", gaga / "tracked.pt",
                     "--avatar-checkpoint", gaga / "weights.safetensors", "--avatar-config", tmp_path / "cfg.json",
                     "--flame", gaga / "flame_synthetic_5023.pt", "--device", "cpu", "-o", tmp_path / "a.mp4",
                     env_extra={"ARTALK_CACHE": str(tmp_path / "cache")})
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, words, "larger than an avatar network can be")
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("text", ['{"DINO": {"depth": ' + HUGE_INT + "}}", '{"DINO": ' + "[" * DEEP + "]" * DEEP + "}"])
def test_config_json_with_huge_integers_or_deep_nesting(tmp_path, text) -> None:
    from artalk_core.errors import ConfigError
    from artalk_core.model.config import ModelConfig
    from artalk_core.render.avatar.config import AvatarConfig

    (tmp_path / "c.json").write_text(text)
    with pytest.raises(ConfigError, match="not valid JSON"):
        AvatarConfig.from_json(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.from_file(tmp_path / "c.json")


def _safetensors(header: dict[str, Any], data: bytes = b"\0" * 424) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("header", [
    {"motion": {"dtype": "F32", "shape": ["a", 106], "data_offsets": [0, 424]}},
    {"motion": {"dtype": "F32", "shape": [[1], 106], "data_offsets": [0, 424]}},
    {"motion": {"dtype": "F32", "shape": [10**30, 106], "data_offsets": [0, 424]}},
    {"__metadata__": [1], "motion": {"dtype": "F32", "shape": [1, 106], "data_offsets": [0, 424]}},
])
def test_hostile_safetensors_headers(artalk, tmp_path, header) -> None:
    (tmp_path / "x.safetensors").write_bytes(_safetensors(header))
    for args in (["info", tmp_path / "x.safetensors"], ["export", tmp_path / "x.safetensors", "-o", tmp_path / "x.glb"]):
        res = artalk(*args)
        assert res.returncode in (0, 2), (args, res.stderr)
        assert "unexpected" not in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_vertices_that_the_file_does_not_hold_are_refused(artalk, tmp_path) -> None:
    """A 2 KB HDF5 file announcing a billion frames (unwritten data reads as zeros) rendered for
    54 hours; a bad frames or fps attribute was an unexpected ValueError."""
    import h5py

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("vertices", shape=(10**9, 5023, 3), dtype="f4", chunks=(1, 5023, 3))
        f.create_dataset("faces", data=np.zeros((1, 3), np.int32))
    res = artalk("render", tmp_path / "v.h5", "-o", tmp_path / "v.mp4", "--size", "32")
    assert res.returncode == 2, res.stderr
    assert_clean_error(res, "announces [1000000000, 5023, 3] values but the file does not hold them")
    for attr, value in (("frames", "many"), ("fps", "fast")):
        with h5py.File(tmp_path / "w.h5", "w") as f:
            f.create_dataset("vertices", data=np.zeros((2, 3, 3), np.float32))
            f.create_dataset("faces", data=np.zeros((1, 3), np.int32))
            f.attrs[attr] = value
        res = artalk("render", tmp_path / "w.h5", "-o", tmp_path / "v.mp4", "--size", "32")
        assert res.returncode == 2, res.stderr
        assert_clean_error(res, attr)
    assert not (tmp_path / "v.mp4").exists()


def test_side_inputs_read_from_fifos(artalk, tmp_path) -> None:
    """--shape and --flame as FIFOs (or <(...)) were 'not found' or read twice (loaded, then hashed)."""
    import io

    from artalk_core.formats.motion import write_motion
    from artalk_core.formats.vertices import read_vertices
    from tests.cli.test_hostile import Fifo

    write_motion(tmp_path / "m.safetensors", 0.1 * np.ones((3, 106), np.float32))
    buf = io.BytesIO()
    np.save(buf, np.full(300, 0.5, np.float32))
    np.save(tmp_path / "shape.npy", np.full(300, 0.5, np.float32))
    flame = FIXTURE / "flame_synthetic.pt"
    res = artalk("render", tmp_path / "m.safetensors", "--shape", tmp_path / "shape.npy", "--flame", flame,
                 "-o", tmp_path / "files.h5")
    assert res.returncode == 0, res.stderr
    with Fifo(tmp_path, "shape.fifo", buf.getvalue()) as shape, Fifo(tmp_path, "flame.fifo", flame.read_bytes()) as fl:
        res = artalk("render", tmp_path / "m.safetensors", "--shape", shape, "--flame", fl, "-o", tmp_path / "fifo.h5")
    assert res.returncode == 0, res.stderr
    with read_vertices(tmp_path / "files.h5") as a, read_vertices(tmp_path / "fifo.h5") as b:
        np.testing.assert_array_equal(np.stack(list(a)), np.stack(list(b)))
        assert a.meta["shape_sha256"] == b.meta["shape_sha256"] and a.meta["head_sha256"] == b.meta["head_sha256"]
    with Fifo(tmp_path, "shape2.fifo", buf.getvalue()) as shape:
        res = artalk("export", tmp_path / "m.safetensors", "--shape", shape, "--flame", flame, "-o", tmp_path / "t.glb")
    assert res.returncode == 0, res.stderr
