"""The stages behind the CLI commands: encode-audio, generate, smooth.

Each function takes keyword options named like the CLI flags, returns what it wrote (or made), and
raises only typed :mod:`artalk_core.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from artalk_core.constants import DEFAULT_CLIP_LENGTH, FPS
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


def resolve_clip_length(clip_length: Optional[int]) -> Optional[int]:
    """None -> the reference default (750 frames); 0 -> no limit."""
    if clip_length is None:
        return DEFAULT_CLIP_LENGTH
    if clip_length < 0:
        raise InputError(f"--clip-length must be >= 0, got {clip_length}")
    return clip_length or None


@dataclass
class LoadedModel:
    """A model ready for inference and the facts recorded in what it makes."""

    model: "ARTalkModel"
    checkpoint_sha256: str
    config: dict[str, Any]
    device: str


@lru_cache(maxsize=2)
def _load_model_cached(checkpoint: str, mtime_ns: int, config_file: Optional[str], device: str) -> LoadedModel:
    from artalk_core.model.checkpoint import load_model
    from artalk_core.model.config import ModelConfig

    config = ModelConfig.from_file(config_file) if config_file else ModelConfig.released()
    model = load_model(checkpoint, config, device=device)
    return LoadedModel(model=model, checkpoint_sha256=sha256_file_cached(checkpoint),
                       config=config.to_dict(), device=device)


def load_artalk(*, checkpoint: Optional[PathLike] = None, model_config: Optional[PathLike] = None,
                assets: Optional[PathLike] = None, device: str = "auto") -> LoadedModel:
    """Load (once per process) the ARTalk model from the asset folder or explicit files."""
    from artalk_core.assets import checkpoint_path, config_path
    from artalk_core.device import resolve_device

    ckpt = checkpoint_path(checkpoint, assets)
    cfg = config_path(model_config, assets)
    dev = str(resolve_device(device))
    return _load_model_cached(str(ckpt.resolve()), ckpt.stat().st_mtime_ns,
                              str(cfg.resolve()) if cfg else None, dev)


def _audio_tensor(audio: "Audio", device: str) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio.samples)).to(device)


def encode_audio(audio: Union[Source, "Audio"], *, output: Optional[PathLike] = None, checkpoint: Optional[PathLike] = None,
                 model_config: Optional[PathLike] = None, assets: Optional[PathLike] = None,
                 device: str = "auto", precision: str = "fp32", progress: OptionalProgress = None) -> "Features":
    """Run the wav2vec2 audio encoder over 4-s chunks of ``audio``; write a features file if ``output``.

    Returns features [n_chunks, 199, C] with metadata tying them to the checkpoint and the audio.
    """
    from artalk_core.formats.features import Features, write_features
    from artalk_core.timing import num_frames

    from artalk_core.audio import Audio

    stream = None if isinstance(audio, Audio) else _open_stream(_read_stdin_once(audio))
    loaded = load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)
    if stream is None:
        clip = _as_audio(audio)
        feats = loaded.model.encode_audio(_audio_tensor(clip, loaded.device), progress=progress, precision=precision)
        feats_np = feats.detach().float().cpu().numpy()
        audio_sha, n_samples = clip.sha256, len(clip.samples)
    else:
        import torch

        from artalk_core.model.artalk import precision_context

        # Decoded a few chunks at a time: only the features (the output) grow with the length.
        precision_context(precision, loaded.model._param.device)  # reject an unknown precision now
        estimate = _estimated_chunks(stream)
        parts, done = [], 0
        report(progress, "encode audio", 0, estimate)
        for group in _chunk_groups(stream):
            feats = loaded.model.encode_chunks(torch.from_numpy(group), precision=precision)
            parts.append(feats.detach().float().cpu().numpy())
            done += group.shape[0]
            report(progress, "encode audio", done, max(done, estimate))
        _stream_notes(stream)
        feats_np = parts[0] if len(parts) == 1 else np.concatenate(parts)
        del parts
        audio_sha, n_samples = stream.sha256, int(stream.num_samples or 0)
    meta = {
        **provenance("artalk encode-audio", options={"device": loaded.device, "precision": precision},
                     inputs={"audio": audio_sha, "checkpoint": loaded.checkpoint_sha256}),
        "audio_samples": str(n_samples),
        "frames": str(num_frames(n_samples)),
        "chunks": str(feats_np.shape[0]),
        "feature_dim": str(feats_np.shape[-1]),
        "model_config": json.dumps(loaded.config, sort_keys=True),
    }
    if output is not None:
        write_features(output, feats_np, meta)
    return Features(data=feats_np, meta=meta)


def _read_stdin_once(source: Source) -> Source:
    """``-`` becomes the bytes of stdin (read once: it is sniffed, then decoded)."""
    from artalk_core.fileio import is_stdio, read_input_bytes

    if not isinstance(source, bytes) and is_stdio(source):
        return read_input_bytes(source)
    return source


def _as_audio(source: Any) -> "Audio":
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


def _open_stream(source: Source) -> "AudioStream":
    """The audio decoded progressively, in blocks of ``DEFAULT_CHUNK_BATCH`` model chunks."""
    from artalk_core.audio import iter_audio
    from artalk_core.constants import CHUNK_SAMPLES
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH

    return iter_audio(source, block=CHUNK_SAMPLES * DEFAULT_CHUNK_BATCH)


def _stream_notes(stream: "AudioStream") -> None:
    """:func:`_as_audio`'s warnings (decoding notes, silence) for a stream read to the end."""
    from artalk_core.errors import warn

    for note in stream.decode_warnings:
        warn(note)
    if stream.is_silent():
        warn("the audio is silent: the head will barely move")


