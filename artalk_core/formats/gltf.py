"""The glTF 2.0 format: a document built with pygltflib, its one binary buffer written in blocks.

What artalk writes (``artalk export``, :mod:`artalk_core.export`): one skinned mesh with morph
targets and one animation; our metadata lives in ``asset.extras`` (schema:
``artalk_core/schemas/gltf-extras.schema.json``) and the morph target names in ``mesh.extras.targetNames``.

Two containers: ``.glb`` (binary, one file: 12-byte header, a JSON chunk, a BIN chunk) and
``.gltf`` (the JSON text, its buffer in a ``.bin`` file beside it, named after the ``.gltf``).

Why the GLB container is written here and not by pygltflib: pygltflib builds the whole binary
blob in memory before saving (``save_to_bytes``), and the animation of an hour of motion is
90,000 frames x 136 weights. So pygltflib builds and serialises the JSON document, and
:func:`write_gltf` writes the 28 bytes of GLB framing around it and fills the BIN chunk block by
block at offsets laid out in advance (:class:`BufferLayout`), so memory holds one block.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from artalk_core.errors import FormatError, InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output, is_stdio, parse_json

FORMAT_NAME: str = "artalk.gltf"
FORMAT_VERSION: str = "1"
SCHEMA_NAME: str = "gltf-extras"
GLB_MAGIC: bytes = b"glTF"
GLB_VERSION: int = 2
CHUNK_JSON: int = 0x4E4F534A  # "JSON" little-endian
CHUNK_BIN: int = 0x004E4942  # "BIN\0"
ALIGN: int = 4  # glTF: every accessor offset a multiple of its component size (<= 4 here)

# glTF accessor component types and element sizes.
FLOAT: int = 5126
UNSIGNED_BYTE: int = 5121
UNSIGNED_SHORT: int = 5123
UNSIGNED_INT: int = 5125
ARRAY_BUFFER: int = 34962
ELEMENT_ARRAY_BUFFER: int = 34963
_COMPONENTS: dict[int, np.dtype[Any]] = {FLOAT: np.dtype("<f4"), UNSIGNED_BYTE: np.dtype("u1"), UNSIGNED_SHORT: np.dtype("<u2"),
               UNSIGNED_INT: np.dtype("<u4")}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def is_glb(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts a binary glTF (``glTF`` magic, version 2)."""
    return len(head) >= 8 and head[:4] == GLB_MAGIC and struct.unpack("<I", head[4:8])[0] == GLB_VERSION


def is_gltf_json(head: bytes) -> bool:
    """True when ``head`` looks like the start of a glTF JSON document (an object with ``asset``)."""
    text = bytes(head).lstrip()
    return text.startswith(b"{") and b'"asset"' in text and b'"version"' in text


def _pad(n: int) -> int:
    return -n % ALIGN


@dataclass
class Segment:
    """A byte range of the buffer: ``data`` known now (static) or None (filled later, streamed)."""

    offset: int
    length: int
    data: bytes | None = None


@dataclass
class BufferLayout:
    """The single binary buffer laid out in advance: static arrays and reserved (streamed) ranges,
    each starting on a 4-byte boundary. ``size`` is the padded byte length."""

    segments: list[Segment] = field(default_factory=list)
    size: int = 0

    def _add(self, length: int, data: bytes | None) -> Segment:
        seg = Segment(self.size, length, data)
        self.segments.append(seg)
        self.size += length + _pad(length)
        return seg

    def add(self, data: bytes | np.ndarray) -> Segment:
        """Append static bytes (an array is stored little-endian, C order)."""
        raw = np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) else bytes(data)
        return self._add(len(raw), raw)

    def reserve(self, length: int) -> Segment:
        """Append ``length`` bytes to be written later through :class:`BinSink`."""
        return self._add(int(length), None)


