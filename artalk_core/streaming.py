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
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES, SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.engines.speech import SILENCE_WARNING, ChunkedSpeech
from artalk_core.errors import AudioError, InputError, warn
from artalk_core.fileio import PathLike, check_not_input, is_stdio, spooled
from artalk_core.progress import OptionalProgress
from artalk_core.stdio import stdin_binary
from artalk_core.timing import num_frames

if TYPE_CHECKING:
    from artalk_core.engines.base import MotionEngine

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


class LiveSpeech(ChunkedSpeech):
    """The speech of an :class:`AudioStreamReader` as engines read it: model chunks as they arrive,
    read :data:`PREFETCH_CHUNKS` ahead in a thread so a live producer is not blocked by a slow chunk."""

    def __init__(self, reader: AudioStreamReader) -> None:
        self.reader = reader
        self._prefetch: _Prefetch | None = None

    def audio_blocks(self) -> Iterator[np.ndarray]:
        self._prefetch = _Prefetch(self.reader.chunks(), PREFETCH_CHUNKS)
        return iter(self._prefetch)

    def frames(self) -> int:
        return num_frames(self.reader.samples)

    def facts(self) -> dict[str, str]:
        """Known only when the input was read to its end (not after a stop at the clip length)."""
        done = self.reader.complete
        return {"audio_sha256": self.reader.sha256 if done else "",
                "audio_samples": str(self.reader.samples) if done else ""}

    def finish(self, *, stopped_early: bool = False) -> None:
        for note in self.reader.notes:
            warn(note)
        total = self.reader.samples
        if not stopped_early and total and self.reader.sum_squares / total < 1e-6:  # -60 dBFS, as offline
            warn(SILENCE_WARNING)

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.close()


def open_input(input: PathLike | BinaryIO) -> tuple[BinaryIO, str, BinaryIO | None]:
    """(binary file object, name for messages, the object to close or None) for a path, ``-`` or a file."""
    if not isinstance(input, (str, os.PathLike)):  # a binary file object
        return input, getattr(input, "name", "<stream>"), None
    if is_stdio(input):
        return stdin_binary(), "<stdin>", None
    p = Path(input)
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
                    engine: str | MotionEngine = "artalk", checkpoint: PathLike | None = None,
                    model_config: PathLike | None = None, assets: PathLike | None = None, device: str = "auto",
                    precision: str = "fp32", seed: int = 0, progress: OptionalProgress = None) -> StreamResult:
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
    from artalk_core.engines import check_engine
    from artalk_core.generation import check_precision, check_raw_options, model_inputs

    if isinstance(engine, str):
        check_engine(engine)
    check_raw_options(raw=raw, clip_length=clip_length, fix_pose=fix_pose)
    if stream_format not in STREAM_FORMATS:
        raise InputError(f"unknown stream format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")

    check_precision(precision)
    check_not_input({"-o": output}, model_inputs(input=input, style=style, checkpoint=checkpoint,
                                                 model_config=model_config, assets=assets))
    t_start = time.perf_counter()
    with contextlib.ExitStack() as spools:  # side inputs given as pipes: read once, into temp files
        style, checkpoint, model_config = (spooled(spools, p) for p in (style, checkpoint, model_config))
        return _stream_generate(input, output, t_start=t_start, stream_format=stream_format, style=style,
                                style_start=style_start, raw=raw, clip_length=clip_length, fix_pose=fix_pose,
                                engine=engine, checkpoint=checkpoint, model_config=model_config, assets=assets,
                                device=device, precision=precision, seed=seed, progress=progress)


def _stream_generate(input: PathLike | BinaryIO, output: PathLike | BinaryIO, *, t_start: float, stream_format: str,
                     style: None | str | np.ndarray, style_start: int, raw: bool, clip_length: int | None,
                     fix_pose: bool, engine: str | MotionEngine, checkpoint: PathLike | None,
                     model_config: PathLike | None, assets: PathLike | None, device: str, precision: str, seed: int,
                     progress: OptionalProgress) -> StreamResult:
    """:func:`stream_generate` once its options are checked and its side inputs spooled."""
    from artalk_core.engines import EngineSettings, create_engine
    from artalk_core.generation import (
        MotionSink,
        MotionStreamOutput,
        generation_options,
        motion_metadata,
        resolve_clip_length,
        run_engine,
    )
    from artalk_core.postprocess import SMOOTH_DELAY
    from artalk_core.styles import resolve_style

    f, name, to_close = open_input(input)
    speech: LiveSpeech | None = None
    try:
        reader = AudioStreamReader(f, stream_format=stream_format, name=name)
        reader.read_header()  # a wrong input fails before the model is loaded
        sty = resolve_style(style, assets=assets, style_start=style_start)
        eng = create_engine(engine, EngineSettings(checkpoint=checkpoint, model_config=model_config, assets=assets,
                                                   device=device, precision=precision, seed=seed))
        clip_n = None if raw else resolve_clip_length(clip_length)
        options = generation_options(eng, sty, style_start=style_start, raw=raw, clip_length=clip_length,
                                     fix_pose=fix_pose, stream=True, stream_format=stream_format)
        meta = motion_metadata(eng, sty, options=options, raw=raw, clip_length=clip_n, fix_pose=fix_pose, audio=None)
        target = MotionStreamOutput(output, meta, delay_frames=0 if raw else SMOOTH_DELAY, name=name, t_start=t_start)
        speech = LiveSpeech(reader)
        with MotionSink(target, raw=raw, clip_length=clip_n, fix_pose=fix_pose) as sink:
            stopped_early = run_engine(eng, speech, sty, sink, progress)
            chunks = -(-sink.pushed // CHUNK_FRAMES)  # raw frames in 4-s chunks, the last one partial
            facts = speech.facts()
            frames = sink.finish({**meta, "audio_samples": facts["audio_samples"],
                                  "audio_sha256": facts["audio_sha256"], "stopped_early": stopped_early,
                                  "chunks": chunks})
        return StreamResult(frames=frames, audio_samples=reader.samples, audio_sha256=facts["audio_sha256"],
                            chunks=chunks, raw=raw, stopped_early=stopped_early,
                            first_output_s=target.first_output_s, seconds=time.perf_counter() - t_start, meta=meta)
    finally:
        if speech is not None:
            speech.close()
        if to_close is not None:
            to_close.close()


__all__ = ["AudioStreamReader", "LiveSpeech", "PREFETCH_CHUNKS", "PcmLayout",
           "STREAM_FORMATS", "StreamResult", "open_input", "stream_generate"]
