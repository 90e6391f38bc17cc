"""H.264 video writing with PyAV: frame by frame, atomically, the audio track fed alongside.

The video is what the reference writes: libx264, yuv420p, CRF 18, 25 fps; audio AAC mono at the
speech's 16 kHz, cut to ``int(n_frames / 25 * 16000)`` samples so both tracks end together.
The container follows the output's extension (:data:`VIDEO_CONTAINERS`: MP4 by default, also
MOV and Matroska; any other extension is refused rather than given an MP4 under a false name).
MP4/MOV files are written with ``movflags=+faststart`` (plays in browsers while downloading); all
carry provenance as metadata tags: each key as its own tag, and all of them as JSON in ``comment``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import FPS, IMAGE_SIZE, SAMPLE_RATE, VIDEO_CRF
from artalk_core.errors import AudioError, InputError, OutputError
from artalk_core.fileio import PathLike, atomic_output
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import samples_for_frames
from artalk_core.video.probe import _av

AAC_FRAME: int = 1024
"""Samples per AAC frame."""
X264_PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                 "slower", "veryslow")
DEFAULT_PRESET: str = "veryfast"
"""x264 speed preset. CRF 18 fixes the quality; ``veryfast`` encodes ~3x faster than ``medium``
(the reference's default) at a similar size for these flat-shaded frames."""
_MOVFLAGS = "+faststart+use_metadata_tags"
VIDEO_CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
"""Output extension -> the FFmpeg container written (H.264 + AAC in each). No extension: MP4."""


def video_container(path: PathLike) -> tuple[str, str]:
    """(FFmpeg container, extension) for a video written to ``path``; :class:`InputError` for an
    extension whose container we do not write (``x.avi`` must not silently get an MP4)."""
    ext = Path(str(path)).suffix.lower()
    if not ext:
        return "mp4", ".mp4"
    if ext not in VIDEO_CONTAINERS:
        raise InputError(f"cannot write a video as {Path(str(path)).name}: artalk writes H.264 video in "
                         f"{', '.join(VIDEO_CONTAINERS)} files; give -o with one of those extensions")
    return VIDEO_CONTAINERS[ext], ext


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) from ``size`` (square side or (width, height)); yuv420p needs even sides."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        w = h = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        w, h = int(size[0]), int(size[1])
    else:
        raise InputError(f"video size must be an integer or (width, height), got {size!r}")
    for side in (w, h):
        if side < 16 or side % 2:
            raise InputError(f"video size must be even and at least 16 pixels (H.264 yuv420p), got {w}x{h}")
    return w, h


