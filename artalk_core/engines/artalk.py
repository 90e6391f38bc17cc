"""The ``artalk`` engine: the ARTalk model (audio encoder, wav2vec2 or Mimi, + multi-scale autoregressive
motion generator, :mod:`artalk_core.model`) as a :class:`~artalk_core.engines.base.MotionEngine`.

The model is loaded once per process (:func:`load_artalk`). Audio is encoded and generated a few
4-s chunks at a time, so neither the audio, its features nor the motion is ever held whole; a
features file is read a group of chunks at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES
from artalk_core.engines.speech import DecodedSpeech, FeaturesSpeech, Speech, StreamSpeech
from artalk_core.fileio import sha256_file_cached
from artalk_core.generation import close_iterator
from artalk_core.options import ModelOptions
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import num_frames, padded_samples

if TYPE_CHECKING:
    from artalk_core.audio import Audio
    from artalk_core.model.artalk import ARTalkModel
    from artalk_core.styles import Style

ENGINE_NAME = "artalk"


@dataclass
class LoadedModel:
    """A model ready for inference and the facts recorded in what it makes."""

    model: ARTalkModel
    checkpoint_sha256: str
    config: dict[str, Any]
    device: str


@lru_cache(maxsize=2)
def _load_model_cached(checkpoint: str, mtime_ns: int, config_file: str | None, device: str) -> LoadedModel:
    from artalk_core.model.checkpoint import load_model
    from artalk_core.model.config import ModelConfig

    config = ModelConfig.from_file(config_file) if config_file else ModelConfig.released()
    model = load_model(checkpoint, config, device=device)  # the checkpoint may settle the audio encoder
    return LoadedModel(model=model, checkpoint_sha256=sha256_file_cached(checkpoint),
                       config=model.config.to_dict(), device=device)


def load_artalk(model: ModelOptions | None = None) -> LoadedModel:
    """Load (once per process) the ARTalk model of ``model``'s asset folder or files (the default
    checkpoint is ``<assets>/ARTalk_<encoder>.pt`` for the audio encoder the model config names) on
    its device. Its precision is chosen per call (the model is the same)."""
    from artalk_core.assets import checkpoint_path, config_path
    from artalk_core.device import resolve_device

    m = model or ModelOptions()
    ckpt = checkpoint_path(m.checkpoint, m.assets, model_config=m.model_config)
    cfg = config_path(m.model_config, m.assets)
    dev = str(resolve_device(m.device))
    return _load_model_cached(str(ckpt.resolve()), ckpt.stat().st_mtime_ns,
                              str(cfg.resolve()) if cfg else None, dev)


def audio_tensor(audio: Audio, device: str) -> Any:
    """The samples of ``audio`` as a torch tensor [S] on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio.samples)).to(device)


def chunk_groups(blocks: Iterator[np.ndarray], num_samples: Callable[[], int]) -> Iterator[np.ndarray]:
    """Audio blocks of ``CHUNK_SAMPLES * DEFAULT_CHUNK_BATCH`` samples (the last shorter) as model
    chunk groups float32 [G,64000], grouped as the whole-signal path groups them
    (``DEFAULT_CHUNK_BATCH`` chunks from the start) and zero-padded to ``padded_samples(S) // 64000``
    chunks in all, which is only known once the blocks have ended (``num_samples()`` is asked then).
    One block is held back so the last one is recognised."""
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH
    from artalk_core.timing import padded_samples

    done = 0
    prev: np.ndarray | None = None
    for block in blocks:
        if prev is not None:
            yield prev.reshape(-1, CHUNK_SAMPLES)  # a full block: DEFAULT_CHUNK_BATCH whole chunks
            done += DEFAULT_CHUNK_BATCH
        prev = block
    n_chunks = padded_samples(num_samples()) // CHUNK_SAMPLES
    tail = prev if prev is not None else np.zeros(0, np.float32)
    for start in range(done, n_chunks, DEFAULT_CHUNK_BATCH):
        stop = min(start + DEFAULT_CHUNK_BATCH, n_chunks)
        group = np.zeros((stop - start, CHUNK_SAMPLES), np.float32)
        piece = tail[(start - done) * CHUNK_SAMPLES:(stop - done) * CHUNK_SAMPLES]
        group.reshape(-1)[:len(piece)] = piece
        yield group


