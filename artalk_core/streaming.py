"""Streaming generation: speech read progressively (stdin, a pipe) -> a motion stream, chunk by chunk.

``artalk generate --stream`` reads 16 kHz audio as it arrives, generates each 100-frame chunk as
soon as its 64,000 samples are in (a chunk's audio features depend on its own samples only), and
writes the motion stream (NDJSON, :class:`artalk_core.formats.motion_stream.MotionStreamWriter`) flushed
after every chunk. Post-processing runs causally (:class:`artalk_core.postprocess.StreamingPostprocessor`,
4 frames of delay), so the concatenated stream equals the offline ``artalk generate`` output
bit for bit; ``raw`` streams the model output without post-processing.

Input formats (``stream_format``):

- ``wav``: a RIFF/WAVE stream (header parsed by :mod:`artalk_core.audio.wav`): integer PCM (8/16/24/32-bit) or IEEE
  float (32/64-bit), any channel count (averaged to mono as the offline decoder does), at 16 kHz.
  Other rates are refused: resampling is a whole-signal filter offline, so a progressive one would
  not give the same numbers. A data size of 0 or 0xFFFFFFFF (what writers to a pipe put there)
  means "until the end of input".
- ``raw``: headerless signed 16-bit little-endian mono PCM at 16 kHz (``ffmpeg -f s16le -ac 1 -ar 16000``).

Samples become float exactly as the offline decoder makes them (int16 / 32768 ...), so the
features, the bits and the motion are those of ``artalk generate`` on the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES, SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.errors import AudioError, InputError, warn
from artalk_core.fileio import PathLike, atomic_output, is_stdio, provenance
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import num_frames

STREAM_FORMATS: tuple[str, ...] = ("wav", "raw")
PREFETCH_CHUNKS: int = 4
"""Audio chunks (16 s) read ahead while the model works, so a live producer is not blocked by a
slow chunk; also the most audio held at once."""

_CONVERT_HINT = "convert it on the way in: ffmpeg -i INPUT -ar 16000 -ac 1 -f wav - | artalk generate - --stream"


@dataclass
class PcmLayout:
    """How the samples of an input stream are stored."""

    sample_format: str  # u8 | s16 | s24 | s32 | f32 | f64
    channels: int
    rate: int
    data_bytes: int | None  # None: until the end of input

    @property
    def sample_bytes(self) -> int:
        from artalk_core.audio.wav import SAMPLE_BYTES

        return SAMPLE_BYTES[self.sample_format]

    @property
    def frame_bytes(self) -> int:
        return self.sample_bytes * self.channels


def _to_float(raw: bytes, layout: PcmLayout) -> np.ndarray:
    """Interleaved PCM bytes -> float32 mono [n], with the offline decoder's arithmetic."""
    from artalk_core.audio.wav import pcm_to_float

    return pcm_to_float(raw, layout.sample_format, layout.channels)


