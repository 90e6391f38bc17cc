"""The stages behind the CLI commands: encode-audio, generate, smooth.

Each function takes keyword options named like the CLI flags, returns what it wrote (or made), and
raises only typed :mod:`artalk_core.errors`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from artalk_core.constants import DEFAULT_CLIP_LENGTH, FPS, MOTION_DIM
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, provenance, sha256_file_cached
from artalk_core.progress import OptionalProgress, report

if TYPE_CHECKING:
    from artalk_core.audio import Audio, AudioStream
    from artalk_core.formats.features import Features
    from artalk_core.formats.motion import Motion
    from artalk_core.model.artalk import ARTalkModel
    from artalk_core.styles import Style

ENGINES = ("artalk", "energy")
Source = Union[str, PathLike, bytes]


def resolve_clip_length(clip_length: int | None) -> int | None:
    """None -> the reference default (750 frames); 0 -> no limit."""
    if clip_length is None:
        return DEFAULT_CLIP_LENGTH
    if clip_length < 0:
        raise InputError(f"--clip-length must be >= 0, got {clip_length}")
    return clip_length or None


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
    model = load_model(checkpoint, config, device=device)
    return LoadedModel(model=model, checkpoint_sha256=sha256_file_cached(checkpoint),
                       config=config.to_dict(), device=device)


def load_artalk(*, checkpoint: PathLike | None = None, model_config: PathLike | None = None,
                assets: PathLike | None = None, device: str = "auto") -> LoadedModel:
    """Load (once per process) the ARTalk model from the asset folder or explicit files."""
    from artalk_core.assets import checkpoint_path, config_path
    from artalk_core.device import resolve_device

    ckpt = checkpoint_path(checkpoint, assets)
    cfg = config_path(model_config, assets)
    dev = str(resolve_device(device))
    return _load_model_cached(str(ckpt.resolve()), ckpt.stat().st_mtime_ns,
                              str(cfg.resolve()) if cfg else None, dev)


def _audio_tensor(audio: Audio, device: str) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio.samples)).to(device)


def encode_audio(audio: Source | Audio, *, output: PathLike | None = None, checkpoint: PathLike | None = None,
                 model_config: PathLike | None = None, assets: PathLike | None = None,
                 device: str = "auto", precision: str = "fp32", progress: OptionalProgress = None) -> Features:
    """Run the wav2vec2 audio encoder over 4-s chunks of ``audio``; write a features file if ``output``.

    Returns features [n_chunks, 199, C] with metadata tying them to the checkpoint and the audio.
    """
    from artalk_core.audio import Audio
    from artalk_core.model.precision import check_precision

    check_precision(precision)  # before any work
    with _input_file(audio) as (source, label):  # stdin: spooled to a temp file, read in blocks
        stream = None if isinstance(source, Audio) else _open_stream(source, label)
        return _encode_audio(audio if stream is None else stream, output=output, checkpoint=checkpoint,
                             model_config=model_config, assets=assets, device=device, precision=precision,
                             progress=progress)


def _encode_audio(audio: Audio | AudioStream, *, output: PathLike | None, checkpoint: PathLike | None,
                  model_config: PathLike | None, assets: PathLike | None, device: str, precision: str,
                  progress: OptionalProgress) -> Features:
    """:func:`encode_audio` of decoded audio or an open stream."""
    from artalk_core.audio import Audio
    from artalk_core.formats.features import Features, FeaturesWriter, write_features
    from artalk_core.model.precision import precision_options, resolve_precision
    from artalk_core.timing import num_frames

    stream = None if isinstance(audio, Audio) else audio
    loaded = load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)
    requested, precision = precision, resolve_precision(precision, loaded.device, loaded.model.config)

    def metadata(audio_sha: str, n_samples: int, n_chunks: int, dim: int) -> dict[str, str]:
        return {
            **provenance("artalk encode-audio", options={"device": loaded.device,
                                                                 **precision_options(requested, precision)},
                         inputs={"audio": audio_sha, "checkpoint": loaded.checkpoint_sha256}),
            "audio_samples": str(n_samples),
            "frames": str(num_frames(n_samples)),
            "chunks": str(n_chunks),
            "feature_dim": str(dim),
            "model_config": json.dumps(loaded.config, sort_keys=True),
        }

    if stream is None:
        clip = _as_audio(audio)
        feats = loaded.model.encode_audio(_audio_tensor(clip, loaded.device), progress=progress, precision=precision)
        feats_np = feats.detach().float().cpu().numpy()
        meta = metadata(clip.sha256, len(clip.samples), feats_np.shape[0], feats_np.shape[-1])
        if output is not None:
            write_features(output, feats_np, meta)
        return Features(data=feats_np, meta=meta)

    import torch

    # Decoded, encoded and written a few chunks at a time: nothing grows with the length but the
    # file (and, without an output, the returned features).
    estimate = _estimated_chunks(stream)
    dim = loaded.model.config.audio_dim
    parts: list[np.ndarray] = []
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(FeaturesWriter(output, dim)) if output is not None else None
        done = 0
        report(progress, "encode audio", 0, estimate)
        for group in _chunk_groups(iter(stream), stream):
            feats = loaded.model.encode_chunks(torch.from_numpy(group), precision=precision)
            arr = feats.detach().float().cpu().numpy()
            if writer is not None:
                writer.write(arr)
            else:
                parts.append(arr)
            done += group.shape[0]
            report(progress, "encode audio", done, max(done, estimate))
        _stream_notes(stream)
        meta = metadata(stream.sha256, int(stream.num_samples or 0), done, dim)
        if writer is not None:
            writer.finish(meta)
            return Features(data=writer.map_rows(), meta=meta)
    return Features(data=parts[0] if len(parts) == 1 else np.concatenate(parts), meta=meta)


@contextlib.contextmanager
def _input_file(source: Any) -> Iterator[tuple[Any, str | None]]:
    """Yield (source, name for messages): decoded :class:`Audio` as it is, anything else as a file
    (:func:`artalk_core.fileio.input_file`: stdin and bytes spooled to a temp file), so it is
    sniffed and then read in blocks like a path."""
    from artalk_core.audio import Audio
    from artalk_core.fileio import input_file

    if isinstance(source, Audio):
        yield source, None
        return
    with input_file(source) as (path, _sha, name):
        yield path, name


def _as_audio(source: Any) -> Audio:
    """An already decoded :class:`Audio` as is; anything else decoded to 16 kHz mono (with its
    decoding notes and a silence notice passed on as warnings)."""
    from artalk_core.audio import Audio, is_silent, load_audio
    from artalk_core.errors import warn

    if isinstance(source, Audio):
        return source
    clip = load_audio(source)
    for note in clip.decode_warnings:
        warn(note)
    if is_silent(clip.samples):
        warn("the audio is silent: the head will barely move")
    return clip


def _open_stream(source: Source, label: str | None = None) -> AudioStream:
    """The audio decoded progressively, in blocks of ``DEFAULT_CHUNK_BATCH`` model chunks."""
    from artalk_core.audio import iter_audio
    from artalk_core.constants import CHUNK_SAMPLES
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH

    return iter_audio(source, block=CHUNK_SAMPLES * DEFAULT_CHUNK_BATCH, label=label)


def _stream_notes(stream: AudioStream) -> None:
    """:func:`_as_audio`'s warnings (decoding notes, silence) for a stream read to the end."""
    from artalk_core.errors import warn

    for note in stream.decode_warnings:
        warn(note)
    if stream.is_silent():
        warn("the audio is silent: the head will barely move")


