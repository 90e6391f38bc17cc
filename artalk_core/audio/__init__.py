"""Audio: decode anything FFmpeg reads to 16 kHz mono float32 (as the reference reads it), write WAV.

- :mod:`artalk_core.audio.decode`: :func:`load_audio`, :func:`audio_from_array`, :class:`Audio`.
- :mod:`artalk_core.audio.stream`: :func:`iter_audio` / :class:`AudioStream`, the same numbers
  decoded block by block.
- :mod:`artalk_core.audio.resample`: torchaudio's resampler, bit for bit, fed piece by piece.
- :mod:`artalk_core.audio.wav`: the one WAV parser and writer.
"""

from __future__ import annotations

from artalk_core.audio.decode import Audio, audio_from_array, is_silent, load_audio
from artalk_core.audio.resample import resample, to_mono
from artalk_core.audio.stream import AudioStream, iter_audio
from artalk_core.audio.wav import read_wav_metadata, write_wav

__all__ = ["Audio", "AudioStream", "audio_from_array", "is_silent", "iter_audio", "load_audio", "read_wav_metadata",
           "resample", "to_mono", "write_wav"]