def _estimated_chunks(stream: "AudioStream") -> int:
    """Model chunks the container announces (0 if it does not say): for progress only."""
    from artalk_core.constants import CHUNK_SAMPLES

    n = stream.expected_samples
    return -(-n // CHUNK_SAMPLES) if n else 0


def _chunk_groups(stream: "AudioStream") -> Iterator[np.ndarray]:
    """The stream's blocks as model chunk groups float32 [G,64000], grouped as the whole-signal path
    groups them (``DEFAULT_CHUNK_BATCH`` chunks from the start) and zero-padded to
    ``padded_samples(S) // 64000`` chunks in all, which is only known once the stream has ended.
    One block is held back so the last one is recognised."""
    from artalk_core.constants import CHUNK_SAMPLES
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH
    from artalk_core.timing import padded_samples

    done = 0
    prev: Optional[np.ndarray] = None
    for block in stream:
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


def _generate_streamed(model: "ARTalkModel", stream: "AudioStream", style_t: Any, *,
                       progress: OptionalProgress, precision: str) -> np.ndarray:
    """Raw motion float32 [num_frames(S),106] from a progressively decoded stream: the model's
    streaming path (:meth:`ARTalkModel.iter_generate_from_audio` over chunk groups), cut to the
    frame count known at the end; equal to :meth:`ARTalkModel.generate_from_audio` on the whole signal."""
    import torch

    from artalk_core.timing import num_frames

    estimate = _estimated_chunks(stream)

    def prog(stage: str, done: int, total: int) -> None:
        report(progress, stage, done, max(total, estimate, done))

    groups = (torch.from_numpy(g) for g in _chunk_groups(stream))
    parts = [m.numpy() for m in model.iter_generate_from_audio(groups, style_t, prog if progress else None,
                                                                 precision=precision)]
    n_frames = num_frames(int(stream.num_samples or 0))
    out = np.concatenate(parts)[:n_frames] if parts else np.zeros((0, model.config.motion_dim), np.float32)
    return np.ascontiguousarray(out, dtype=np.float32)


def _input_kind(source: Source) -> str:
    from artalk_core.formats import sniff_kind

    return sniff_kind(source)


def generate(input: Union[Source, "Audio"], *, style: Union[None, str, np.ndarray, "Style"] = None,
             style_start: int = 0, output: Optional[PathLike] = None, raw: bool = False, clip_length: Optional[int] = None, fix_pose: bool = False, engine: str = "artalk",
             checkpoint: Optional[PathLike] = None, model_config: Optional[PathLike] = None,
             assets: Optional[PathLike] = None, device: str = "auto", precision: str = "fp32", seed: int = 0,
             progress: OptionalProgress = None) -> "Motion":
    """Speech (an audio file or a features file) -> FLAME motion [T,106] at 25 fps.

    Without ``raw`` the reference post-processing is applied (Savitzky-Golay, clip to
    ``clip_length`` frames (None = 750, 0 = all), ``fix_pose``, jaw y/z zeroed); with ``raw`` the
    model output is kept for :func:`smooth`.
    """
    from artalk_core.formats.motion import Motion
    from artalk_core.postprocess import postprocess, postprocess_metadata
    from artalk_core.styles import resolve_style

    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    if raw and (clip_length is not None or fix_pose):
        raise InputError("--clip-length and --fix-pose apply at post-processing: drop --raw, "
                         "or pass them to `artalk smooth`")
    from artalk_core.audio import Audio

    source = _read_stdin_once(input) if not isinstance(input, Audio) else input
    kind = "audio" if isinstance(source, Audio) else _input_kind(source)
    if kind in ("motion", "motion-stream", "reference-pt", "vertices", "safetensors"):
        raise InputError(f"generate takes speech (an audio/video file) or a features file from encode-audio; "
                         f"this is a {kind} file")
    sty = resolve_style(style, assets=assets, style_start=style_start)
    meta: dict[str, str] = {"engine": engine, "style": sty.label, "style_sha256": sty.sha256}
    options: dict[str, Any] = {"engine": engine, "style": sty.label, "style_start": style_start, "raw": raw,
                               "clip_length": clip_length, "fix_pose": fix_pose}

    if engine == "energy":
        from artalk_core.engines.energy import energy_motion

        if kind == "features":
            raise InputError("the energy engine works from audio, not from a features file")
        report(progress, "energy engine", 0, 1)
        if isinstance(source, Audio):
            clip = _as_audio(source)
            motion_raw = energy_motion(clip.samples, seed=seed)
            audio_sha, n_samples = clip.sha256, len(clip.samples)
        else:
            from artalk_core.engines.energy import energy_motion_from_blocks

            stream = _open_stream(source)
            motion_raw = energy_motion_from_blocks(stream, seed=seed)
            _stream_notes(stream)
            audio_sha, n_samples = stream.sha256, int(stream.num_samples or 0)
        report(progress, "energy engine", 1, 1)
        options["seed"] = seed
        meta.update(audio_sha256=audio_sha, audio_samples=str(n_samples), checkpoint_sha256="")
        inputs = {"audio": audio_sha}
    else:
        import torch

        loaded = load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)
        style_t = None if sty.motion is None else torch.from_numpy(sty.motion).to(loaded.device)
        if kind == "features":
            from artalk_core.formats.features import check_features_match, read_features

            feats = read_features(source)
            check_features_match(feats, checkpoint_sha256=loaded.checkpoint_sha256,
                                 audio_dim=loaded.model.config.audio_dim)
            features = torch.as_tensor(np.asarray(feats.data), dtype=torch.float32, device=loaded.device)
            audio_sha, audio_samples = feats.meta.get("audio_sha256", ""), feats.meta.get("audio_samples", "")
            motion_raw = loaded.model.generate(features, feats.frames, style_motion=style_t, progress=progress,
                                               precision=precision)
        elif isinstance(source, Audio):
            clip = _as_audio(source)
            audio_sha, audio_samples = clip.sha256, str(len(clip.samples))
            motion_raw = loaded.model.generate_from_audio(_audio_tensor(clip, loaded.device), style_t,
                                                          progress=progress, precision=precision)
        else:
            # Decoded, encoded and generated a few chunks at a time: memory does not grow with length.
            stream = _open_stream(source)
            motion_raw = _generate_streamed(loaded.model, stream, style_t, progress=progress, precision=precision)
            _stream_notes(stream)
            audio_sha, audio_samples = stream.sha256, str(stream.num_samples)
        if not isinstance(motion_raw, np.ndarray):
            motion_raw = motion_raw.detach().float().cpu().numpy()
        options.update(device=loaded.device, precision=precision)
        meta.update(audio_sha256=audio_sha, audio_samples=audio_samples,
                    checkpoint_sha256=loaded.checkpoint_sha256)
        inputs = {"audio": audio_sha, "checkpoint": loaded.checkpoint_sha256}

    if raw:
        data_out = motion_raw
        meta.update(postprocessed="false", smoothed="false", clip_length="", fix_pose="false")
    else:
        clip_n = resolve_clip_length(clip_length)
        data_out = postprocess(motion_raw, clip_length=clip_n, fix_pose=fix_pose)
        meta.update(postprocess_metadata(clip_length=clip_n, fix_pose=fix_pose))
    meta = {**provenance("artalk generate", options=options, inputs=inputs), **meta}
    if output is not None:
        save_motion(output, data_out, meta)
    return Motion(data=np.asarray(data_out, dtype=np.float32), meta=meta)