def _estimated_chunks(stream: AudioStream) -> int:
    """Model chunks the container announces (0 if it does not say): for progress only."""
    from artalk_core.constants import CHUNK_SAMPLES

    n = stream.expected_samples
    return -(-n // CHUNK_SAMPLES) if n else 0


def _chunk_groups(blocks: Iterator[np.ndarray], stream: AudioStream) -> Iterator[np.ndarray]:
    """The stream's blocks as model chunk groups float32 [G,64000], grouped as the whole-signal path
    groups them (``DEFAULT_CHUNK_BATCH`` chunks from the start) and zero-padded to
    ``padded_samples(S) // 64000`` chunks in all, which is only known once the stream has ended.
    ``blocks``: the stream's iterator. One block is held back so the last one is recognised."""
    from artalk_core.constants import CHUNK_SAMPLES
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH
    from artalk_core.timing import padded_samples

    done = 0
    prev: np.ndarray | None = None
    for block in blocks:
        if prev is not None:
            yield prev.reshape(-1, CHUNK_SAMPLES)  # a full block: DEFAULT_CHUNK_BATCH whole chunks
            done += DEFAULT_CHUNK_BATCH
        prev = block
    n_chunks = padded_samples(int(stream.num_samples or 0)) // CHUNK_SAMPLES
    tail = prev if prev is not None else np.zeros(0, np.float32)
    for start in range(done, n_chunks, DEFAULT_CHUNK_BATCH):
        stop = min(start + DEFAULT_CHUNK_BATCH, n_chunks)
        group = np.zeros((stop - start, CHUNK_SAMPLES), np.float32)
        piece = tail[(start - done) * CHUNK_SAMPLES:(stop - done) * CHUNK_SAMPLES]
        group.reshape(-1)[:len(piece)] = piece
        yield group


def _cut(parts: Iterator[Any], length: Callable[[], int]) -> Iterator[np.ndarray]:
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


class _MotionSink:
    """Where generated frames go: post-processed causally (:class:`StreamingPostprocessor`, the
    same bits as offline) unless raw, then written progressively to an artalk motion file, or
    gathered (no output, or the reference ``.pt`` format, which is written whole)."""

    def __init__(self, output: PathLike | None, *, raw: bool, clip_length: int | None, fix_pose: bool) -> None:
        from artalk_core.postprocess import StreamingPostprocessor

        self.post = None if raw else StreamingPostprocessor(clip_length=clip_length, fix_pose=fix_pose)
        self.output = output
        self._parts: list[np.ndarray] = []
        self._writer: Any = None
        if output is not None and not str(output).lower().endswith(".pt"):
            from artalk_core.formats.motion import MotionWriter

            self._writer = MotionWriter(output)

    @property
    def full(self) -> bool:
        """True once the clip length is reached: later frames cannot change the output."""
        return self.post is not None and self.post.full

    def _take(self, frames: np.ndarray) -> None:
        if frames.shape[0] == 0:
            return
        if self._writer is not None:
            self._writer.write(frames)
        else:
            self._parts.append(np.array(frames, dtype=np.float32))

    def push(self, raw: np.ndarray) -> None:
        self._take(raw if self.post is None else self.post.push(raw))

    def finish(self, meta: dict[str, str]) -> Motion:
        """Flush the post-processing, write the file (if any) with ``meta``; the motion made."""
        from artalk_core.formats.motion import Motion

        if self.post is not None:
            self._take(self.post.flush())
        if self._writer is not None:
            self._writer.finish(meta)
            return Motion(data=self._writer.map_frames(), meta=meta)
        data = (np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]) if self._parts \
            else np.zeros((0, MOTION_DIM), np.float32)
        self._parts = []
        if self.output is not None:
            save_motion(self.output, data, meta)
        return Motion(data=data, meta=meta)

    def __enter__(self) -> _MotionSink:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._writer is not None:
            self._writer.__exit__(exc_type, exc, tb)


