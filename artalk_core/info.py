"""What is in a file: the data behind ``artalk info FILE [--json]``.

:func:`describe_file` recognises a file by content (:func:`artalk_core.formats.sniff_kind`) and
returns a JSON-ready dict; :func:`format_description` turns it into readable text.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, cast

import numpy as np

from artalk_core.constants import (
    EXP_SLICE,
    FPS,
    GLOBAL_ROT_SLICE,
    JAW_OPEN_CHANNEL,
    JAW_YZ_SLICE,
    MOTION_DIM,
    STYLE_FRAMES,
)
from artalk_core.errors import ArtalkError, FormatError, InputError
from artalk_core.fileio import is_stdio, is_stream_path, load_torch
from artalk_core.formats import Source, safetensors_header, sniff_kind, source_bytes, source_name

CHANNEL_GROUPS: dict[str, slice] = {
    "expression": EXP_SLICE,
    "global_rotation": GLOBAL_ROT_SLICE,
    "jaw_open": slice(JAW_OPEN_CHANNEL, JAW_OPEN_CHANNEL + 1),
    "jaw_yz": JAW_YZ_SLICE,
}
"""Channel groups summarised by ``info``."""


def _r(x: float) -> float:
    return float(round(float(x), 6))


def motion_summary(data: np.ndarray) -> dict[str, Any]:
    """Frames, duration and per-group value ranges of motion [T, 106]."""
    groups = {}
    for name, sl in CHANNEL_GROUPS.items():
        part = data[:, sl]
        groups[name] = {"channels": f"{sl.start}:{sl.stop}", "min": _r(part.min()), "max": _r(part.max()),
                        "mean_abs": _r(np.abs(part).mean())}
    return {"frames": int(data.shape[0]), "duration_s": _r(data.shape[0] / FPS), "fps": FPS,
            "shape": [int(s) for s in data.shape], "dtype": "float32", "channel_ranges": groups}


def _plain(value: Any) -> Any:
    """HDF5 / numpy attribute values as JSON-ready Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _plain(value.tolist()) if value.size <= 16 else f"array{list(value.shape)} {value.dtype}"
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _describe_motion(data: bytes, name: str) -> dict[str, Any]:
    from artalk_core.formats.motion import Motion, MotionReader

    with MotionReader(data, label=name) as r:  # errors name the file, not "<bytes>"
        m = Motion(r.read(), dict(r.meta), r.origin)
    out: dict[str, Any] = {"format": "artalk.motion", **motion_summary(m.data),
                           "postprocessed": m.is_postprocessed, "metadata": dict(m.meta)}
    return out


def _describe_features(source: Source, name: str) -> dict[str, Any]:
    from artalk_core.formats.features import FeaturesReader

    with FeaturesReader(source, label=name) as f:  # a file is checked block by block, not loaded (0.7 GB per hour)
        pass
    return {"format": "artalk.features", "audio_encoder": f.audio_encoder, "chunks": f.chunks,
            "tokens_per_chunk": f.tokens, "feature_dim": f.feature_dim, "shape": [f.chunks, f.tokens, f.feature_dim],
            "dtype": "float32",
            "audio_samples": f.audio_samples, "frames": f.frames, "duration_s": _r(f.frames / FPS),
            "metadata": dict(f.meta)}


def _describe_safetensors(source: Source, name: str) -> dict[str, Any]:
    header = safetensors_header(source)
    if header is None:
        raise FormatError(f"{name} is a truncated or corrupt safetensors file")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise FormatError(f"{name} is a corrupt safetensors file: its __metadata__ is not an object")
    tensors = [{"name": k, "dtype": v.get("dtype"), "shape": v.get("shape")}
               for k, v in sorted(header.items()) if isinstance(v, dict)]
    for t in tensors:
        shape = t["shape"]
        if not isinstance(shape, list) or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
            raise FormatError(f"{name} is a corrupt safetensors file: tensor {t['name']!r} has the shape "
                              f"{json.dumps(shape)[:40]}, not a list of sizes")
    params = sum(math.prod(cast(list[int], t["shape"])) for t in tensors)  # Python ints: no overflow
    return {"format": "safetensors", "tensor_count": len(tensors), "parameters": params,
            "tensors": tensors[:50], "metadata": meta}