class GltfBuilder:
    """A pygltflib document plus the layout of its one buffer.

    ``static_accessor`` stores an array now; ``stream_accessor`` reserves room for ``count``
    elements written later (``BinSink.write(segment.offset + k, array)``).
    """

    def __init__(self) -> None:
        import pygltflib

        self.doc = pygltflib.GLTF2()
        self.layout = BufferLayout()

    def view(self, seg: Segment) -> int:
        """A bufferView over ``seg`` with no target (data that is not vertex or index data)."""
        return self._view(seg, None)

    def _view(self, seg: Segment, target: int | None) -> int:
        import pygltflib

        self.doc.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=seg.offset,
                                                         byteLength=seg.length, target=target))
        return len(self.doc.bufferViews) - 1

    def _accessor(self, view: int, count: int, kind: str, component: int, *, minmax: tuple[list[float],
                  list[float]] | None = None, name: str | None = None) -> int:
        import pygltflib

        acc = pygltflib.Accessor(bufferView=view, byteOffset=0, componentType=component, count=int(count),
                                 type=kind, name=name)
        if minmax is not None:
            acc.min, acc.max = minmax
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def static_accessor(self, arr: np.ndarray, kind: str, component: int, *, target: int | None = None,
                        with_minmax: bool = False, name: str | None = None) -> int:
        """An accessor over ``arr`` [count, n] (n = components of ``kind``), stored in the buffer now."""
        n = _TYPE_SIZES[kind]
        a = np.ascontiguousarray(arr, dtype=_COMPONENTS[component]).reshape(-1, n)
        minmax = None
        if with_minmax:
            minmax = ([_num(x) for x in a.min(axis=0)], [_num(x) for x in a.max(axis=0)])
        seg = self.layout.add(a)
        return self._accessor(self._view(seg, target), a.shape[0], kind, component, minmax=minmax, name=name)

    def stream_accessor(self, count: int, kind: str, component: int = FLOAT, *,
                        minmax: tuple[list[float], list[float]] | None = None,
                        name: str | None = None) -> tuple[int, Segment]:
        """An accessor of ``count`` elements whose bytes are written later; returns (index, segment)."""
        length = int(count) * _TYPE_SIZES[kind] * _COMPONENTS[component].itemsize
        seg = self.layout.reserve(length)
        return self._accessor(self._view(seg, None), count, kind, component, minmax=minmax, name=name), seg

    def json_bytes(self, *, uri: str | None = None) -> bytes:
        """The document as compact UTF-8 JSON, its one buffer ``uri`` (None: the GLB BIN chunk)."""
        import pygltflib

        self.doc.buffers = [pygltflib.Buffer(byteLength=self.layout.size, uri=uri)]
        text = self.doc.gltf_to_json(separators=(",", ":"), indent=None)
        return _drop_empty(json.loads(text)).encode("utf-8")


def _num(x: Any) -> float | int:
    v = x.item()
    return int(v) if isinstance(v, (int, np.integer)) else float(v)


def _drop_empty(obj: Any) -> str:
    """JSON text without the empty ``extras``/``extensions`` objects and lists pygltflib emits
    (the validator reports empty arrays such as ``targets: []`` as errors)."""

    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items() if not (isinstance(v, (dict, list)) and not v)
                    and v is not None}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class BinSink:
    """Writes into the buffer (inside the output file) at buffer offsets, block by block."""

    def __init__(self, f: BinaryIO, base: int) -> None:
        self._f = f
        self._base = base

    def write(self, offset: int, arr: np.ndarray, dtype: str = "<f4") -> None:
        """Write ``arr`` (cast to ``dtype``, C order) at byte ``offset`` of the buffer."""
        self.write_bytes(offset, np.ascontiguousarray(arr, dtype=dtype).tobytes())

    def write_bytes(self, offset: int, data: bytes) -> None:
        """Write raw ``data`` at byte ``offset`` of the buffer (OutputError when the disk refuses)."""
        _write_at(self._f, self._base + int(offset), data)


def _write_at(f: BinaryIO, offset: int, data: bytes) -> None:
    try:
        f.seek(offset)
        f.write(data)
    except OSError as e:  # disk full, quota
        raise OutputError(f"cannot write the glTF file: {e.strerror or e}") from e


Filler = Callable[[BinSink], None]


def bin_name(path: PathLike) -> str:
    """The ``.bin`` file name of a ``.gltf`` output: ``talk.gltf`` -> ``talk.bin``."""
    return Path(path).stem + ".bin"