def _input_kind(source: Source) -> str:
    from artalk_core.formats import sniff_kind

    return sniff_kind(source)


def generate(input: Source | Audio, *, style: None | str | np.ndarray | Style = None,
             style_start: int = 0, output: PathLike | None = None, raw: bool = False, clip_length: int | None = None, fix_pose: bool = False, engine: str = "artalk",
             checkpoint: PathLike | None = None, model_config: PathLike | None = None,
             assets: PathLike | None = None, device: str = "auto", precision: str = "fp32", seed: int = 0,
             progress: OptionalProgress = None) -> Motion:
    """Speech (an audio file or a features file) -> FLAME motion [T,106] at 25 fps.

    Without ``raw`` the reference post-processing is applied (Savitzky-Golay, clip to
    ``clip_length`` frames (None = 750, 0 = all), ``fix_pose``, jaw y/z zeroed); with ``raw`` the
    model output is kept for :func:`smooth`.

    Memory does not grow with the length: the audio (or features file) is read, the motion made,
    post-processed (causally, the same bits as offline) and written a block at a time, and
    generation stops once ``clip_length`` frames are final (the rest of the audio is only
    decoded, for its length and checks). With ``output`` the returned motion's ``data`` is a
    copy-on-write memory map of the frames written, not an in-memory copy.
    """
    from artalk_core.model.precision import check_precision
    from artalk_core.postprocess import postprocess_metadata
    from artalk_core.styles import resolve_style
    from artalk_core.timing import num_frames

    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    check_precision(precision)  # before any work
    if raw and (clip_length is not None or fix_pose):
        raise InputError("--clip-length and --fix-pose apply at post-processing: drop --raw, "
                         "or pass them to `artalk smooth`")
    from artalk_core.audio import Audio

    with _input_file(input) as (source, label):  # stdin: spooled to a temp file, read in blocks
        kind = "audio" if isinstance(source, Audio) else _input_kind(source)
        if kind in ("motion", "motion-stream", "reference-pt", "vertices", "safetensors"):
            raise InputError(f"generate takes speech (an audio/video file) or a features file from encode-audio; "
                             f"this is a {kind} file")
        sty = resolve_style(style, assets=assets, style_start=style_start)
        meta: dict[str, str] = {"engine": engine, "style": sty.label, "style_sha256": sty.sha256}
        options: dict[str, Any] = {"engine": engine, "style": sty.label, "style_start": style_start, "raw": raw,
                                   "clip_length": clip_length, "fix_pose": fix_pose}
        clip_n = None if raw else resolve_clip_length(clip_length)
        facts: dict[str, str] = {}  # audio_sha256 / audio_samples, final once the frames are all made
        after: list[Callable[[], None]] = []  # run when the frames end (or stop at the clip length)

        with contextlib.ExitStack() as stack:  # files opened while setting up, closed however it ends
            # Each engine gives an iterator of raw motion blocks [n,106]; they are post-processed and written
            # as they come, so neither the audio, its features nor the motion is ever held whole.
            blocks: Iterator[np.ndarray]
            if engine == "energy":
                from artalk_core.engines.energy import iter_energy_motion

                if kind == "features":
                    raise InputError("the energy engine works from audio, not from a features file")
                report(progress, "energy engine", 0, 1)
                if isinstance(source, Audio):
                    clip = _as_audio(source)
                    blocks = iter_energy_motion([clip.samples], seed=seed)
                    facts.update(audio_sha256=clip.sha256, audio_samples=str(len(clip.samples)))
                else:
                    stream = _open_stream(source, label)
                    blocks = iter_energy_motion(stream, seed=seed)

                    def stream_facts(stream: AudioStream = stream) -> None:
                        _stream_notes(stream)
                        facts.update(audio_sha256=stream.sha256, audio_samples=str(stream.num_samples))

                    after.append(stream_facts)
                after.append(lambda: report(progress, "energy engine", 1, 1))
                options["seed"] = seed
                meta["checkpoint_sha256"] = ""
            else:
                import torch

                from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH
                from artalk_core.model.precision import precision_options, resolve_precision

                loaded = load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)
                model = loaded.model
                requested, precision = precision, resolve_precision(precision, loaded.device, model.config)
                style_t = None if sty.motion is None else torch.from_numpy(sty.motion).to(loaded.device)
                if kind == "features":
                    from artalk_core.formats.features import FeaturesReader, check_features_match

                    feats = stack.enter_context(FeaturesReader(source, label=label))
                    check_features_match(feats, checkpoint_sha256=loaded.checkpoint_sha256,
                                         audio_dim=model.config.audio_dim)
                    n_frames = feats.frames
                    groups = (torch.from_numpy(g) for g in feats.iter_groups(DEFAULT_CHUNK_BATCH))
                    parts = model.iter_generate(groups, style_t, progress, precision=precision, total=feats.chunks)
                    blocks = _cut(parts, lambda: n_frames)
                    facts.update(audio_sha256=feats.meta.get("audio_sha256", ""),
                                 audio_samples=feats.meta.get("audio_samples", ""))
                elif isinstance(source, Audio):
                    clip = _as_audio(source)
                    n_samples = len(clip.samples)
                    parts = model.iter_generate_from_audio(_audio_tensor(clip, loaded.device), style_t, progress,
                                                           precision=precision)
                    blocks = _cut(parts, lambda: num_frames(n_samples))
                    facts.update(audio_sha256=clip.sha256, audio_samples=str(n_samples))
                else:
                    stream = _open_stream(source, label)
                    audio_blocks = iter(stream)
                    estimate = _estimated_chunks(stream)

                    def prog(stage: str, done: int, total: int) -> None:
                        report(progress, stage, done, max(total, estimate, done))

                    groups = (torch.from_numpy(g) for g in _chunk_groups(audio_blocks, stream))
                    parts = model.iter_generate_from_audio(groups, style_t, prog if progress else None, precision=precision)
                    blocks = _cut(parts, lambda: num_frames(int(stream.num_samples or 0)))

                    def finish_stream(stream: AudioStream = stream, rest: Iterator[np.ndarray] = audio_blocks) -> None:
                        for _ in rest:  # after an early stop: decode the rest for its length and checks
                            pass
                        _stream_notes(stream)
                        facts.update(audio_sha256=stream.sha256, audio_samples=str(stream.num_samples))

                    after.append(finish_stream)
                options.update(device=loaded.device, **precision_options(requested, precision))
                meta["checkpoint_sha256"] = loaded.checkpoint_sha256

            with _MotionSink(output, raw=raw, clip_length=clip_n, fix_pose=fix_pose) as sink:
                try:
                    for block in blocks:
                        sink.push(block)
                        if sink.full:  # the rest of the audio cannot change the clip (generation is causal)
                            break
                finally:
                    close = getattr(blocks, "close", None)
                    if close is not None:
                        close()
                for step in after:
                    step()
                meta.update(facts)
                if raw:
                    meta.update(postprocessed="false", smoothed="false", clip_length="", fix_pose="false")
                else:
                    meta.update(postprocess_metadata(clip_length=clip_n, fix_pose=fix_pose))
                inputs = {"audio": facts.get("audio_sha256", "")}
                if engine != "energy":
                    inputs["checkpoint"] = meta["checkpoint_sha256"]
                meta = {**provenance("artalk generate", options=options, inputs=inputs), **meta}
                return sink.finish(meta)


