"""Reading videos: their facts (:func:`probe_video`), a frame as a PNG (:func:`extract_frame`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from artalk_core.errors import DependencyError, FormatError, InputError
from artalk_core.fileio import PathLike, atomic_output, check_not_input, existing_file, input_file


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a hard dependency
        raise DependencyError(f"video writing needs PyAV (pip install av): {e}") from e
    return av


def count_video_frames(container: Any, stream: Any) -> int:
    """Frames of ``stream`` whose data is in the file: its packets, less those the demuxer found
    cut short (a half-written file's header announces frames that are not there).

    Demuxing only (no decoding); it reads the container to its end (open another to read on).
    """
    return sum(1 for p in container.demux(stream) if p.size and not p.is_corrupt)


def _open_video(av: Any, path: Path) -> Any:
    """An input container for ``path``, or the typed error saying why not."""
    existing_file(path, "video file")
    try:
        return av.open(str(path))
    except av.FFmpegError as e:
        raise FormatError(f"cannot read video {path}: {e}") from e


def probe_video(path: PathLike) -> dict[str, Any]:
    """Facts of a video file: frames, fps, width, height, codec, pix_fmt, duration (s), metadata,
    and audio_codec / audio_rate / audio_channels / audio_duration (s; None without audio)."""
    av = _av()
    container = _open_video(av, Path(path))
    with contextlib.closing(container):
        meta = dict(container.metadata)
        if "matroska" in container.format.name:  # Matroska tags read back in capitals
            meta = {k.lower(): v for k, v in meta.items()}
        info: dict[str, Any] = {"metadata": meta, "frames": 0, "fps": None, "width": None,
                                "height": None, "codec": None, "pix_fmt": None, "duration": None,
                                "audio_codec": None, "audio_rate": None, "audio_channels": None,
                                "audio_duration": None}
        if container.streams.video:
            v = container.streams.video[0]
            rate = v.average_rate or v.guessed_rate
            info.update(frames=count_video_frames(container, v), fps=float(rate) if rate else None,
                        width=v.codec_context.width, height=v.codec_context.height,
                        codec=v.codec_context.name, pix_fmt=v.codec_context.pix_fmt,
                        duration=float(v.duration * v.time_base) if v.duration is not None else None)
        if container.streams.audio:
            a = container.streams.audio[0]
            info.update(audio_codec=a.codec_context.name, audio_rate=a.codec_context.sample_rate,
                        audio_channels=a.codec_context.channels,
                        audio_duration=float(a.duration * a.time_base) if a.duration is not None else None)
    return info


def _frame_at(container: Any, name: PathLike, index: int) -> Any:
    """Frame ``index`` of an open container as [H,W,3] uint8 (the container is closed)."""
    with container:
        if not container.streams.video:
            raise FormatError(f"{name} has no video stream")
        count = 0
        for frame in container.decode(video=0):
            if count == index:
                return frame.to_ndarray(format="rgb24")
            count += 1
    raise InputError(f"{name} has only {count} frames, no frame {index}")


def extract_frame(video_path: PathLike, output: PathLike, *, index: int = 0) -> tuple[int, int]:
    """Save frame ``index`` of a video as a PNG (for READMEs, thumbnails, checks); returns (width, height)."""
    av = _av()
    if index < 0:
        raise InputError(f"frame index must be >= 0, got {index}")

    check_not_input({"-o": output}, {"VIDEO": video_path})
    with input_file(video_path) as (path, _, _):  # a FIFO or <(...) is read once, into a temp file
        container = _open_video(av, path)
        rgb = _frame_at(container, video_path, index)
    h, w = rgb.shape[:2]
    with atomic_output(output) as tmp:
        out = av.open(str(tmp), "w", format="image2")
        with out:
            st = out.add_stream("png")
            st.width, st.height, st.pix_fmt = w, h, "rgb24"
            for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
    return w, h


__all__ = ["count_video_frames", "extract_frame", "probe_video"]
