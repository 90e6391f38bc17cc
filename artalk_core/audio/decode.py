"""Audio input: decode anything FFmpeg reads to 16 kHz mono float32.

Decoding uses PyAV (FFmpeg), so wav, flac, mp3, m4a/aac, ogg/opus and the audio track of a video
(mp4, mkv, webm...) all work, at any sample rate and channel count. torchaudio is not needed.

Conventions (the reference tool's, which reads audio with ``torchaudio.load``):

- Integer PCM becomes float by dividing by its full scale (int16 / 32768), so a 16 kHz mono PCM16
  WAV loads bit-exactly as the reference read it.
- Each channel is resampled to 16 kHz as ``torchaudio.transforms.Resample`` does it
  (:mod:`artalk_core.audio.resample`), then the channels are averaged.

Decoding is progressive: :func:`_decoded_pieces` yields decoded frames and :func:`_mono_16k`
resamples them as they come, so :func:`load_audio` and :class:`artalk_core.audio.stream.AudioStream`
compute the same numbers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.audio.resample import BlockResampler, resample, to_mono
from artalk_core.audio.wav import wav_missing_bytes
from artalk_core.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.errors import AudioError, InputError
from artalk_core.fileio import PathLike, is_stdio, read_input_bytes, sha256_bytes, sha256_file

# Full-scale divisors of FFmpeg's integer sample formats (u8 is offset binary).
_INT_SCALE: dict[str, float] = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0, "u8": 128.0}


@dataclass(eq=False)
class Audio:
    """Decoded speech, ready for the model.

    ``samples`` is float32 [S], mono, at ``sample_rate`` (always 16000 after loading); values are
    nominally in [-1, 1]. ``sha256`` is the hash of the source file's bytes (for arrays, of the
    16 kHz float32 samples). ``decode_warnings`` holds one-line notes a caller may show (a file
    that ends early, damaged packets replaced by silence); decoding still succeeded.
    """

    samples: np.ndarray
    sample_rate: int
    sha256: str
    source_rate: int
    source_channels: int
    source_format: str
    decode_warnings: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @property
    def num_samples(self) -> int:
        return int(len(self.samples))


# ----------------------------------------------------------------------------------------------
# Sample conversion


def _frame_to_float(frame: Any) -> np.ndarray:
    """One decoded PyAV AudioFrame as float32 [C, n] in [-1, 1]."""
    fmt = frame.format.name.rstrip("p")
    channels = frame.layout.nb_channels
    raw = frame.to_ndarray()
    if not frame.format.is_planar:
        # Packed audio comes back as [1, n*C], interleaved.
        raw = raw.reshape(-1, channels).T
    if fmt in ("flt", "dbl"):
        return raw.astype(np.float32, copy=False)
    if fmt == "u8":
        return ((raw.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if fmt in _INT_SCALE:
        # int16 / 32768 is exact in float32; wider integers lose only bits far below audibility.
        return (raw.astype(np.float64) / _INT_SCALE[fmt]).astype(np.float32)
    raise AudioError(f"unsupported decoded sample format {frame.format.name!r}")


# ----------------------------------------------------------------------------------------------
# Decoding


def _describe(source: PathLike | bytes) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<audio bytes>"
    return "<stdin>" if is_stdio(source) else str(source)


def _open_source(source: PathLike | bytes, name: str) -> tuple[Any, str]:
    """Return (something av.open accepts, sha256) after the cheap existence/emptiness checks."""
    if isinstance(source, (bytes, bytearray, memoryview)) or is_stdio(source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            data = read_input_bytes(source)
        if not data:
            raise AudioError(f"audio input {name} is empty (0 bytes)")
        return io.BytesIO(data), sha256_bytes(data)
    p = Path(source)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"audio input is a folder, not a file: {p}")
    if not p.is_file():
        # A pipe or device (/dev/stdin, <(...)): its size is unknown until read.
        try:
            data = p.read_bytes()
        except OSError as e:
            raise AudioError(f"cannot read audio file {p}: {e.strerror}") from e
        if not data:
            raise AudioError(f"audio input {p} is empty (0 bytes)")
        return io.BytesIO(data), sha256_bytes(data)
    if p.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {p}")
    try:
        digest = sha256_file(p)
    except OSError as e:
        raise AudioError(f"cannot read audio file {p}: {e.strerror}") from e
    return str(p), digest


@dataclass
class _DecodeState:
    """What :func:`_decoded_pieces` learnt about a file while decoding it."""

    runs: list[list[int]] = field(default_factory=list)  # [rate, samples] per constant-rate run
    channels: int = 1  # of the last decoded frame (for the silence that replaces a damaged packet)
    damaged: int = 0
    ended_early: str | None = None


def _open_container(src: Any, name: str, formats: tuple[str, ...] | None = None) -> tuple[Any, Any, int, int, str]:
    """(container, best audio stream, source rate, source channels, "container/codec"); raises AudioError.

    ``formats``: the FFmpeg demuxers allowed (``format_whitelist``; None: any). A server opening
    files it did not choose needs it: a playlist (hls, concat) is a file that makes FFmpeg read
    other files, a server's own among them.
    """
    import av

    options = {"format_whitelist": ",".join(formats)} if formats else None
    try:
        container = av.open(src, mode="r", container_options=options)
    except av.FFmpegError as e:
        if formats and isinstance(e, av.ArgumentError):  # what FFmpeg says for "Format not on whitelist"
            raise AudioError(f"{name} is not one of the audio or video formats taken here "
                             f"({', '.join(formats)})") from e
        raise AudioError(f"{name} is not an audio or video file FFmpeg can read ({_reason(e)})") from e
    try:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            what = f"only {', '.join(kinds)}" if kinds else "no streams"
            raise AudioError(f"{name} has no audio track (it holds {what}); give a file with speech")
        stream = container.streams.best("audio") or container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:
            raise AudioError(f"{name}: FFmpeg has no decoder for its audio codec"
                             "; convert it to WAV, FLAC or MP3 first")
        src_rate = int(ctx.sample_rate or 0)
        src_channels = int(ctx.layout.nb_channels) if ctx.layout is not None else 0
        source_format = f"{container.format.name}/{ctx.name}"
    except BaseException:
        container.close()
        raise
    return container, stream, src_rate, src_channels, source_format


def _decoded_pieces(container: Any, stream: Any, src_rate: int, st: _DecodeState) -> Iterator[tuple[int, np.ndarray]]:
    """Decode ``stream`` progressively: yields (rate, float32 [C, n]) per decoded frame.

    Damaged packets become silence of their duration so later speech stays in sync; an error while
    reading the container ends decoding with what was read so far (noted in ``st``).
    """
    import av

    layout = getattr(stream.codec_context, "layout", None)
    st.channels = int(layout.nb_channels) if layout is not None and layout.nb_channels else 1

    def add(rate: int, n: int) -> None:
        if st.runs and st.runs[-1][0] == rate:
            st.runs[-1][1] += n
        else:
            st.runs.append([rate, n])

    def take(frames: Any) -> Iterator[tuple[int, np.ndarray]]:
        for fr in frames:
            if fr.samples == 0:
                continue
            x = _frame_to_float(fr)
            st.channels = x.shape[0]
            add(int(fr.sample_rate), x.shape[1])
            yield int(fr.sample_rate), x

    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except av.FFmpegError as e:
            st.ended_early = _reason(e)
            break
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker; flushed below
        try:
            frames = stream.decode(packet)
        except av.FFmpegError:
            st.damaged += 1
            rate = st.runs[-1][0] if st.runs else src_rate
            if packet.duration and packet.time_base and rate:
                gap = int(round(float(packet.duration * packet.time_base) * rate))
                if 0 < gap < rate * 10:
                    add(rate, gap)
                    yield rate, np.zeros((st.channels, gap), np.float32)
            continue
        yield from take(frames)
    try:
        frames = stream.decode(None)
    except av.FFmpegError:
        frames = []
    yield from take(frames)


def _decode_notes(stream: Any, name: str, st: _DecodeState) -> list[str]:
    """The warnings of a finished decode; raises AudioError when nothing could be decoded."""
    warnings: list[str] = []
    decoded = sum(n / r for r, n in st.runs if r)
    if st.ended_early is not None and decoded > 0:
        warnings.append(f"{name}: reading stopped at damaged data ({st.ended_early}); "
                        f"using the first {decoded:.2f} s")
    elif stream.duration and stream.time_base and decoded > 0:
        expected = float(stream.duration * stream.time_base)
        if expected - decoded > max(0.1, 0.02 * expected):
            warnings.append(f"{name} seems cut short: its header says {expected:.2f} s "
                            f"but only {decoded:.2f} s could be decoded")
    if st.damaged and decoded > 0:
        warnings.append(f"{name}: {st.damaged} damaged audio packet(s) replaced by silence")
    if decoded == 0:
        why = (f" ({st.ended_early})" if st.ended_early else
               (f" ({st.damaged} damaged packets)" if st.damaged else ""))
        raise AudioError(f"{name} contains no decodable audio{why}; the file may be empty, "
                         "truncated or corrupt")
    return warnings


def _mono_16k(pieces: Iterator[tuple[int, np.ndarray]], name: str) -> Iterator[np.ndarray]:
    """(rate, float32 [C, n]) pieces -> 16 kHz mono float32 pieces: each channel resampled, then
    averaged (the reference's order). A change of rate or channel count inside the file starts a
    new resampler; the numbers never depend on how the decoder cut the pieces."""
    res: BlockResampler | None = None
    for rate, x in pieces:
        if res is None or res.rate != rate or res.channels != x.shape[0]:
            if res is not None:
                yield to_mono(res.finish())
            try:
                res = BlockResampler(rate, x.shape[0])
            except ValueError as e:
                raise AudioError(f"{name}: {e}") from e
        y = res.push(x)
        if y.shape[1]:
            yield to_mono(y)
    if res is not None:
        yield to_mono(res.finish())


def _end_notes(st: _DecodeState, stream: Any, name: str, source_format: str, src: Any) -> list[str]:
    """Every warning of a finished decode (raises AudioError when nothing could be decoded)."""
    warnings = _decode_notes(stream, name, st)
    if source_format.startswith("wav/") and not warnings:
        missing = wav_missing_bytes(src)
        if missing:
            warnings.append(f"{name} seems cut short: its header announces {missing} more bytes of "
                            "audio than the file holds; using the part that is there")
    if len(st.runs) > 1:
        warnings.append(f"{name}: the sample rate changes inside the file; each part was resampled")
    return warnings


def _reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).strip().rstrip(".")


def _non_finite(samples: np.ndarray, name: str, offset: int = 0) -> AudioError | None:
    """The error for 16 kHz samples holding NaN or Inf (None when all are finite).

    ``offset``: samples before these ones, so the message says where the first bad one is. Its
    position, not a count: counting needs the whole signal decoded, and a stream must stop at once.
    """
    bad = ~np.isfinite(samples)
    if not bad.any():
        return None
    at = (offset + int(np.argmax(bad))) / SAMPLE_RATE
    return AudioError(f"{name} contains NaN or infinite samples (the first at {at:.2f} s); re-export the audio")


def _finish(samples: np.ndarray, name: str, min_frames: int) -> np.ndarray:
    """Check finiteness and minimum length of 16 kHz mono samples."""
    error = _non_finite(samples, name)
    if error is not None:
        raise error
    need = max(int(min_frames), 0) * SAMPLES_PER_FRAME
    if len(samples) == 0 or len(samples) < need:
        raise AudioError(f"{name} is too short: {len(samples) / SAMPLE_RATE * 1000:.1f} ms of audio, "
                         f"at least {need / SAMPLE_RATE * 1000:.0f} ms ({min_frames} motion frame(s)) needed")
    return samples


def load_audio(source: PathLike | bytes, *, min_frames: int = 1) -> Audio:
    """Decode an audio (or video) file to 16 kHz mono float32.

    ``source`` is a path, ``-`` (all of stdin) or the file's raw bytes. Raises :class:`AudioError`
    (one line naming the input) when the file is missing, empty, not audio, has no audio track,
    has no decodable samples, contains NaN/Inf, or is shorter than ``min_frames`` motion frames
    (640 samples each). A file cut mid-stream decodes its valid part and says so in
    ``Audio.decode_warnings``. Silence is not an error (see :func:`is_silent`).

    Returns an :class:`Audio` whose ``samples`` is float32 [S] with S = ceil(S_src * 16000 / rate)
    (torchaudio's length).
    """
    name = _describe(source)
    src, digest = _open_source(source, name)
    container, stream, src_rate, src_channels, source_format = _open_container(src, name)
    st = _DecodeState()
    with container:
        parts = list(_mono_16k(_decoded_pieces(container, stream, src_rate, st), name))
        warnings = _end_notes(st, stream, name, source_format, src)
    samples = (parts[0] if len(parts) == 1 else np.concatenate(parts)) if parts else np.zeros(0, np.float32)
    src_rate = src_rate or st.runs[0][0]
    samples = _finish(np.ascontiguousarray(samples, dtype=np.float32), name, min_frames)
    return Audio(samples=samples, sample_rate=SAMPLE_RATE, sha256=digest, source_rate=src_rate,
                 source_channels=src_channels, source_format=source_format,
                 decode_warnings=tuple(warnings))


def audio_from_array(samples: Any, sample_rate: int, *, min_frames: int = 1) -> Audio:
    """Build an :class:`Audio` from an in-memory array (for the Python API).

    ``samples`` is [S] mono or 2-D multichannel, [S, C] or [C, S] (the shorter axis is taken as
    channels). Float arrays are used as they are; int16/int32/uint8 arrays are scaled by their full
    scale (int16 / 32768). Each channel is resampled to 16 kHz, then the channels are averaged. ``sha256`` is
    the hash of the resulting float32 samples. Raises :class:`AudioError` on empty, NaN/Inf, or
    too-short input and :class:`InputError` on a bad shape or rate.
    """
    if hasattr(samples, "detach"):  # a torch tensor; avoid importing torch here
        samples = samples.detach().cpu().numpy()
    arr = np.asarray(samples)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim == 2:
        if arr.shape[0] > arr.shape[1]:
            arr = arr.T
    else:
        raise InputError(f"audio array must be [S] or [S, C], got shape {tuple(arr.shape)}")
    name = "audio array"
    if arr.size == 0:
        raise AudioError(f"{name} is empty")
    kind = arr.dtype.kind
    if kind == "f":
        x = arr.astype(np.float32)
    elif kind == "i" and arr.dtype.itemsize in (1, 2, 4, 8):
        x = (arr.astype(np.float64) / float(2 ** (8 * arr.dtype.itemsize - 1))).astype(np.float32)
    elif kind == "u" and arr.dtype.itemsize == 1:
        x = ((arr.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    elif kind == "b":
        raise InputError(f"audio array must be numeric, got dtype {arr.dtype}")
    else:
        raise InputError(f"unsupported audio array dtype {arr.dtype}; use float32 or int16")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{name} contains NaN or infinite samples")
    try:
        mono = to_mono(resample(x, int(sample_rate)))
    except ValueError as e:
        raise InputError(f"{name}: {e}") from e
    mono = _finish(np.ascontiguousarray(mono, dtype=np.float32), name, min_frames)
    return Audio(samples=mono, sample_rate=SAMPLE_RATE, sha256=sha256_bytes(mono.tobytes()),
                 source_rate=int(sample_rate), source_channels=int(x.shape[0]), source_format="array")


def is_silent(samples: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of ``samples`` (float [S], full scale 1.0) is below ``threshold_db`` dBFS.

    Empty input counts as silent. Callers use it to warn that the animation will be still.
    """
    x = np.asarray(samples)
    if x.size == 0:
        return True
    step = 1 << 20  # sum in slices: no float64 copy of an hour of audio
    energy = sum(float(np.dot(part, part)) for part in
                 (x[i:i + step].astype(np.float64) for i in range(0, x.size, step)))
    rms = math.sqrt(energy / x.size)
    return rms <= 0.0 or 20.0 * math.log10(rms) < threshold_db


