"""What engines read: speech in one of its forms, behind one small interface.

- :class:`DecodedSpeech`: 16 kHz samples already in memory (an :class:`~artalk_core.audio.Audio`).
- :class:`StreamSpeech`: a file decoded progressively (:class:`~artalk_core.audio.AudioStream`).
- :class:`FeaturesSpeech`: a features file from ``encode-audio`` (``kind == "features"``).

Every form knows the facts recorded in the output (``audio_sha256``, ``audio_samples``), the
number of motion frames (once its audio is read) and the warnings to give at the end (decoding
notes, silence). Live input does not come as a Speech: it is pushed into an engine's live
stream (:class:`artalk_core.engines.base.EngineStream`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from artalk_core.errors import InputError, warn
from artalk_core.timing import num_frames

if TYPE_CHECKING:
    from artalk_core.audio import Audio, AudioStream
    from artalk_core.formats.features import FeaturesReader

SILENCE_WARNING = "the audio is silent: the head will barely move"


class Speech(ABC):
    """Base of the speech forms. ``kind``: ``audio`` (samples) or ``features``."""

    kind: str = "audio"

    def audio_blocks(self) -> Iterator[np.ndarray]:
        """16 kHz mono float32 [n] blocks in order (readable once)."""
        raise InputError("this engine works from audio, not from a features file")

    @abstractmethod
    def frames(self) -> int:
        """Motion frames of the speech (ceil(S/640)); known once :meth:`audio_blocks` has ended."""

    @abstractmethod
    def facts(self) -> dict[str, str]:
        """``audio_sha256`` and ``audio_samples`` ("" where unknown), once :meth:`finish` has run."""

    def finish(self, *, stopped_early: bool = False) -> None:  # noqa: B027 (an optional hook)
        """The motion is made (or was stopped at the clip length): give the end-of-input warnings."""

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Release what the speech holds open (nothing by default)."""


class DecodedSpeech(Speech):
    """Samples in memory: facts known at once, no warnings (the caller decoded them)."""

    def __init__(self, audio: Audio) -> None:
        self.audio = audio

    def audio_blocks(self) -> Iterator[np.ndarray]:
        yield self.audio.samples

    def frames(self) -> int:
        return num_frames(len(self.audio.samples))

    def facts(self) -> dict[str, str]:
        return {"audio_sha256": self.audio.sha256, "audio_samples": str(len(self.audio.samples))}


class StreamSpeech(Speech):
    """A file decoded progressively. After an early stop :meth:`finish` decodes the rest, for the
    length, the hash and the checks."""

    def __init__(self, stream: AudioStream) -> None:
        self.stream = stream
        self._blocks = iter(stream)  # an AudioStream is read once: one iterator for the engine and finish

    def audio_blocks(self) -> Iterator[np.ndarray]:
        return self._blocks

    def estimated_chunks(self) -> int:
        """Model chunks the container announces (0 if it does not say): for progress only."""
        from artalk_core.constants import CHUNK_SAMPLES

        n = self.stream.expected_samples
        return -(-n // CHUNK_SAMPLES) if n else 0

    def frames(self) -> int:
        return num_frames(int(self.stream.num_samples or 0))

    def facts(self) -> dict[str, str]:
        return {"audio_sha256": self.stream.sha256, "audio_samples": str(self.stream.num_samples)}

    def finish(self, *, stopped_early: bool = False) -> None:  # noqa: B027 (an optional hook)
        for _ in self._blocks:  # after an early stop: decode the rest for its length and checks
            pass
        stream_warnings(self.stream)


def stream_warnings(stream: AudioStream) -> None:
    """The decoding notes and the silence notice of a stream read to the end."""
    for note in stream.decode_warnings:
        warn(note)
    if stream.is_silent():
        warn(SILENCE_WARNING)


class FeaturesSpeech(Speech):
    """A features file (audio already encoded by the model): facts from its metadata."""

    kind = "features"

    def __init__(self, reader: FeaturesReader) -> None:
        self.reader = reader

    def frames(self) -> int:
        return self.reader.frames

    def facts(self) -> dict[str, str]:
        meta = self.reader.meta
        return {"audio_sha256": meta.get("audio_sha256", ""), "audio_samples": meta.get("audio_samples", "")}


__all__ = ["DecodedSpeech", "FeaturesSpeech", "SILENCE_WARNING", "Speech", "StreamSpeech",
           "stream_warnings"]
