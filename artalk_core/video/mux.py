"""Adding speech to a video: the H.264 track copied as it is, the audio encoded as AAC mono."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from artalk_core.constants import FPS, SAMPLE_RATE
from artalk_core.errors import FormatError, OutputError
from artalk_core.fileio import PathLike, atomic_output
from artalk_core.timing import samples_for_frames
from artalk_core.video.probe import _av, _open_video, count_video_frames
from artalk_core.video.writer import _AacTrack, _audio_input, _open_output, video_container


def mux(video_path: PathLike, audio: np.ndarray | Iterator[np.ndarray], out_path: PathLike, *,
        sample_rate: int = SAMPLE_RATE, meta: Mapping[str, str] | None = None) -> None:
    """Copy the H.264 track of ``video_path`` (no re-encode) and add ``audio`` as AAC mono.

    ``audio`` [S] float32 at ``sample_rate`` is cut to the video's length, int(T / fps * rate)
    samples (the reference's cut), or padded with silence when shorter; it may also be an
    iterator of float32 blocks (an :class:`artalk_core.audio.AudioStream`), decoded as the
    packets are copied. ``out_path`` is written atomically and may be ``video_path`` itself.
    ``meta`` adds to the video's own tags.
    """
    container_format, ext = video_container(out_path)
    av = _av()
    a = _audio_input(audio, sample_rate)
    assert a is not None
    src = Path(video_path)
    inp = _open_video(av, src)
    with contextlib.closing(inp):
        if not inp.streams.video:
            raise FormatError(f"{src} has no video track")
        vin = inp.streams.video[0]
        fps = vin.average_rate or vin.guessed_rate
        if not fps:
            raise FormatError(f"cannot tell the frame rate of {src}")
        with contextlib.closing(_open_video(av, src)) as counting:
            n_frames = count_video_frames(counting, counting.streams.video[0])
        total = (samples_for_frames(n_frames) if fps == FPS and sample_rate == SAMPLE_RATE
                 else int(n_frames / float(fps) * sample_rate))
        tags = {k: v for k, v in inp.metadata.items()
                if k not in ("major_brand", "minor_version", "compatible_brands", "encoder")}
        tags.update({str(k): str(v) for k, v in (meta or {}).items()})
        if meta and "comment" not in meta:
            tags.pop("comment", None)
        with atomic_output(out_path, suffix=ext) as tmp:
            try:
                out = _open_output(av, tmp, tags, container_format)
                with contextlib.closing(out):
                    vout = out.add_stream_from_template(vin)
                    track = _AacTrack(av, out, a, sample_rate)
                    seen = 0
                    for packet in inp.demux(vin):
                        if packet.size == 0 or packet.is_corrupt:
                            continue  # the end marker; a frame cut short in a half-written file
                        packet.stream = vout
                        out.mux(packet)
                        seen += 1
                        track.feed_until(int(seen / float(fps) * sample_rate))
                    track.finish(total)
            except av.FFmpegError as e:  # its text names the hidden temp file: the reason alone
                raise OutputError(f"cannot mux audio into {out_path}: {getattr(e, 'strerror', None) or e}") from e


__all__ = ["mux"]