class AudioStreamReader:
    """16 kHz PCM read progressively from a binary file object (stdin, a pipe, a file).

    :meth:`read_header` parses the WAV header (nothing for raw input); :meth:`chunks` then yields
    float32 mono blocks of 64,000 samples as they complete, and at the end of input the last,
    shorter block (if any samples are left). ``samples`` counts the samples read, ``sha256`` is the
    hash of every byte read (the file's hash once it is read to the end, ``complete``).
    """

    def __init__(self, f: BinaryIO, *, stream_format: str = "wav", name: str = "<stdin>") -> None:
        if stream_format not in STREAM_FORMATS:
            raise InputError(f"unknown stream format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
        self._f = f
        self.format = stream_format
        self.name = name
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.samples = 0
        self.complete = False
        self.sum_squares = 0.0
        self.layout: PcmLayout | None = None
        self.notes: list[str] = []

    # ---- low-level reading
    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of input), hashed."""
        parts, got = [], 0
        while got < n:
            try:
                block = self._f.read(n - got)
            except OSError as e:
                raise AudioError(f"cannot read {self.name}: {e.strerror or e}") from e
            if not block:
                break
            parts.append(block)
            got += len(block)
        data = b"".join(parts)
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._read(n)
        if len(data) < n:
            if self.bytes_read == 0:
                raise AudioError(f"audio input {self.name} is empty (0 bytes)")
            raise AudioError(f"{self.name} is cut short inside the WAV header ({what}); "
                             "send a whole WAV file, or headerless PCM with --stream-format raw")
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    # ---- header
    def read_header(self) -> PcmLayout:
        """Parse the stream's header (WAV) and return the sample layout; raises AudioError."""
        if self.layout is not None:
            return self.layout
        if self.format == "raw":
            self.layout = PcmLayout("s16", 1, SAMPLE_RATE, None)
            return self.layout
        from artalk_core.audio.wav import read_wav_header

        wav = read_wav_header(self._read_exact, self.name, expected="--stream reads a 16 kHz WAV, or "
                              "headerless 16-bit mono PCM with --stream-format raw")
        tag, channels, rate, bits = wav.format_tag, wav.channels, wav.rate, wav.bits
        sample_format = wav.sample_format
        if sample_format is None or channels < 1:
            raise AudioError(f"{self.name}: WAV sample format {tag} with {bits} bits and {channels} channel(s) "
                             "cannot be streamed (PCM 8/16/24/32-bit or float 32/64-bit only); " + _CONVERT_HINT)
        if rate != SAMPLE_RATE:
            raise AudioError(f"{self.name} is {rate} Hz audio; --stream needs {SAMPLE_RATE} Hz (resampling is not "
                             f"done progressively): {_CONVERT_HINT}")
        self.layout = PcmLayout(sample_format, channels, rate, wav.data_bytes)
        return self.layout

    # ---- samples
    def chunks(self) -> Iterator[np.ndarray]:
        """float32 mono blocks [64000] as they complete, then the last shorter block (if any).

        Raises AudioError when the input holds no samples, fewer than one motion frame (640), or
        NaN/Inf samples. A WAV whose data ends before its header says is used as far as it goes
        (a note in ``notes``), as the offline decoder does.
        """
        layout = self.read_header()
        fb = layout.frame_bytes
        remaining = layout.data_bytes
        while True:
            want = CHUNK_SAMPLES * fb
            if remaining is not None:
                want = min(want, remaining)
            data = self._read(want) if want > 0 else b""
            if remaining is not None:
                remaining -= len(data)
            usable = len(data) - len(data) % fb  # a partial sample frame at the end is dropped
            block = _to_float(data[:usable], layout) if usable else np.zeros(0, np.float32)
            if block.size and not np.all(np.isfinite(block)):
                raise AudioError(f"{self.name} contains NaN or infinite samples; re-export the audio")
            self.samples += block.shape[0]
            self.sum_squares += float(np.dot(block.astype(np.float64), block.astype(np.float64)))
            if block.shape[0] == CHUNK_SAMPLES:
                yield block
                continue
            # The end of the input (or of the data chunk).
            self._drain()
            if layout.data_bytes is not None and remaining:
                self.notes.append(f"{self.name} seems cut short: its header announces {remaining} more bytes "
                                  "of audio than it holds; using the part that is there")
            if self.samples == 0:
                raise AudioError(f"{self.name} holds no audio samples" if self.bytes_read else
                                 f"audio input {self.name} is empty (0 bytes)")
            if self.samples < SAMPLES_PER_FRAME:
                raise AudioError(f"{self.name} is too short: {self.samples / SAMPLE_RATE * 1000:.1f} ms of audio, "
                                 f"at least {SAMPLES_PER_FRAME / SAMPLE_RATE * 1000:.0f} ms (1 motion frame(s)) needed")
            if block.shape[0]:
                yield block
            return

    def _drain(self) -> None:
        """Read (and hash) what follows the audio data, so ``sha256`` is the whole input's."""
        while self._read(1 << 16):
            pass
        self.complete = True