def smooth(input: Source, *, output: PathLike | None = None, clip_length: int | None = None,
           fix_pose: bool = False, force: bool = False) -> Motion:
    """The reference post-processing of a raw motion file (Savitzky-Golay, clip, fix-pose, jaw y/z = 0).

    A motion file on disk is read, smoothed and written block by block (memory does not grow
    with its length); the result equals :func:`artalk_core.postprocess.postprocess` of the whole.
    """
    from artalk_core.fileio import sha256_file
    from artalk_core.formats.motion import MotionReader
    from artalk_core.postprocess import postprocess_metadata

    with _input_file(input) as (source, label):  # stdin: spooled to a temp file, read in blocks
        clip_n = resolve_clip_length(clip_length)
        with MotionReader(source, label=label) as motion:  # a path keeps its name in error messages
            if motion.meta.get("smoothed") == "true" and not force:
                raise InputError("this motion is already smoothed (post-processed); smoothing twice blurs it: "
                                 "pass --force to smooth it again")
            source_sha = sha256_file(source)
            carried = {k: v for k, v in motion.meta.items()
                       if k in ("engine", "style", "style_sha256", "audio_sha256", "audio_samples", "checkpoint_sha256")}
            meta = {
                **provenance("artalk smooth", options={"clip_length": clip_length, "fix_pose": fix_pose, "force": force},
                             inputs={"motion": source_sha}),
                **carried,
                **postprocess_metadata(clip_length=clip_n, fix_pose=fix_pose),
            }
            with _MotionSink(output, raw=False, clip_length=clip_n, fix_pose=fix_pose) as sink:
                for block in motion.iter_blocks(4096):
                    sink.push(block)
                    if sink.full:
                        break
                return sink.finish(meta)