def cut_to_length(parts: Iterable[Any], length: Callable[[], int]) -> Iterator[np.ndarray]:
    """Motion parts (float32 [n,106], numpy or torch) with the last one cut so that they total
    ``length()`` frames, which is asked only once ``parts`` has ended (a stream's length is known
    then). Every part but the last lies wholly inside the length (chunks are 100 frames and only
    the last is padded), so only the last is held back."""
    done = 0
    prev: np.ndarray | None = None
    for part in parts:
        if prev is not None:
            yield prev
            done += prev.shape[0]
        prev = part.numpy() if hasattr(part, "numpy") else np.asarray(part)
    if prev is not None:
        yield prev[:max(0, length() - done)]


class ArtalkEngine:
    """The ARTalk model as a motion engine (reads audio in any form, or a features file)."""

    name = ENGINE_NAME
    inputs = frozenset({"audio", "features"})

    def __init__(self, model: ModelOptions) -> None:
        self.loaded = load_artalk(model)
        from artalk_core.model.precision import precision_options, resolve_precision

        # ``auto`` -> what runs fastest here; an explicit bf16/fp16 measured slower warns (cached)
        self.precision = resolve_precision(model.precision, self.loaded.device, self.loaded.model.config)
        self.checkpoint_sha256 = self.loaded.checkpoint_sha256
        self.options: dict[str, Any] = {"device": self.loaded.device,
                                        **precision_options(model.precision, self.precision)}

    def motion(self, speech: Speech, style: Style, progress: OptionalProgress = None) -> Iterator[np.ndarray]:
        """Raw motion blocks (one per 4-s chunk, the last cut to the speech's length)."""
        import torch

        from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH

        model, precision = self.loaded.model, self.precision
        style_t = None if style.motion is None else torch.from_numpy(style.motion).to(self.loaded.device)
        if isinstance(speech, FeaturesSpeech):
            from artalk_core.formats.features import check_features_match

            feats = speech.reader
            # A reader has the properties the check reads (formats/ declares Features only).
            check_features_match(cast(Any, feats), checkpoint_sha256=self.checkpoint_sha256,
                                 audio_dim=model.config.audio_dim, audio_encoder=model.config.audio_encoder,
                                 audio_tokens=model.config.audio_tokens)
            groups = (torch.from_numpy(g) for g in feats.iter_groups(DEFAULT_CHUNK_BATCH))
            parts = model.iter_generate(groups, style_t, progress, precision=precision, total=feats.chunks)
            return cut_to_length(parts, speech.frames)
        if isinstance(speech, DecodedSpeech):
            parts = model.iter_generate_from_audio(audio_tensor(speech.audio, self.loaded.device), style_t,
                                                   progress, precision=precision)
            return cut_to_length(parts, speech.frames)
        if not isinstance(speech, StreamSpeech):
            raise TypeError(f"the artalk engine cannot read {type(speech).__name__}")
        stream, estimate = speech.stream, speech.estimated_chunks()

        def prog(stage: str, done: int, total: int) -> None:
            report(progress, stage, done, max(total, estimate, done))

        groups = (torch.from_numpy(g) for g in chunk_groups(speech.audio_blocks(), lambda: int(stream.num_samples or 0)))
        parts = model.iter_generate_from_audio(groups, style_t, prog if progress else None, precision=precision)
        return cut_to_length(parts, speech.frames)

    def style_tensor(self, style: Style) -> Any:
        """The style clip as a tensor on the model's device (None for the default style)."""
        import torch

        return None if style.motion is None else torch.from_numpy(style.motion).to(self.loaded.device)

    def encode(self, chunks: np.ndarray) -> Any:
        """Audio chunks float32 [G,64000] -> features [G,199,C] on the model's device. Rows are
        independent (each is normalised on its own), so chunks of several streams may share a call."""
        import torch

        return self.loaded.model.encode_chunks(torch.from_numpy(np.ascontiguousarray(chunks)), precision=self.precision)

    def open_stream(self, style: Style) -> ArtalkStream:
        """A live stream: each 4-s chunk's frames as soon as its audio is in and it is generated."""
        return ArtalkStream(self, self.style_tensor(style))

    def hold_precision(self) -> Any:
        """A context keeping the generator's weights cast to this engine's precision (a server)."""
        return self.loaded.model.hold_precision(self.precision)