def write_gltf(path: PathLike, builder: GltfBuilder, fill: Filler) -> Path | None:
    """Write ``builder``'s document to ``path`` atomically: ``.glb`` (binary) or ``.gltf`` (JSON +
    ``<stem>.bin`` beside it). ``fill(sink)`` writes the reserved (streamed) ranges of the buffer.

    Returns the ``.bin`` path for ``.gltf`` (else None). On any error nothing is left behind and an
    existing file at ``path`` is kept.
    """
    if is_stdio(path):
        raise InputError("export needs a file name (-o talk.glb): a glTF file is not written to stdout")
    suffix = Path(path).suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise InputError(f"cannot tell the glTF container from {path}: name the output *.glb or *.gltf")
    layout = builder.layout
    if suffix == ".glb":
        body = builder.json_bytes()
        body += b" " * _pad(len(body))
        total = 12 + 8 + len(body) + 8 + layout.size
        if total >= 1 << 32:  # the GLB header holds a 32-bit length
            raise OutputError(f"cannot write {path}: {total} bytes is more than a .glb can hold (4 GiB); "
                              "write .gltf instead")
        with atomic_output(path) as tmp, _opened(tmp) as f:
            _write_at(f, 0, GLB_MAGIC + struct.pack("<II", GLB_VERSION, total)
                      + struct.pack("<II", len(body), CHUNK_JSON) + body + struct.pack("<II", layout.size, CHUNK_BIN))
            _fill_buffer(f, 12 + 8 + len(body) + 8, layout, fill)
        return None
    bin_path = Path(path).with_name(bin_name(path))
    from urllib.parse import quote

    body = builder.json_bytes(uri=quote(bin_name(path)))  # a URI: "my talk.bin" -> "my%20talk.bin"
    # Outer: the .gltf (renamed last), inner: the .bin, so a .gltf never names a missing buffer.
    with atomic_output(path) as tmp_json:
        with atomic_output(bin_path) as tmp_bin, _opened(tmp_bin) as f:
            _fill_buffer(f, 0, layout, fill)
        tmp_json.write_bytes(body)
    return bin_path


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        f = open(path, "r+b")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from e
    with f:
        yield f


def _fill_buffer(f: BinaryIO, base: int, layout: BufferLayout, fill: Filler) -> None:
    try:
        f.truncate(base + layout.size)  # zero-filled: padding and any range left unwritten
    except OSError as e:
        raise OutputError(f"cannot write the glTF file: {e.strerror or e}") from e
    for seg in layout.segments:
        if seg.data is not None:
            _write_at(f, base + seg.offset, seg.data)
    fill(BinSink(f, base))


def read_gltf_json(source: PathLike | bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON document of a ``.glb`` (its JSON chunk only: the buffer is not read) or ``.gltf``;
    ``source`` is a path or the file's bytes.

    FormatError for anything that is not glTF 2.0, or whose bytes are not all there: the GLB
    header's length, the chunk lengths and the file size must agree, and each buffer (the BIN
    chunk, or a ``.bin`` beside a ``.gltf``) must hold the bytes its ``byteLength`` and the buffer
    views announce (a file cut in half, or one whose lengths lie, was described as whole).
    """
    import io

    folder: Path | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, opened = "<bytes>", contextlib.nullcontext(io.BytesIO(bytes(source)))
    else:
        p = Path(source)
        if not p.is_file():
            raise InputError(f"glTF file not found: {p}")
        name, opened, folder = str(p), open(p, "rb"), p.parent  # type: ignore[assignment]
    bin_length: int | None = None
    with opened as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        head = f.read(20)
        if head[:4] == GLB_MAGIC:
            if len(head) < 20 or not is_glb(head):
                raise FormatError(f"{name} is not a glTF 2.0 binary (bad header)")
            length, kind = struct.unpack("<II", head[12:20])
            if kind != CHUNK_JSON:
                raise FormatError(f"{name} is corrupt: the first GLB chunk is not JSON")
            bin_length = _glb_frame(f, name, size, struct.unpack("<I", head[8:12])[0], length)
            f.seek(20)
            raw = f.read(length)
        else:
            raw = head + f.read()
    doc = parse_json(raw, f"{name} is not a glTF file")
    asset = doc.get("asset") if isinstance(doc, dict) else None
    if not isinstance(asset, dict) or asset.get("version") != "2.0":
        raise FormatError(f"{name} is not a glTF 2.0 document (asset.version is not 2.0)")
    _check_buffers(doc, name, glb=head[:4] == GLB_MAGIC, bin_length=bin_length, folder=folder)
    return doc


def _glb_frame(f: BinaryIO, name: str, size: int, total: int, json_length: int) -> int | None:
    """The BIN chunk's length (None without one) once the GLB framing agrees with the file's
    ``size``: the header's ``total``, the JSON chunk, the BIN chunk. FormatError otherwise."""
    if total > size:
        raise FormatError(f"{name} is truncated: its GLB header says {total} bytes, the file holds {size}")
    if total < size:
        raise FormatError(f"{name} is corrupt: its GLB header says {total} bytes, the file holds {size}")
    end = 20 + json_length
    if end > size:
        raise FormatError(f"{name} is truncated (its JSON chunk is cut short)")
    if end == size:
        return None
    f.seek(end)
    chunk = f.read(8)
    if len(chunk) < 8:
        raise FormatError(f"{name} is corrupt: {size - end} stray bytes after its JSON chunk")
    bin_length, kind = struct.unpack("<II", chunk)
    if kind != CHUNK_BIN:
        raise FormatError(f"{name} is corrupt: the chunk after its JSON chunk is not BIN")
    if end + 8 + bin_length != size:
        raise FormatError(f"{name} is corrupt: its BIN chunk says {bin_length} bytes, the file holds "
                          f"{size - end - 8} after its header")
    return int(bin_length)


