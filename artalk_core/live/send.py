"""``artalk live``: stream an audio file or stdin to a live server, and write the motion stream it answers.

The audio leaves at real-time pace (as if spoken; ``fast`` sends as fast as the server reads), in
100-ms messages, and the motion-stream lines are written as they arrive to stdout or a file
(atomically), so the live path composes with ``artalk render -`` and ``artalk export -``.

What is sent keeps the offline numbers: a file is decoded here exactly as ``artalk generate``
decodes it (16 kHz mono float32, sent as ``f32le``); stdin is a WAV stream (or raw 16 kHz s16le
PCM) whose samples go as they are, at their own rate and channel count (16-bit PCM as ``s16le``,
other sample formats converted to ``f32le`` as FFmpeg converts them), and the server resamples
them as files are resampled. So the frames equal ``artalk generate --clip-length 0`` of the same audio.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from artalk_core.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from artalk_core.fileio import PathLike, is_stdio

MESSAGE_SECONDS: float = 0.1
"""Audio per message: 100 ms."""


@dataclass
class LiveResult:
    """What :func:`live_stream` did: frames received, seconds of audio sent and of wall time, and
    (real-time pace only) the lag of each block: its frames' arrival after its last audio left."""

    frames: int
    audio_seconds: float
    seconds: float
    lags: list[float] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Source:
    """Audio to send: the start message's format fields, the pieces of bytes, bytes per second."""

    fields: dict[str, Any]
    pieces: Iterator[bytes]
    byte_rate: int
    bytes_per_16k: float  # bytes sent per 16 kHz sample (to find when a frame's audio left)


def _file_source(path: PathLike) -> _Source:
    from artalk_core.audio.stream import iter_audio

    stream = iter_audio(path, block=int(SAMPLE_RATE * MESSAGE_SECONDS))
    pieces = (np.ascontiguousarray(b, dtype="<f4").tobytes() for b in stream)
    return _Source({"sample_rate": SAMPLE_RATE, "format": "f32le", "channels": 1}, pieces, 4 * SAMPLE_RATE, 4.0)


def _stdin_source(f: BinaryIO, name: str, stream_format: str) -> _Source:
    from artalk_core.audio.pcm import pcm_to_channels
    from artalk_core.streaming import AudioStreamReader

    reader = AudioStreamReader(f, stream_format=stream_format, name=name)
    layout = reader.read_header()
    fb = layout.frame_bytes
    step = max(fb, int(layout.rate * MESSAGE_SECONDS) * fb)

    def pieces() -> Iterator[bytes]:
        carry = b""
        for data in reader.pieces():
            buf = carry + data
            usable = len(buf) - len(buf) % step
            for i in range(0, usable, step):
                yield _convert(buf[i:i + step])
            carry = buf[usable:]
        usable = len(carry) - len(carry) % fb
        if usable:
            yield _convert(carry[:usable])

    def _convert(raw: bytes) -> bytes:
        if layout.sample_format == "s16":
            return raw
        x = pcm_to_channels(raw, layout.sample_format, layout.channels)  # [C, n] float32, FFmpeg's conversion
        return np.ascontiguousarray(x.T, dtype="<f4").tobytes()

    s16 = layout.sample_format == "s16"
    out_fb = (2 if s16 else 4) * layout.channels
    return _Source({"sample_rate": layout.rate, "format": "s16le" if s16 else "f32le", "channels": layout.channels},
                   pieces(), out_fb * layout.rate, out_fb * layout.rate / SAMPLE_RATE)


def _sent_at(sent: list[tuple[int, float]], need_bytes: float) -> float | None:
    for total, when in sent:
        if total >= need_bytes:
            return when
    return sent[-1][1] if sent else None


def live_stream(url: str, input: PathLike | BinaryIO, output: PathLike | BinaryIO = "-", *,
                stream_format: str = "wav", fast: bool = False, **options: Any) -> LiveResult:
    """Stream ``input`` (a file, ``-`` or a binary file object) to the live server at ``url`` and
    write the motion stream to ``output`` (see the module docstring). ``options``: the start
    message's (``style``, ``engine``, ``clip_length``, ``fix_pose``, ``raw``, ``seed``, ``token``).
    Raises :class:`~artalk_core.live.client.LiveError` when the server refuses or fails."""
    import sys

    if isinstance(input, (str, os.PathLike)):
        source = _stdin_source(sys.stdin.buffer, "<stdin>", stream_format) if is_stdio(input) else _file_source(input)
    else:
        source = _stdin_source(input, getattr(input, "name", "<stream>"), stream_format)
    return asyncio.run(_run(url, source, output, fast=fast, options=options))


async def _run(url: str, source: _Source, output: PathLike | BinaryIO, *, fast: bool,
               options: dict[str, Any]) -> LiveResult:
    from artalk_core.generation import StreamLines
    from artalk_core.live.client import LiveClient

    t_start = time.perf_counter()
    client = LiveClient(url, **source.fields, **options)
    async with client:
        out = StreamLines(output, json.dumps(client.header), t_start)
        result = LiveResult(frames=0, audio_seconds=0.0, seconds=0.0, header=client.header)
        sender = asyncio.ensure_future(_send(client, source, fast))
        try:
            block = int(client.header.get("block_frames", 100))
            delay = int(client.header.get("delay_frames", 0))
            # post-processed: frames 0..4 also wait for the first whole 9-frame smoothing window
            first = 5 + delay if client.header.get("meta", {}).get("postprocessed") == "true" else 0
            last_need = -1
            async for line in client.lines():
                out.write([line])
                if line.startswith('{"t"'):
                    result.frames += 1
                    t = result.frames - 1
                    need = -(-max(t + 1 + delay, first) // block) * block
                    if not fast and need != last_need:
                        last_need = need
                        left = _sent_at(client.sent, need * SAMPLES_PER_FRAME * source.bytes_per_16k)
                        if left is not None:
                            result.lags.append(max(0.0, time.perf_counter() - left))
            await sender
        except BaseException as e:
            sender.cancel()
            if isinstance(e, Exception) and out.started:  # a reader of the stream learns why it stops
                out.write([json.dumps({"error": str(e)})])
            out.close(ok=False)
            raise
    out.close(ok=True)
    result.end = client.end_line or {}
    result.audio_seconds = client.bytes_sent / source.byte_rate
    result.seconds = time.perf_counter() - t_start
    return result


async def _send(client: Any, source: _Source, fast: bool) -> None:
    """Send every piece (read in a thread: stdin blocks), paced by the audio's own clock unless ``fast``."""
    start = time.perf_counter()
    pieces = iter(source.pieces)
    end = object()
    while True:
        piece = await asyncio.to_thread(next, pieces, end)
        if piece is end:
            break
        assert isinstance(piece, bytes)
        if not fast:
            due = start + client.bytes_sent / source.byte_rate
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
        await client.send(piece)
    await client.end()


def lag_summary(lags: list[float]) -> str:
    """``lag p50 X ms, p95 Y ms`` (empty without lags)."""
    if not lags:
        return ""
    p50, p95 = np.percentile(lags, [50, 95])
    return f"lag p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


__all__ = ["LiveResult", "MESSAGE_SECONDS", "lag_summary", "live_stream"]