class ArtalkStream:
    """The model fed chunk by chunk as the audio arrives (an :class:`~artalk_core.engines.base.EngineStream`).

    :meth:`push` takes whole 64,000-sample chunks and returns their 100 frames each as soon as they
    are generated; :meth:`finish` zero-pads the last, shorter chunk and cuts its frames to the
    utterance's length. The previous chunk's context is kept between pushes (the model's generator
    is suspended in between), so the output equals ``generate`` of the whole audio bit for bit.
    Features may be computed elsewhere first (:meth:`provide`: a scheduler encoding the chunks of
    several streams in one call); they are the same numbers.
    """

    block_samples = CHUNK_SAMPLES
    lookahead_frames = 0

    def __init__(self, engine: ArtalkEngine, style_t: Any) -> None:
        self.encoder = engine
        self._feats: deque[Any] = deque()
        self._provided: Any = None
        self._chunks = 0  # chunks generated
        self._gen = engine.loaded.model.iter_generate(self._pull(), style_t, precision=engine.precision)

    def _pull(self) -> Iterator[Any]:
        while True:  # the generator is advanced only after a chunk's features were queued
            yield self._feats.popleft()

    def model_chunks(self, samples: np.ndarray, rest: np.ndarray | None = None,
                     total: int | None = None) -> np.ndarray:
        """The model chunks float32 [G,64000] that ``push(samples)`` (and then ``finish(rest,
        total)`` when ``total`` is given) will encode: whole chunks, then the zero-padded last one."""
        whole = samples.reshape(-1, CHUNK_SAMPLES)
        if total is None:
            return whole
        n_last = padded_samples(total) // CHUNK_SAMPLES - self._chunks - whole.shape[0] if total else 0
        last = np.zeros((max(0, n_last), CHUNK_SAMPLES), np.float32)
        if n_last > 0 and rest is not None:
            last.reshape(-1)[:len(rest)] = rest
        return np.concatenate([whole, last]) if last.shape[0] else whole

    def provide(self, feats: Any) -> None:
        """The features of the chunks :meth:`model_chunks` named, computed by the caller."""
        self._provided = feats

    def _features(self, chunks: np.ndarray) -> Any:
        """Features of ``chunks``: the next rows of those provided, else encoded now."""
        if self._provided is None:  # one chunk per call, as generate --stream always encoded them
            import torch

            return torch.cat([self.encoder.encode(chunks[g:g + 1]) for g in range(chunks.shape[0])])
        n = chunks.shape[0]
        if self._provided.shape[0] < n:
            raise RuntimeError(f"features of {self._provided.shape[0]} chunks were provided for {n}")
        feats, rest = self._provided[:n], self._provided[n:]
        self._provided = rest if rest.shape[0] else None
        return feats

    def _generate(self, feats: Any, valid: list[int]) -> np.ndarray:
        out = []
        for g, n in enumerate(valid):
            self._feats.append(feats[g])
            motion = next(self._gen)
            self._chunks += 1
            out.append(motion.numpy()[:n])
        return np.concatenate(out) if len(out) != 1 else out[0]

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Whole chunks float32 [k * 64000] in; their raw frames [100 k,106] out."""
        chunks = self.model_chunks(samples)
        if chunks.shape[0] == 0:
            return np.zeros((0, 106), np.float32)
        return self._generate(self._features(chunks), [CHUNK_FRAMES] * chunks.shape[0])

    def finish(self, samples: np.ndarray, total_samples: int) -> np.ndarray:
        """The last samples (fewer than a chunk) and the utterance's length: the remaining frames."""
        chunks = self.model_chunks(np.zeros(0, np.float32), samples, total_samples)
        if chunks.shape[0] == 0:
            return np.zeros((0, 106), np.float32)
        valid = num_frames(total_samples) - self._chunks * CHUNK_FRAMES
        return self._generate(self._features(chunks), [CHUNK_FRAMES] * (chunks.shape[0] - 1) + [valid])

    def close(self) -> None:
        close_iterator(self._gen)
        self._feats.clear()


__all__ = ["ArtalkEngine", "ArtalkStream", "ENGINE_NAME", "LoadedModel", "audio_tensor", "chunk_groups", "cut_to_length",
           "load_artalk"]