def _describe_torch(source: Source, name: str) -> dict[str, Any]:
    import torch


    try:
        # mmap: a 2 GB checkpoint is described without reading it all.
        obj = load_torch(source if isinstance(source, (bytes, bytearray, memoryview)) else str(source), name,
                         mmap=True, stored_only=True)
    except FormatError:
        tracked = _describe_tracked(source)  # numpy arrays: GAGAvatar's tracked.pt
        if tracked is not None:
            return tracked
        raise
    out: dict[str, Any] = {"format": "torch.save"}
    if isinstance(obj, torch.Tensor):
        shape = [int(s) for s in obj.shape]
        out.update(shape=shape, dtype=str(obj.dtype).replace("torch.", ""))
        arr = obj.detach().float().numpy() if obj.is_floating_point() else None
        if arr is not None and arr.ndim == 2 and shape[1] == MOTION_DIM and shape[0] > 0 \
                and bool(np.isfinite(arr).all()):
            content = "style" if shape[0] == STYLE_FRAMES else "motion"
            out.update(content=content, **motion_summary(arr))
            out["dtype"] = str(obj.dtype).replace("torch.", "")
            out["note"] = (f"reference-format {content} file (torch.save of a [T, {MOTION_DIM}] tensor); "
                           "artalk reads it as motion or style")
        else:
            out["content"] = "tensor"
        return out
    if isinstance(obj, dict):
        tensors = {}

        def walk(d: dict, prefix: str) -> None:
            for k, v in d.items():
                key = f"{prefix}{k}"
                if isinstance(v, torch.Tensor):
                    tensors[key] = v
                elif isinstance(v, dict):
                    walk(v, key + ".")

        walk(obj, "")
        out.update(content="dict", keys=[str(k) for k in list(obj)[:20]], key_count=len(obj),
                   tensor_count=len(tensors), parameters=int(sum(t.numel() for t in tensors.values())),
                   tensors=[{"name": k, "dtype": str(t.dtype).replace("torch.", ""),
                             "shape": [int(s) for s in t.shape]} for k, t in list(tensors.items())[:50]])
        return out
    out.update(content=type(obj).__name__)
    return out