def save_motion(path: PathLike, data: np.ndarray, meta: dict[str, str]) -> None:
    """Write motion as ours (safetensors with metadata), or as the reference tool's ``.pt`` (a bare
    float32 [T,106] tensor, which keeps no metadata) when ``path`` ends in ``.pt``."""
    from artalk_core.formats.motion import write_motion, write_reference_motion

    if str(path).lower().endswith(".pt"):
        from artalk_core.errors import warn

        write_reference_motion(path, data)
        warn(f"{path}: the reference .pt format keeps no metadata (style, engine, hashes); "
             f"use .safetensors to keep them")
    else:
        write_motion(path, data, meta)


def default_output(input: Source, suffix: str) -> Path:
    """``speech.wav`` -> ``speech<suffix>`` in the current folder (stdin -> ``stdin<suffix>``)."""
    if isinstance(input, bytes) or str(input) == "-":
        return Path(f"stdin{suffix}")
    name = Path(input).name
    for ext in (".motion.safetensors", ".features.safetensors", ".safetensors", ".pt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    else:
        name = Path(name).stem
    return Path(f"{name}{suffix}")


__all__ = ["ENGINES", "FPS", "LoadedModel", "default_output", "encode_audio", "generate", "load_artalk",
           "resolve_clip_length", "smooth"]