def _check_buffers(doc: dict[str, Any], name: str, *, glb: bool, bin_length: int | None, folder: Path | None) -> None:
    """Each buffer holds its ``byteLength`` (the GLB BIN chunk, or a file beside the ``.gltf``
    when ``folder`` is known) and each buffer view lies inside its buffer."""
    c = _Checked(doc, name)
    lengths: list[int] = []
    for i, buf in enumerate(c.array(doc, "buffers", "")):
        where = f"buffers[{i}]"
        buf = c.object(buf, where)
        length = c.integer(buf.get("byteLength"), f"{where}.byteLength", below=1 << 53)
        uri = buf.get("uri")
        if uri is None:
            if not glb or i > 0:
                raise c.fail(f"{where} has no uri (only the first buffer of a .glb, its BIN chunk, may leave it out)")
            held = bin_length
            if held is None or held < length:
                raise FormatError(f"{name} is truncated: {where} announces {length} bytes, its BIN chunk holds "
                                  f"{held or 0}")
        elif isinstance(uri, str) and folder is not None and not uri.startswith("data:") and "://" not in uri:
            from urllib.parse import unquote

            file = folder / unquote(uri)
            held = file.stat().st_size if file.is_file() else None
            if held is None:
                raise FormatError(f"{name}: {where} is in {file}, which is missing")
            if held < length:
                raise FormatError(f"{name}: {where} announces {length} bytes, {file} holds {held} (truncated)")
        lengths.append(length)
    for i, view in enumerate(c.array(doc, "bufferViews", "")):
        where = f"bufferViews[{i}]"
        view = c.object(view, where)
        buffer = c.integer(view.get("buffer"), f"{where}.buffer", below=max(len(lengths), 1))
        if buffer >= len(lengths):
            raise c.fail(f"{where} names buffer {buffer}, but the document has none")
        start = c.integer(view.get("byteOffset", 0), f"{where}.byteOffset", below=1 << 53)
        stop = start + c.integer(view.get("byteLength"), f"{where}.byteLength", below=1 << 53)
        if stop > lengths[buffer]:
            raise c.fail(f"{where} ends at byte {stop}, past the {lengths[buffer]} bytes of buffers[{buffer}]")


def read_gltf(path: PathLike) -> Any:
    """The whole document with its buffer, as a ``pygltflib.GLTF2`` (``.glb`` or ``.gltf`` + ``.bin``).

    For inspection and tests: the buffer is held in memory (use :func:`read_gltf_json` for the
    description alone).
    """
    import pygltflib

    read_gltf_json(path)  # typed errors for files that are not glTF 2.0
    try:
        return pygltflib.GLTF2.load(str(path))
    except Exception as e:  # pygltflib raises many types on damaged input
        raise FormatError(f"{path} cannot be read as glTF: {type(e).__name__}: {e}") from e