class _Prefetch:
    """Runs an iterator in a thread, ``depth`` items ahead; errors come out of :meth:`__iter__`."""

    _END = object()

    def __init__(self, it: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(it,), name="artalk-stream-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[Any]) -> None:
        try:
            for item in it:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as e:  # handed to the consumer
            self._put(("error", e))

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value

    def close(self) -> None:
        """Stop reading ahead (a reader blocked on input stays blocked: it is a daemon thread)."""
        self._stop.set()


@dataclass
class StreamResult:
    """What :func:`stream_generate` did."""

    frames: int
    audio_samples: int
    audio_sha256: str
    chunks: int
    raw: bool
    stopped_early: bool
    first_output_s: float | None
    seconds: float
    meta: dict[str, str] = field(default_factory=dict)


class _LazyStreamOutput:
    """The motion stream's destination: stdout, a pipe/device written directly, or a regular file
    written atomically (renamed into place at the end). The header is written with the first frames,
    so an error before any output leaves stdout empty."""

    def __init__(self, output: PathLike | BinaryIO) -> None:
        self._target = output
        self._stack = contextlib.ExitStack()
        self._file: BinaryIO | None = None

    def open(self) -> BinaryIO:
        if self._file is not None:
            return self._file
        out = self._target
        if hasattr(out, "write"):
            self._file = out  # type: ignore[assignment]
        elif is_stdio(out):  # type: ignore[arg-type]
            self._file = sys.stdout.buffer
        else:
            path = Path(out)  # type: ignore[arg-type]
            if path.exists() and not path.is_file() and not path.is_dir():
                # A FIFO or device: stream into it (atomic_output would only copy at the end).
                try:
                    self._file = self._stack.enter_context(open(path, "wb"))
                except OSError as e:
                    from artalk_core.errors import OutputError

                    raise OutputError(f"cannot write {path}: {e.strerror}") from e
            else:
                tmp = self._stack.enter_context(atomic_output(path))
                self._file = self._stack.enter_context(open(tmp, "wb"))
        return self._file

    def close(self, ok: bool) -> None:
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("stream failed"), None)


def open_input(input: PathLike | BinaryIO) -> tuple[BinaryIO, str, BinaryIO | None]:
    """(binary file object, name for messages, the object to close or None) for a path, ``-`` or a file."""
    if hasattr(input, "read"):
        return input, getattr(input, "name", "<stream>"), None  # type: ignore[return-value]
    if is_stdio(input):  # type: ignore[arg-type]
        return sys.stdin.buffer, "<stdin>", None
    p = Path(input)  # type: ignore[arg-type]
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"audio input is a folder, not a file: {p}")
    try:
        f = open(p, "rb")
    except OSError as e:
        raise AudioError(f"cannot read audio file {p}: {e.strerror}") from e
    return f, str(p), f