def smooth(input: Source, *, output: Optional[PathLike] = None, clip_length: Optional[int] = None,
           fix_pose: bool = False, force: bool = False) -> "Motion":
    """The reference post-processing of a raw motion file (Savitzky-Golay, clip, fix-pose, jaw y/z = 0)."""
    from artalk_core.fileio import sha256_bytes, sha256_file
    from artalk_core.formats.motion import Motion, read_motion
    from artalk_core.postprocess import postprocess, postprocess_metadata

    source = _read_stdin_once(input)
    motion = read_motion(source)  # a path keeps its name in error messages
    source_sha = sha256_bytes(source) if isinstance(source, bytes) else sha256_file(source)
    if motion.meta.get("smoothed") == "true" and not force:
        raise InputError("this motion is already smoothed (post-processed); smoothing twice blurs it: "
                         "pass --force to smooth it again")
    clip_n = resolve_clip_length(clip_length)
    out = postprocess(motion.data, clip_length=clip_n, fix_pose=fix_pose)
    carried = {k: v for k, v in motion.meta.items()
               if k in ("engine", "style", "style_sha256", "audio_sha256", "audio_samples", "checkpoint_sha256")}
    meta = {
        **provenance("artalk smooth", options={"clip_length": clip_length, "fix_pose": fix_pose, "force": force},
                     inputs={"motion": source_sha}),
        **carried,
        **postprocess_metadata(clip_length=clip_n, fix_pose=fix_pose),
    }
    if output is not None:
        save_motion(output, out, meta)
    return Motion(data=np.asarray(out, dtype=np.float32), meta=meta)


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