class _Checked:
    """Typed reads of an untrusted glTF document: each wrong type, count or index is one
    FormatError naming where it is (``meshes[0].primitives``), never a TypeError."""

    def __init__(self, doc: dict[str, Any], name: str) -> None:
        self.name = name
        self.accessors = self.array(doc, "accessors", "")

    def fail(self, what: str) -> FormatError:
        return FormatError(f"{self.name} is not a valid glTF document: {what}")

    def array(self, obj: dict[str, Any], key: str, where: str) -> list[Any]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}{key} is not an array")
        return value

    def object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} is not an object")
        return value

    def integer(self, value: Any, where: str, *, below: int) -> int:
        """A glTF integer (an index or a count): 0 <= value < ``below``."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < below:
            raise self.fail(f"{where} is {_shown(value)}, not an integer from 0 to {below - 1}")
        return value

    def accessor(self, index: Any, where: str) -> dict[str, Any]:
        i = self.integer(index, where, below=max(len(self.accessors), 1))
        if i >= len(self.accessors):
            raise self.fail(f"{where} names accessor {i}, but the document has none")
        return self.object(self.accessors[i], f"accessors[{i}]")

    def count(self, acc: dict[str, Any], where: str) -> int:
        return self.integer(acc.get("count"), f"{where}.count", below=1 << 32)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def gltf_summary(doc: dict[str, Any], name: str = "<glTF>") -> dict[str, Any]:
    """What ``artalk info`` shows of a glTF document (``name`` for messages): counts, the animation
    length, our extras. FormatError for a document whose fields have the wrong types or indices."""
    c = _Checked(doc, name)
    asset = c.object(doc.get("asset"), "asset")
    out: dict[str, Any] = {"format": "glTF 2.0", "generator": asset.get("generator")
                           if isinstance(asset.get("generator"), str) else None}
    meshes = c.array(doc, "meshes", "")
    prims: list[dict[str, Any]] = []
    for m, mesh in enumerate(meshes):
        where = f"meshes[{m}]"
        for p, prim in enumerate(c.array(c.object(mesh, where), "primitives", f"{where}.")):
            prims.append(c.object(prim, f"{where}.primitives[{p}]"))
    verts = 0
    for prim in prims:
        attrs = c.object(prim.get("attributes", {}), "a primitive's attributes")
        if "POSITION" in attrs:
            verts += c.count(c.accessor(attrs["POSITION"], "POSITION"), "POSITION accessor")
    joints = sum(len(c.array(c.object(s, f"skins[{i}]"), "joints", f"skins[{i}]."))
                 for i, s in enumerate(c.array(doc, "skins", "")))
    out.update(meshes=len(meshes), vertices=verts, nodes=len(c.array(doc, "nodes", "")), joints=joints,
               morph_targets=max((len(c.array(p, "targets", "a primitive's ")) for p in prims), default=0))
    anims = c.array(doc, "animations", "")
    if anims:
        keys, ends = [], []
        for a, anim in enumerate(anims):
            where = f"animations[{a}]"
            for k, sampler in enumerate(c.array(c.object(anim, where), "samplers", f"{where}.")):
                acc = c.accessor(c.object(sampler, f"{where}.samplers[{k}]").get("input"),
                                 f"{where}.samplers[{k}].input")
                keys.append(c.count(acc, "a sampler's input accessor"))
                top = acc.get("max", [0.0])
                if (not isinstance(top, list) or not top or isinstance(top[0], bool)
                        or not isinstance(top[0], (int, float)) or not math.isfinite(top[0])):
                    raise c.fail(f"the max of {where}.samplers[{k}]'s input times is {_shown(top)}, not [seconds]")
                ends.append(float(top[0]))
        out.update(animations=len(anims), keyframes=max(keys, default=0),
                   duration_s=round(max(ends, default=0.0), 6))
    extras = asset.get("extras")
    if isinstance(extras, dict) and extras.get("format") == FORMAT_NAME:
        out["metadata"] = dict(extras)
    return out


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SCHEMA_NAME", "GltfBuilder", "BufferLayout", "BinSink",
           "write_gltf", "read_gltf", "read_gltf_json", "gltf_summary", "is_glb",
           "is_gltf_json", "bin_name"]
