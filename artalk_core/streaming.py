"""Streaming generation: speech read progressively (stdin, a pipe) -> a motion stream, as it is made.

``artalk generate --stream`` reads audio as it arrives and feeds it to a
:class:`~artalk_core.live.session.LiveSession` (the same streamer ``artalk serve`` runs per
WebSocket): each engine block is generated as soon as its audio is in (the model's 4-s chunks;
the energy engine's 40-ms frames, one frame of look-ahead), and the motion stream (NDJSON,
:class:`artalk_core.formats.motion_stream.MotionStreamWriter`) is flushed after every block.
Post-processing runs causally (4 frames of delay), so the concatenated stream equals the offline
``artalk generate`` output bit for bit; ``raw`` streams the engine output without post-processing.

Input formats (``stream_format``):

- ``wav``: a RIFF/WAVE stream (header parsed by :mod:`artalk_core.audio.wav`): integer PCM (8/16/24/32-bit) or IEEE
  float (32/64-bit), any channel count and sample rate: each channel is resampled to 16 kHz block by
  block exactly as the offline decoder resamples a file (:class:`~artalk_core.audio.resample.BlockResampler`),
  then the channels are averaged. A data size of 0 or 0xFFFFFFFF (what writers to a pipe put
  there) means "until the end of input".
- ``raw``: headerless signed 16-bit little-endian mono PCM at 16 kHz (``ffmpeg -f s16le -ac 1 -ar 16000``).

Samples become float exactly as the offline decoder makes them (int16 / 32768 ...), so the
features, the bits and the motion are those of ``artalk generate`` on the same file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from artalk_core.audio.pcm import PcmLayout
from artalk_core.constants import CHUNK_FRAMES, SAMPLE_RATE
from artalk_core.engines.speech import SILENCE_WARNING
from artalk_core.errors import AudioError, InputError, warn
from artalk_core.fileio import PathLike, check_not_input, is_stdio, spooled
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.progress import OptionalProgress, report
from artalk_core.stdio import stdin_binary

if TYPE_CHECKING:
    pass

STREAM_FORMATS: tuple[str, ...] = ("wav", "raw")
PIECE_BYTES: int = 1 << 16
"""Most bytes read from the input at once (2 s of 16 kHz 16-bit mono)."""
PREFETCH_PIECES: int = 16
"""Pieces of input read ahead while the engine works (at most 1 MB, 32 s of 16 kHz 16-bit mono),
so a live producer is not blocked by a slow chunk; also the most input held at once."""

_CONVERT_HINT = "convert it on the way in: ffmpeg -i INPUT -ar 16000 -ac 1 -f wav - | artalk generate - --stream"


class AudioStreamReader:
    """PCM read progressively from a binary file object (stdin, a pipe, a file).

    :meth:`read_header` parses the WAV header (nothing for raw input) into a
    :class:`~artalk_core.audio.pcm.PcmLayout`; :meth:`pieces` then yields the PCM bytes as they
    arrive (a :class:`~artalk_core.audio.pcm.PcmDecoder` makes the samples). ``sha256`` is the hash
    of every byte read (the file's hash once it is read to the end, ``complete``).
    """

    def __init__(self, f: BinaryIO, *, stream_format: str = "wav", name: str = "<stdin>") -> None:
        if stream_format not in STREAM_FORMATS:
            raise InputError(f"unknown stream format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
        self._f = f
        self.format = stream_format
        self.name = name
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.complete = False
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
            self.layout = PcmLayout("s16", 1, SAMPLE_RATE)
            return self.layout
        from artalk_core.audio.wav import read_wav_header

        wav = read_wav_header(self._read_exact, self.name, expected="--stream reads a WAV stream, or "
                              "headerless 16-bit mono PCM with --stream-format raw")
        tag, channels, rate, bits = wav.format_tag, wav.channels, wav.rate, wav.bits
        sample_format = wav.sample_format
        if sample_format is None or channels < 1:
            raise AudioError(f"{self.name}: WAV sample format {tag} with {bits} bits and {channels} channel(s) "
                             "cannot be streamed (PCM 8/16/24/32-bit or float 32/64-bit only); " + _CONVERT_HINT)
        from artalk_core.audio.resample import check_rate

        try:
            check_rate(rate)
        except ValueError as e:
            raise AudioError(f"{self.name}: {e}") from e
        self.layout = PcmLayout(sample_format, channels, rate, wav.data_bytes)
        return self.layout

    # ---- samples
    def pieces(self, size: int = PIECE_BYTES) -> Iterator[bytes]:
        """The PCM bytes after the header, as they arrive: pieces of at most ``size`` bytes, each
        what the input had ready (a live producer's audio is passed on at once). At the end the
        rest of the input is read (hashed, ``complete``); a WAV whose data ends before its header
        says is used as far as it goes (a note in ``notes``), as the offline decoder does."""
        layout = self.read_header()
        remaining = layout.data_bytes
        read1 = getattr(self._f, "read1", None)
        while remaining is None or remaining > 0:
            want = size if remaining is None else min(size, remaining)
            try:
                data = read1(want) if read1 is not None else self._f.read(want)
            except OSError as e:
                raise AudioError(f"cannot read {self.name}: {e.strerror or e}") from e
            if not data:
                break
            self._hash.update(data)
            self.bytes_read += len(data)
            if remaining is not None:
                remaining -= len(data)
            yield data
        self._drain()
        if layout.data_bytes is not None and remaining:
            self.notes.append(f"{self.name} seems cut short: its header announces {remaining} more bytes "
                              "of audio than it holds; using the part that is there")

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
                    stream_format: str = "wav", raw: bool = False, motion: MotionOptions | None = None,
                    model: ModelOptions | None = None, progress: OptionalProgress = None) -> StreamResult:
    """Read speech progressively from ``input`` and write the motion stream to ``output`` as it is made.

    ``input``: ``-`` (stdin), a path (a FIFO works) or a binary file object, in ``stream_format``
    (``wav`` or ``raw``, see the module docstring). ``output``: ``-`` (stdout, the default), a path,
    or a binary file object. Each engine block's frames are written (and flushed) as soon as its
    audio is in and the engine is done: raw frames at once with ``raw``, else the post-processed
    frames with a 4-frame delay. ``raw``, ``motion`` and ``model`` mean what they mean for
    :func:`artalk_core.pipeline.generate`, whose output the concatenated stream equals (``clip_length``
    None = 750 frames, 0 = all; once the clip is full the stream ends without reading further).

    Memory is bounded whatever the length: at most :data:`PREFETCH_PIECES` pieces of input read
    ahead, one engine block of audio, the engine's state and 9 frames of post-processing.
    """
    from artalk_core.engines import check_engine
    from artalk_core.generation import check_raw_options, model_inputs, spooled_model

    mo, m = motion or MotionOptions(), model or ModelOptions()
    if isinstance(mo.engine, str):
        check_engine(mo.engine)
    check_raw_options(raw=raw, motion=mo)
    if stream_format not in STREAM_FORMATS:
        raise InputError(f"unknown stream format '{stream_format}': choose one of {', '.join(STREAM_FORMATS)}")
    check_not_input({"-o": output}, model_inputs(m, input=input, style=mo.style))
    t_start = time.perf_counter()
    with contextlib.ExitStack() as spools:  # side inputs given as pipes: read once, into temp files
        mo = dataclasses.replace(mo, style=spooled(spools, mo.style))
        return _stream_generate(input, output, t_start=t_start, stream_format=stream_format, raw=raw, motion=mo,
                                model=spooled_model(spools, m), progress=progress)


def _stream_generate(input: PathLike | BinaryIO, output: PathLike | BinaryIO, *, t_start: float, stream_format: str,
                     raw: bool, motion: MotionOptions, model: ModelOptions,
                     progress: OptionalProgress) -> StreamResult:
    """:func:`stream_generate` once its options are checked and its side inputs spooled."""
    from artalk_core.engines import create_engine
    from artalk_core.generation import (
        StreamLines,
        generation_options,
        motion_metadata,
        resolve_clip_length,
    )
    from artalk_core.live.session import LiveSession
    from artalk_core.styles import resolve_style

    f, name, to_close = open_input(input)
    pieces: _Prefetch | None = None
    try:
        reader = AudioStreamReader(f, stream_format=stream_format, name=name)
        layout = reader.read_header()  # a wrong input fails before the model is loaded
        sty = resolve_style(motion.style, assets=model.assets, style_start=motion.style_start)
        eng = create_engine(motion.engine, model, motion)
        clip_n = None if raw else resolve_clip_length(motion.clip_length)
        options = generation_options(eng, sty, motion=motion, raw=raw, stream=True, stream_format=stream_format)
        meta = motion_metadata(eng, sty, options=options, raw=raw, clip_length=clip_n, fix_pose=motion.fix_pose,
                               audio=None)
        session = LiveSession(eng, sty, layout, meta=meta, raw=raw, clip_length=clip_n, fix_pose=motion.fix_pose,
                              name=name)
        out = StreamLines(output, session.header, t_start)
        pieces = _Prefetch(reader.pieces(), PREFETCH_PIECES)
        try:
            for data in pieces:
                session.feed(data)
                _compute(session, out, progress)
                if session.done:  # the clip is full: the rest of the input cannot change it
                    break
            if not session.done:
                session.end({"audio_sha256": reader.sha256 if reader.complete else ""})
                _compute(session, out, progress)
        except Exception as e:
            if out.started:
                out.write(session.fail(e))
            out.close(ok=False)
            raise
        except BaseException:
            out.close(ok=False)
            raise
        finally:
            session.close()
        out.close(ok=True)
        for note in reader.notes:
            warn(note)
        samples = session.decoder.samples
        if not session.stopped_early and samples and session.decoder.sum_squares / samples < 1e-6:  # -60 dBFS
            warn(SILENCE_WARNING)
        return StreamResult(frames=session.frames, audio_samples=samples,
                            audio_sha256=reader.sha256 if reader.complete and not session.stopped_early else "",
                            chunks=-(-session.sink.pushed // CHUNK_FRAMES), raw=raw,
                            stopped_early=session.stopped_early, first_output_s=out.first_output_s,
                            seconds=time.perf_counter() - t_start, meta=meta)
    finally:
        if pieces is not None:
            pieces.close()
        if to_close is not None:
            to_close.close()


def _compute(session: Any, out: Any, progress: OptionalProgress) -> None:
    """Compute every block the session has complete and write its lines."""
    while session.ready:
        work = session.take()
        if work is None:
            return
        out.write(session.compute(work))
        report(progress, "stream", session.frames, session.frames)


__all__ = ["AudioStreamReader", "PREFETCH_PIECES", "PcmLayout",
           "STREAM_FORMATS", "StreamResult", "open_input", "stream_generate"]
