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
from artalk_core.engines.base import EngineSettings
from artalk_core.engines.speech import ChunkedSpeech, DecodedSpeech, FeaturesSpeech, Speech, StreamSpeech
from artalk_core.fileio import PathLike, sha256_file_cached
from artalk_core.generation import close_iterator
from artalk_core.progress import OptionalProgress, report

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


def load_artalk(*, checkpoint: PathLike | None = None, model_config: PathLike | None = None,
                assets: PathLike | None = None, device: str = "auto") -> LoadedModel:
    """Load (once per process) the ARTalk model from the asset folder or explicit files (the default
    checkpoint is ``<assets>/ARTalk_<encoder>.pt`` for the audio encoder the model config names)."""
    from artalk_core.assets import checkpoint_path, config_path
    from artalk_core.device import resolve_device

    ckpt = checkpoint_path(checkpoint, assets, model_config=model_config)
    cfg = config_path(model_config, assets)
    dev = str(resolve_device(device))
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

    def __init__(self, settings: EngineSettings) -> None:
        self.loaded = load_artalk(checkpoint=settings.checkpoint, model_config=settings.model_config,
                                  assets=settings.assets, device=settings.device)
        from artalk_core.model.precision import precision_options, resolve_precision

        # ``auto`` -> what runs fastest here; an explicit bf16/fp16 measured slower warns (cached)
        self.precision = resolve_precision(settings.precision, self.loaded.device, self.loaded.model.config)
        self.checkpoint_sha256 = self.loaded.checkpoint_sha256
        self.options: dict[str, Any] = {"device": self.loaded.device,
                                        **precision_options(settings.precision, self.precision)}

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
        if isinstance(speech, ChunkedSpeech):
            return self._live(speech, style_t, progress)
        if not isinstance(speech, StreamSpeech):
            raise TypeError(f"the artalk engine cannot read {type(speech).__name__}")
        stream, estimate = speech.stream, speech.estimated_chunks()

        def prog(stage: str, done: int, total: int) -> None:
            report(progress, stage, done, max(total, estimate, done))

        groups = (torch.from_numpy(g) for g in chunk_groups(speech.audio_blocks(), lambda: int(stream.num_samples or 0)))
        parts = model.iter_generate_from_audio(groups, style_t, prog if progress else None, precision=precision)
        return cut_to_length(parts, speech.frames)

    def _live(self, speech: ChunkedSpeech, style_t: Any, progress: OptionalProgress) -> Iterator[np.ndarray]:
        """Each chunk's frames as soon as the chunk is generated (no block held back): a whole
        chunk gives 100 frames, the last shorter one what remains of ``speech.frames()``."""
        import torch

        lengths: deque[int] = deque()  # samples in each chunk handed to the model, not yet generated

        def chunks() -> Iterator[Any]:
            for block in speech.audio_blocks():
                lengths.append(block.shape[0])
                yield torch.from_numpy(block)

        done = 0
        motions = self.loaded.model.iter_generate_from_audio(chunks(), style_t, precision=self.precision)
        try:
            for motion in motions:
                whole = lengths.popleft() == CHUNK_SAMPLES
                valid = CHUNK_FRAMES if whole else speech.frames() - done * CHUNK_FRAMES
                done += 1
                report(progress, "stream", done, done)
                yield motion.numpy()[:valid]
        finally:
            close_iterator(motions)


__all__ = ["ArtalkEngine", "ENGINE_NAME", "LoadedModel", "audio_tensor", "chunk_groups", "cut_to_length",
           "load_artalk"]
