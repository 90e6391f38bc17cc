#!/usr/bin/env python
"""An agent loop with a live talking head: the agent's replies are spoken (offline text-to-speech,
espeak-ng through `artalk tts`'s library function), the speech goes into one live stream as it is
produced, in small pieces as a streaming TTS would give it, and the head's motion frames come back
while the agent is still speaking, for whatever draws the head (a game engine, three.js, a video
call) to apply.

    artalk serve --engine energy &                          # or with the model: artalk serve
    python examples/agent_loop.py ws://127.0.0.1:8961/live  # prints the jaw opening as frames arrive
    python examples/agent_loop.py ws://127.0.0.1:8961/live -o talk.ndjson   # also keep the motion stream

The motion stream written with -o is a motion file like any other: `artalk render talk.ndjson -o
talk.mp4`, `artalk export talk.ndjson -o talk.glb`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from artalk_core.live import LiveClient

PIECE_S = 0.2  # the TTS hands out its audio 200 ms at a time


async def agent_replies() -> AsyncIterator[str]:
    """Stands in for an agent (an LLM behind a chat loop): its turns, one sentence at a time."""
    for text in ("Hello! I am a talking head, driven live by artalk.",
                 "Every word I say turns into motion while I am still speaking.",
                 "Goodbye for now."):
        await asyncio.sleep(0.1)  # thinking
        yield text


def speak(text: str) -> np.ndarray:
    """Text -> 16-bit PCM samples at 16 kHz (espeak-ng, offline)."""
    from artalk_core.audio import load_audio
    from artalk_core.tts import tts

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "reply.wav"
        tts(text, output=wav)
        return np.round(load_audio(wav).samples * 32768).clip(-32768, 32767).astype(np.int16)


async def main(url: str, out: Path | None, *, fast: bool = False) -> None:
    async with LiveClient(url, style="default") as stream:
        print(f"stream open: engine {stream.header['meta']['engine']}, frames {stream.header['delay_frames']} "
              f"frame(s) after their speech", file=sys.stderr)

        async def talk() -> None:
            async for text in agent_replies():
                pcm = await asyncio.to_thread(speak, text)  # TTS off the event loop
                print(f"agent says: {text}", file=sys.stderr)
                step = int(16000 * PIECE_S)
                for i in range(0, len(pcm), step):
                    await stream.send(pcm[i:i + step])
                    if not fast:
                        await asyncio.sleep(PIECE_S)  # as fast as it is spoken
            await stream.end()

        speaking = asyncio.ensure_future(talk())
        lines = [json.dumps(stream.header)]
        async for line in stream.lines():
            lines.append(line)
            frame = json.loads(line)
            if "motion" in frame and frame["t"] % 25 == 0:  # once a second; a renderer would take every frame
                jaw = frame["motion"][103]
                print(f"t={frame['t'] / 25:5.1f} s  jaw {'#' * int(jaw * 100):<30} {jaw:.3f}", file=sys.stderr)
        await speaking
        print(f"done: {stream.end_line['frames'] if stream.end_line else 0} frames", file=sys.stderr)
        if out is not None:
            out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the live server, e.g. ws://127.0.0.1:8961/live")
    parser.add_argument("-o", "--output", type=Path, help="also write the motion stream (NDJSON) here")
    parser.add_argument("--fast", action="store_true", help="send the speech at once, not at the pace of speaking")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.output, fast=args.fast))