def _check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim != 1:
        raise AudioError(f"audio must be mono [S] samples, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"audio must be float samples in [-1, 1], got {a.dtype}")
    if a.size and not np.isfinite(a).all():
        raise AudioError("audio contains NaN or infinite samples")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample rate must be a positive integer, got {sample_rate!r}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _metadata(meta: Mapping[str, str] | None) -> dict[str, str]:
    """Container tags: each key, plus everything as JSON in ``comment`` for players that show only that."""
    if not meta:
        return {}
    tags = {str(k): str(v) for k, v in meta.items()}
    if "comment" not in tags:
        tags["comment"] = json.dumps(tags, sort_keys=True)
    return tags


def _open_output(av: Any, tmp: Path, meta: Mapping[str, str] | None, container_format: str = "mp4") -> Any:
    options = {"movflags": _MOVFLAGS} if container_format in ("mp4", "mov") else {}
    container = av.open(str(tmp), mode="w", format=container_format, options=options)
    container.metadata.update(_metadata(meta))
    return container


class _BlockAudio:
    """Audio given as an iterator of float blocks [n], read forward only: the samples already
    encoded are dropped, so only about one block is held whatever the length."""

    def __init__(self, blocks: Iterator[np.ndarray], sample_rate: int) -> None:
        self._it = blocks
        self._rate = sample_rate
        self._buf = np.zeros(0, np.float32)
        self._pos = 0  # sample index of _buf[0]
        self._ended = False

    def __getitem__(self, window: slice) -> np.ndarray:
        """Samples [start, stop) (fewer past the end); ``start`` never goes back."""
        start, stop = int(window.start), int(window.stop)
        parts = [self._buf[max(0, start - self._pos):]]
        have = self._pos + len(self._buf)
        base = max(start, self._pos)
        while have < stop and not self._ended:
            try:
                block = next(self._it)
            except StopIteration:
                self._ended = True
                break
            block = _check_audio(block, self._rate)
            parts.append(block)
            have += len(block)
        self._buf = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._pos = base
        return self._buf[:max(0, stop - base)]

    def drain(self) -> None:
        """Read the rest (unused), so a source that checks its input at the end gets to raise."""
        if not self._ended:
            for _ in self._it:
                pass
            self._ended = True
        self._buf = np.zeros(0, np.float32)


class _AacTrack:
    """AAC mono audio stream of a container, fed progressively so it interleaves with the video.

    Samples past the end of the given audio are silence (padding when the audio is shorter).
    """

    def __init__(self, av: Any, container: Any, audio: np.ndarray | _BlockAudio, sample_rate: int) -> None:
        self._av = av
        self._container = container
        self._audio = audio
        self._rate = int(sample_rate)
        stream = container.add_stream("aac", rate=self._rate, layout="mono")
        stream.format = "fltp"
        self.stream = stream
        self._pos = 0

    def _samples(self, start: int, stop: int) -> np.ndarray:
        chunk = self._audio[start:stop]
        if chunk.shape[0] < stop - start:
            chunk = np.concatenate([chunk, np.zeros(stop - start - chunk.shape[0], dtype=np.float32)])
        return chunk

    def _encode(self, start: int, stop: int) -> None:
        frame = self._av.AudioFrame.from_ndarray(self._samples(start, stop)[None], format="fltp", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = start
        frame.time_base = Fraction(1, self._rate)
        for packet in self.stream.encode(frame):
            self._container.mux(packet)

    def feed_until(self, target: int) -> None:
        """Encode whole AAC frames up to ``target`` samples (the rest waits for more)."""
        while self._pos + AAC_FRAME <= target:
            self._encode(self._pos, self._pos + AAC_FRAME)
            self._pos += AAC_FRAME

    def finish(self, total: int) -> None:
        """Encode up to exactly ``total`` samples (a short last frame) and flush the encoder."""
        self.feed_until(total)
        if total > self._pos:
            self._encode(self._pos, total)
            self._pos = total
        for packet in self.stream.encode(None):
            self._container.mux(packet)
        if isinstance(self._audio, _BlockAudio):
            self._audio.drain()


def _audio_input(audio: Any, sample_rate: int) -> np.ndarray | _BlockAudio | None:
    """An array (checked) as it is; an iterator of blocks (e.g. an :class:`artalk_core.audio.AudioStream`,
    or ``iter()`` of one) read progressively."""
    if audio is None:
        return None
    from artalk_core.audio import AudioStream

    if isinstance(audio, (Iterator, AudioStream)):
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise AudioError(f"sample rate must be a positive integer, got {sample_rate!r}")
        return _BlockAudio(iter(audio), int(sample_rate))
    return _check_audio(audio, sample_rate)


class VideoWriter:
    """Streams RGB frames into an H.264 video (MP4, or the container of ``path``'s extension, see
    :func:`video_container`), written atomically (temp file renamed on success).

    Use as a context manager; on an exception inside the block nothing is written (an existing
    file at ``path`` is kept). ``size`` is the square side or (width, height), both even.
    ``audio`` [S] float32 (optional) is added as AAC mono, cut or silence-padded to the video's
    length exactly as the reference; it may also be an iterator of float32 blocks [n] (an
    :class:`artalk_core.audio.AudioStream`), read as the video advances so long audio is never
    held whole (it is read to its end on :meth:`close`, so its own checks still run). ``threads`` 0 lets x264 choose. ``preset`` is the x264
    speed/size trade-off (CRF fixes the quality). With ``background`` the encoding runs in a
    worker thread, overlapping with the caller's rendering. Memory stays constant: each frame
    goes straight to the encoder (at most ``QUEUE_FRAMES`` wait in the queue).
    """

    QUEUE_FRAMES = 4

    def __init__(self, path: PathLike, *, fps: int = FPS, size: int | tuple[int, int] = IMAGE_SIZE,
                 crf: int = VIDEO_CRF, meta: Mapping[str, str] | None = None, threads: int = 0,
                 audio: np.ndarray | Iterator[np.ndarray] | None = None, sample_rate: int = SAMPLE_RATE,
                 preset: str = DEFAULT_PRESET, background: bool = True) -> None:
        container_format, ext = video_container(path)
        av = _av()
        self._av = av
        self.width, self.height = _check_size(size)
        if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= 240:
            raise InputError(f"fps must be an integer between 1 and 240, got {fps!r}")
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise InputError(f"CRF must be an integer between 0 and 51, got {crf!r}")
        if preset not in X264_PRESETS:
            raise InputError(f"unknown x264 preset {preset!r}: choose one of {', '.join(X264_PRESETS)}")
        self.fps = int(fps)
        self._audio = _audio_input(audio, sample_rate)
        self._sample_rate = int(sample_rate)
        self.frames = 0
        """Frames accepted so far."""
        self._encoded = 0
        self._path = path
        self._stack = contextlib.ExitStack()
        self._done = False
        self._error: BaseException | None = None
        self._queue: queue.Queue | None = None
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._recycle = True
        self._worker: threading.Thread | None = None
        tmp = self._stack.enter_context(atomic_output(path, suffix=ext))
        try:
            self._container = _open_output(av, tmp, meta, container_format)
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = Fraction(1, self.fps)
            stream.options = {"crf": str(int(crf)), "preset": preset}
            stream.codec_context.thread_count = int(threads)
            self._stream = stream
            self._track = (_AacTrack(av, self._container, self._audio, self._sample_rate)
                           if self._audio is not None else None)
        except BaseException as e:
            self._abort(e)
            if isinstance(e, Exception) and not isinstance(e, (InputError, OutputError)):
                raise OutputError(f"cannot start video {path}: {e}") from e
            raise
        if background:
            self._queue = queue.Queue(maxsize=self.QUEUE_FRAMES)
            self._worker = threading.Thread(target=self._work, name="artalk-video-encoder", daemon=True)
            self._worker.start()

    def _rgb_frame(self, f: np.ndarray) -> Any:
        """An RGB AVFrame holding a copy of ``f``; frames are recycled to skip an allocation."""
        try:
            vf = self._free.get_nowait()
        except queue.Empty:
            vf = None
        if vf is None:
            vf = self._av.VideoFrame(self.width, self.height, "rgb24")
            if vf.planes[0].line_size != self.width * 3:  # padded rows: let PyAV copy row by row
                self._recycle = False
                return self._av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        vf.planes[0].update(np.ascontiguousarray(f))
        return vf

    def _encode(self, vf: Any) -> None:
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        if self._recycle:
            # the encoder converted it to yuv420p and keeps no reference to this frame
            self._free.put(vf)
        self._encoded += 1
        if self._track is not None:
            self._track.feed_until(self._samples_for(self._encoded))

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a dead worker
            try:
                self._encode(item)
            except BaseException as e:  # handed to the caller at its next write/close
                self._error = e

    def _raise_worker_error(self) -> None:
        err = self._error
        if err is not None:
            self._abort(err)
            if isinstance(err, (InputError, OutputError, AudioError)):
                raise err
            raise self._failure(err) from err

    def _failure(self, e: BaseException) -> OutputError:
        """The OutputError of a failed write naming the output: FFmpeg's own text ends with the
        hidden temp file's name (``[Errno 28] ... '.an.mp4.x1y2.part.mp4'``), so its reason alone."""
        return OutputError(f"cannot write video {self._path}: {getattr(e, 'strerror', None) or e}")

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame [H,W,3] uint8 RGB (row 0 = top). The array may be reused afterwards."""
        if self._done:
            raise OutputError("the video writer is already closed")
        self._raise_worker_error()
        f = np.asarray(frame)
        if f.shape != (self.height, self.width, 3) or f.dtype != np.uint8:
            raise InputError(f"video frame must be [{self.height},{self.width},3] uint8, got {f.shape} {f.dtype}")
        # the pixels are copied into an AVFrame, so the caller's buffer is free again on return
        vf = self._rgb_frame(f)
        vf.pts = self.frames
        vf.time_base = Fraction(1, self.fps)
        self.frames += 1
        if self._queue is not None:
            self._queue.put(vf)
        else:
            try:
                self._encode(vf)
            except BaseException as e:
                self._error = e
                self._raise_worker_error()

    def _samples_for(self, n_frames: int) -> int:
        if self.fps == FPS and self._sample_rate == SAMPLE_RATE:
            return samples_for_frames(n_frames)
        return int(n_frames / self.fps * self._sample_rate)

    def _stop_worker(self) -> None:
        if self._worker is not None and self._queue is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def close(self) -> None:
        """Flush the encoders and move the finished file into place."""
        if self._done:
            return
        self._stop_worker()
        self._raise_worker_error()
        if self.frames == 0:
            err = InputError(f"no frames to write to {self._path}")
            self._abort(err)
            raise err
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._track is not None:
                self._track.finish(self._samples_for(self.frames))
            self._container.close()
        except BaseException as e:
            self._abort(e)
            if isinstance(e, Exception) and not isinstance(e, (InputError, OutputError, AudioError)):
                raise self._failure(e) from e
            raise
        self._done = True
        self._stack.close()

    def abort(self) -> None:
        """Give up: remove the temporary file, leave ``path`` as it was."""
        self._abort(None)

    def _abort(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if self._error is None:
            self._error = exc or OutputError("video writing aborted")  # makes the worker skip what is queued
        with contextlib.suppress(BaseException):
            self._stop_worker()
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        err = exc if exc is not None else OutputError("video writing aborted")
        # atomic_output removes its temp file when the exception is thrown into it
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(err), err, err.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)

    def __del__(self) -> None:
        # a writer dropped without close() must not leave its worker or temp file behind
        with contextlib.suppress(Exception):
            if not self._done:
                self._abort(None)


def write_video(path: PathLike, frames: Iterable[np.ndarray], *, audio: np.ndarray | Iterator[np.ndarray] | None = None,
                fps: int = FPS, crf: int = VIDEO_CRF, meta: Mapping[str, str] | None = None,
                sample_rate: int = SAMPLE_RATE, progress: OptionalProgress = None,
                total: int = 0) -> int:
    """Write ``frames`` ([H,W,3] uint8 each, consumed lazily) to an MP4, with ``audio`` if given.

    The size is taken from the first frame. Returns the number of frames written.
    """
    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        raise InputError(f"no frames to write to {path}") from None
    if first.ndim != 3 or first.shape[2] != 3:
        raise InputError(f"video frames must be [H,W,3] uint8, got {first.shape}")
    writer = VideoWriter(path, fps=fps, size=(first.shape[1], first.shape[0]), crf=crf, meta=meta,
                         audio=audio, sample_rate=sample_rate)
    with writer:
        writer.write(first)
        report(progress, "encode", 1, total)
        for frame in it:
            writer.write(frame)
            report(progress, "encode", writer.frames, total)
    return writer.frames


__all__ = ["AAC_FRAME", "DEFAULT_PRESET", "VIDEO_CONTAINERS", "X264_PRESETS", "VideoWriter", "video_container",
           "write_video"]