def stream_generate(input: PathLike | BinaryIO, output: PathLike | BinaryIO = "-", *,
                    stream_format: str = "wav", style: None | str | np.ndarray = None, style_start: int = 0,
                    raw: bool = False, clip_length: int | None = None, fix_pose: bool = False,
                    checkpoint: PathLike | None = None, model_config: PathLike | None = None,
                    assets: PathLike | None = None, device: str = "auto", precision: str = "fp32",
                    progress: OptionalProgress = None) -> StreamResult:
    """Read speech progressively from ``input`` and write the motion stream to ``output`` chunk by chunk.

    ``input``: ``-`` (stdin), a path (a FIFO works) or a binary file object, in ``stream_format``
    (``wav`` or ``raw``, see the module docstring). ``output``: ``-`` (stdout, the default), a path,
    or a binary file object. Each chunk's frames are written (and flushed) as soon as the chunk's
    64,000 samples are in and the model is done: raw frames at once with ``raw``, else the
    post-processed frames with a 4-frame delay. The options mean what they mean for
    :func:`artalk_core.pipeline.generate`, whose output the concatenated stream equals (``clip_length``
    None = 750 frames, 0 = all; once the clip is full the stream ends without reading further).

    Memory is bounded whatever the length: at most :data:`PREFETCH_CHUNKS` chunks of audio read
    ahead, one chunk's features, and 9 frames of post-processing state.
    """
    import torch

    from artalk_core.formats.motion_stream import MotionStreamWriter
    from artalk_core.pipeline import load_artalk, resolve_clip_length
    from artalk_core.postprocess import SMOOTH_DELAY, StreamingPostprocessor
    from artalk_core.styles import resolve_style

    if raw and (clip_length is not None or fix_pose):
        raise InputError("--clip-length and --fix-pose apply at post-processing: drop --raw, "
                         "or pass them to `artalk smooth`")
    if stream_format not in STREAM_FORMATS:
        raise InputError(f"unknown stream format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
    t_start = time.perf_counter()
    f, name, to_close = open_input(input)
    try:
        reader = AudioStreamReader(f, stream_format=stream_format, name=name)
        reader.read_header()  # a wrong input fails before the model is loaded
        sty = resolve_style(style, assets=assets, style_start=style_start)
        loaded = load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)
        model = loaded.model
        style_t = None if sty.motion is None else torch.from_numpy(sty.motion).to(loaded.device)
        clip_n = None if raw else resolve_clip_length(clip_length)
        options: dict[str, Any] = {"engine": "artalk", "style": sty.label, "style_start": style_start, "raw": raw,
                                   "clip_length": clip_length, "fix_pose": fix_pose, "stream": True,
                                   "stream_format": stream_format, "device": loaded.device, "precision": precision}
        meta: dict[str, str] = {
            **provenance("artalk generate", options=options, inputs={"checkpoint": loaded.checkpoint_sha256}),
            "engine": "artalk", "style": sty.label, "style_sha256": sty.sha256,
            "checkpoint_sha256": loaded.checkpoint_sha256,
        }
        if raw:
            meta.update(postprocessed="false", smoothed="false", clip_length="", fix_pose="false")
        else:
            meta.update(postprocessed="true", smoothed="true", clip_length="" if clip_n is None else str(clip_n),
                        fix_pose=str(bool(fix_pose)).lower())

        sink = _LazyStreamOutput(output)
        writer: MotionStreamWriter | None = None

        def emit(frames: np.ndarray) -> None:
            nonlocal writer, first_output
            if frames.shape[0] == 0:
                return
            if writer is None:
                writer = MotionStreamWriter(sink.open(), meta, delay_frames=0 if raw else SMOOTH_DELAY)
                first_output = time.perf_counter() - t_start
            writer.write_frames(frames)

        first_output: float | None = None
        post = None if raw else StreamingPostprocessor(clip_length=clip_n, fix_pose=fix_pose)
        lengths: deque[int] = deque()  # samples in each chunk handed to the model, not yet generated
        prefetch = _Prefetch(reader.chunks(), PREFETCH_CHUNKS)

        def audio_chunks() -> Iterator[Any]:
            for block in prefetch:
                lengths.append(block.shape[0])
                yield torch.from_numpy(block)

        chunks_done, stopped_early, ok = 0, False, False
        motions = model.iter_generate_from_audio(audio_chunks(), style_t, precision=precision)
        try:
            for motion in motions:
                n_in = lengths.popleft()
                valid = CHUNK_FRAMES if n_in == CHUNK_SAMPLES else num_frames(reader.samples) - chunks_done * CHUNK_FRAMES
                frames = motion.numpy()[:valid]
                chunks_done += 1
                report(progress, "stream", chunks_done, chunks_done)
                if post is None:
                    emit(frames)
                    continue
                emit(post.push(frames))
                if post.full:
                    stopped_early = True
                    break
            if post is not None and not stopped_early:
                emit(post.flush())
            for note in reader.notes:
                warn(note)
            total = reader.samples
            if not stopped_early and total and reader.sum_squares / total < 1e-6:  # -60 dBFS, as offline
                warn("the audio is silent: the head will barely move")
            if writer is None:  # nothing could be emitted (cannot happen for valid input)
                raise AudioError(f"{name}: no motion frames were produced")
            writer.end(audio_samples=reader.samples if reader.complete else "",
                       audio_sha256=reader.sha256 if reader.complete else "",
                       stopped_early=stopped_early, chunks=chunks_done)
            ok = True
        except Exception as e:
            if writer is not None:  # tell the reader of a half-written stream why it stops
                with contextlib.suppress(Exception):
                    writer.error(str(e))
            raise
        finally:
            motions.close()
            prefetch.close()
            sink.close(ok)
        return StreamResult(frames=writer.frames, audio_samples=reader.samples, audio_sha256=reader.sha256 if reader.complete else "",
                            chunks=chunks_done, raw=raw, stopped_early=stopped_early, first_output_s=first_output,
                            seconds=time.perf_counter() - t_start, meta=meta)
    finally:
        if to_close is not None:
            to_close.close()


__all__ = ["AudioStreamReader", "PREFETCH_CHUNKS", "PcmLayout", "STREAM_FORMATS", "StreamResult",
           "open_input", "stream_generate"]