def _describe_tracked(source: Source) -> dict[str, Any] | None:
    """A GAGAvatar tracked-avatars file (numpy arrays, read with the allow-list loader), else None."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    from artalk_core.render.avatar.tracked import load_tracked

    try:
        entries = load_tracked(source)
    except ArtalkError:
        return None
    return {"format": "torch.save", "content": "tracked avatars (GAGAvatar)", "avatar_count": len(entries),
            "keys": list(entries), "note": "use a name with --avatar (and this file with --tracked)"}


def _describe_hdf5(source: Source, name: str) -> dict[str, Any]:
    import h5py

    target: Any = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    try:
        f = h5py.File(target, "r")
    except OSError as e:
        raise FormatError(f"{name} is a truncated or corrupt HDF5 file") from e
    datasets: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    with f:
        def visit(path: str, obj: Any) -> None:
            attrs = {k: _plain(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                datasets.append({"name": path, "shape": [int(s) for s in obj.shape],
                                 "dtype": str(obj.dtype), "attrs": attrs})
            else:
                groups.append({"name": path, "attrs": attrs})

        f.visititems(visit)
        root_attrs = {k: _plain(v) for k, v in f.attrs.items()}
    return {"format": "hdf5", "attrs": root_attrs, "datasets": datasets, "groups": groups}


def _describe_media(source: Source, name: str) -> dict[str, Any]:
    import av

    target: Any = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    try:
        container = av.open(target, "r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise FormatError(f"{name} is not a file type artalk knows (not motion, features, a .pt, "
                          "HDF5, audio or video)") from e
    attached = int(av.stream.Disposition.attached_pic)
    with container:
        streams: list[dict[str, Any]] = []
        for s in container.streams:
            cc = s.codec_context
            dur = float(s.duration * s.time_base) if s.duration is not None and s.time_base else None
            entry: dict[str, Any] = {"index": s.index, "type": s.type,
                                     "codec": cc.name if cc is not None else None,
                                     "duration_s": _r(dur) if dur is not None else None}
            if s.type == "audio":
                entry.update(sample_rate=s.sample_rate, channels=s.channels)
            elif s.type == "video":
                rate = s.average_rate or s.guessed_rate
                fps = float(rate) if rate else None
                from artalk_core.video import count_video_frames  # what decodes, not the header's count

                frames = count_video_frames(container, s)
                entry.update(width=cc.width, height=cc.height, fps=_r(fps) if fps else None,
                             frames=frames, pix_fmt=cc.pix_fmt,
                             cover_art=bool(int(s.disposition) & attached))
            streams.append(entry)
        duration = float(container.duration) / av.time_base if container.duration else None
        fmt = container.format.name
    video = [s for s in streams if s["type"] == "video" and not s.get("cover_art")]
    audio = [s for s in streams if s["type"] == "audio"]
    if not video and not audio:
        raise FormatError(f"{name} holds no audio or video stream")
    if duration is None:
        known = [s["duration_s"] for s in streams if s["duration_s"] is not None]
        duration = max(known) if known else None
    out: dict[str, Any] = {"kind": "video" if video else "audio", "container": fmt,
                           "duration_s": _r(duration) if duration is not None else None}
    if video:
        v = video[0]
        out.update(width=v["width"], height=v["height"], fps=v["fps"], frames=v["frames"],
                   video_codec=v["codec"], has_audio=bool(audio))
    if audio:
        a = audio[0]
        out.update(sample_rate=a["sample_rate"], channels=a["channels"],
                   **({"codec": a["codec"]} if not video else {"audio_codec": a["codec"]}))
    out["streams"] = streams
    return out


def describe_file(source: Source) -> dict[str, Any]:
    """A JSON-ready description of a file (path, ``-`` or bytes).

    Always: ``kind`` (motion, features, reference-pt, safetensors, vertices, audio, video), ``path``
    and ``size_bytes``; then per kind: motion -> frames, duration_s, fps, shape, channel_ranges,
    metadata; features -> audio_encoder, chunks, tokens_per_chunk, feature_dim, frames, metadata; reference-pt -> shape/dtype
    (+ motion fields and a note for [T, 106] tensors); vertices -> HDF5 datasets, groups, attrs;
    gltf -> meshes, vertices, joints, morph_targets, keyframes, duration_s, artalk's asset extras;
    audio/video -> container, duration, streams, codec, sample rate / size, fps, frames.
    Raises FormatError for files of unknown type and corrupt files.
    """
    name = source_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)) or is_stdio(source) or is_stream_path(source):
        data = source_bytes(source)  # a FIFO or /dev/stdin is read once, like stdin
        src: bytes | Path = data
        size = len(data)
    else:
        p = Path(source)
        if not p.exists():
            raise InputError(f"file not found: {p}")
        if p.is_dir():
            raise InputError(f"{p} is a folder, not a file")
        src, size = p, p.stat().st_size
    if size == 0:
        raise FormatError(f"{name} is empty (0 bytes)")
    kind = sniff_kind(src)
    head: dict[str, Any] = {"kind": kind, "path": name, "size_bytes": size}
    if kind == "features":
        body = _describe_features(src, name)
    elif kind in ("motion", "motion-stream"):
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        body = _describe_motion(data, name)
        if kind == "motion-stream":
            body["format"] = "artalk.motion-stream"
    elif kind == "safetensors":
        body = _describe_safetensors(src, name)
    elif kind == "reference-pt":
        body = _describe_torch(src, name)
    elif kind == "vertices":
        body = _describe_hdf5(src, name)
    elif kind == "gltf":
        from artalk_core.formats.gltf import gltf_summary, read_gltf_json

        body = gltf_summary(read_gltf_json(src), name)
    else:
        body = _describe_media(src, name)
        head["kind"] = body.pop("kind")
    return {**head, **body}


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SECTIONS = ("channel_ranges", "metadata", "streams", "tensors", "datasets", "groups", "attrs", "keys")


def _printable(value: Any) -> Any:
    """``value`` with every string (keys too) safe for a terminal (see :func:`artalk_core.text.printable`)."""
    from artalk_core.text import printable

    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


def format_description(d: dict[str, Any]) -> str:
    """Readable multi-line text of a :func:`describe_file` dict (plain text, no markup; the file's
    own text, such as metadata and avatar names, with control characters escaped)."""
    d = _printable(d)
    lines = [f"{d.get('kind', '?')}: {d.get('path', '?')} ({_human_size(int(d.get('size_bytes', 0)))})"]
    if d.get("note"):
        lines.append(f"  note: {d['note']}")
    scalars = {k: v for k, v in d.items()
               if k not in ("kind", "path", "size_bytes", "note", *_SECTIONS) and v is not None}
    width = max((len(k) for k in scalars), default=0)
    for k, v in scalars.items():
        lines.append(f"  {k.ljust(width)}  {_short(v)}")
    if d.get("channel_ranges"):
        lines.append("  channel ranges:")
        for g, r in d["channel_ranges"].items():
            lines.append(f"    {g:<16} [{r['channels']:>7}]  min {r['min']:+.4f}  max {r['max']:+.4f}  "
                         f"mean|x| {r['mean_abs']:.4f}")
    for s in d.get("streams") or []:
        extra = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("index", "type") and v is not None)
        lines.append(f"  stream #{s['index']} {s['type']}: {extra}")
    for section in ("tensors", "datasets"):
        items = d.get(section) or []
        if items:
            total = d.get("tensor_count", len(items)) if section == "tensors" else len(items)
            lines.append(f"  {section} ({total}):")
            for t in items:
                attrs = t.get("attrs")
                suffix = f"  attrs {_short(attrs, 80)}" if attrs else ""
                lines.append(f"    {t['name']}  {t.get('dtype')} {t.get('shape')}{suffix}")
            if total > len(items):
                lines.append(f"    ... {total - len(items)} more")
    for g in d.get("groups") or []:
        if g.get("attrs"):
            lines.append(f"  group {g['name']}: attrs {_short(g['attrs'], 80)}")
    if d.get("attrs"):
        lines.append("  attributes:")
        for k, v in d["attrs"].items():
            lines.append(f"    {k}: {_short(v)}")
    if d.get("keys"):
        lines.append(f"  keys: {_short(', '.join(d['keys']), 200)}")
    if d.get("metadata"):
        lines.append("  metadata:")
        mw = max(len(k) for k in d["metadata"])
        for k, v in sorted(d["metadata"].items()):
            lines.append(f"    {k.ljust(mw)}  {_short(v)}")
    return "\n".join(lines)


__all__ = ["CHANNEL_GROUPS", "describe_file", "format_description", "motion_summary"]
