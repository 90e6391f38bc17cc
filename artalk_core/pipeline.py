"""The stages behind the CLI commands: encode-audio, generate, smooth.

Each function takes its options as the objects of :mod:`artalk_core.options` (``model``: which model
where; ``motion``: what to make), returns what it wrote (or made), and raises only typed
:mod:`artalk_core.errors`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import CHUNK_SAMPLES, FPS
from artalk_core.engines.artalk import LoadedModel, audio_tensor, chunk_groups, load_artalk
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, check_not_input, input_file, provenance, sha256_file, spooled
from artalk_core.generation import (
    MotionOutput,
    MotionSink,
    check_input_kind,
    check_raw_options,
    generation_options,
    model_inputs,
    motion_metadata,
    resolve_clip_length,
    run_engine,
    save_motion,
    spooled_model,
)
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.progress import OptionalProgress, report

if TYPE_CHECKING:
    from artalk_core.audio import Audio, AudioStream
    from artalk_core.engines.speech import Speech
    from artalk_core.formats.features import Features
    from artalk_core.formats.motion import Motion

Source = str | PathLike | bytes


def encode_audio(audio: Source | Audio, *, output: PathLike | None = None, model: ModelOptions | None = None,
                 progress: OptionalProgress = None) -> Features:
    """Run the model's audio encoder (wav2vec2 or Mimi) over 4-s chunks of ``audio``; write a features
    file if ``output``.

    Returns features [n_chunks, F, C] (199 x 1024 for wav2vec2, 50 x 512 for Mimi) with metadata tying
    them to the audio encoder, the checkpoint and the audio.
    """
    from artalk_core.audio import Audio

    m = model or ModelOptions()
    check_not_input({"-o": output}, model_inputs(m, input=audio, role="AUDIO"))
    # stdin: spooled to a temp file, read in blocks; side inputs given as pipes: read once, into temp files
    with contextlib.ExitStack() as spools, _input_file(audio) as (source, label):
        decoded = source if isinstance(source, Audio) else _open_stream(source, label)
        return _encode_audio(decoded, output=output, model=spooled_model(spools, m), progress=progress)


def _encode_audio(audio: Audio | AudioStream, *, output: PathLike | None, model: ModelOptions,
                  progress: OptionalProgress) -> Features:
    """:func:`encode_audio` of decoded audio or an open stream."""
    from artalk_core.audio import Audio
    from artalk_core.formats.features import Features, FeaturesWriter, write_features
    from artalk_core.model.precision import precision_options, resolve_precision
    from artalk_core.timing import num_frames

    loaded = load_artalk(model)
    requested, precision = model.precision, resolve_precision(model.precision, loaded.device, loaded.model.config)

    def metadata(audio_sha: str, n_samples: int, n_chunks: int, dim: int) -> dict[str, str]:
        return {
            **provenance("artalk encode-audio", options={"device": loaded.device,
                                                                 **precision_options(requested, precision)},
                         inputs={"audio": audio_sha, "checkpoint": loaded.checkpoint_sha256}),
            "audio_samples": str(n_samples),
            "frames": str(num_frames(n_samples)),
            "chunks": str(n_chunks),
            "feature_dim": str(dim),
            "audio_encoder": loaded.model.config.audio_encoder,
            "model_config": json.dumps(loaded.config, sort_keys=True),
        }

    if isinstance(audio, Audio):
        clip = audio
        feats = loaded.model.encode_audio(audio_tensor(clip, loaded.device), progress=progress, precision=precision)
        feats_np = feats.detach().float().cpu().numpy()
        meta = metadata(clip.sha256, len(clip.samples), feats_np.shape[0], feats_np.shape[-1])
        if output is not None:
            write_features(output, feats_np, meta)
        return Features(data=feats_np, meta=meta)

    import torch

    from artalk_core.engines.speech import StreamSpeech

    # Decoded, encoded and written a few chunks at a time: nothing grows with the length but the
    # file (and, without an output, the returned features).
    stream = audio
    speech = StreamSpeech(stream)
    estimate = speech.estimated_chunks()
    dim = loaded.model.config.audio_dim
    parts: list[np.ndarray] = []
    with contextlib.ExitStack() as stack:
        writer = (stack.enter_context(FeaturesWriter(output, dim, loaded.model.config.audio_tokens))
                  if output is not None else None)
        done = 0
        report(progress, "encode audio", 0, estimate)
        for group in chunk_groups(speech.audio_blocks(), lambda: int(stream.num_samples or 0)):
            feats = loaded.model.encode_chunks(torch.from_numpy(group), precision=precision)
            arr = feats.detach().float().cpu().numpy()
            if writer is not None:
                writer.write(arr)
            else:
                parts.append(arr)
            done += group.shape[0]
            report(progress, "encode audio", done, max(done, estimate))
        speech.finish()
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

    if isinstance(source, Audio):
        yield source, None
        return
    with input_file(source) as (path, _sha, name):
        yield path, name


def _open_stream(source: Source, label: str | None = None) -> AudioStream:
    """The audio decoded progressively, in blocks of ``DEFAULT_CHUNK_BATCH`` model chunks."""
    from artalk_core.audio import iter_audio
    from artalk_core.model.artalk import DEFAULT_CHUNK_BATCH

    return iter_audio(source, block=CHUNK_SAMPLES * DEFAULT_CHUNK_BATCH, label=label)


def _input_kind(source: Source) -> str:
    from artalk_core.formats import sniff_kind

    return sniff_kind(source)


def _speech(source: Any, kind: str, label: str | None, stack: contextlib.ExitStack) -> Speech:
    """The speech form of an input: decoded audio as is, a features file opened for reading in
    groups, any other file decoded progressively."""
    from artalk_core.audio import Audio
    from artalk_core.engines.speech import DecodedSpeech, FeaturesSpeech, StreamSpeech

    if isinstance(source, Audio):
        return DecodedSpeech(source)
    if kind == "features":
        from artalk_core.formats.features import FeaturesReader

        return FeaturesSpeech(stack.enter_context(FeaturesReader(source, label=label)))
    return StreamSpeech(_open_stream(source, label))


def generate(input: Source | Audio, *, output: PathLike | None = None, raw: bool = False,
             motion: MotionOptions | None = None, model: ModelOptions | None = None,
             progress: OptionalProgress = None) -> Motion:
    """Speech (an audio file or a features file) -> FLAME motion [T,106] at 25 fps, as ``motion``
    says (style, engine, post-processing) with the model of ``model``.

    Without ``raw`` the reference post-processing is applied (Savitzky-Golay, clip to
    ``clip_length`` frames (None = 750, 0 = all), ``fix_pose``, jaw y/z zeroed); with ``raw`` the
    model output is kept for :func:`smooth`. ``motion.engine``: a registered engine's name
    (:func:`artalk_core.engines.motion_engines`) or an engine object.

    Memory does not grow with the length: the audio (or features file) is read, the motion made,
    post-processed (causally, the same bits as offline) and written a block at a time, and
    generation stops once ``clip_length`` frames are final (the rest of the audio is only
    decoded, for its length and checks). With ``output`` the returned motion's ``data`` is a
    copy-on-write memory map of the frames written, not an in-memory copy.
    """
    mo, m = motion or MotionOptions(), model or ModelOptions()
    check_not_input({"-o": output}, model_inputs(m, input=input, style=mo.style))
    from artalk_core.audio import Audio
    from artalk_core.engines import check_engine, create_engine
    from artalk_core.styles import resolve_style

    if isinstance(mo.engine, str):
        check_engine(mo.engine)
    check_raw_options(raw=raw, motion=mo)
    # stdin: spooled to a temp file, read in blocks; side inputs given as pipes: read once, into temp files
    with contextlib.ExitStack() as spools, _input_file(input) as (source, label):
        m = spooled_model(spools, m)
        style = spooled(spools, mo.style)
        kind = "audio" if isinstance(source, Audio) else _input_kind(source)
        if kind in ("motion", "motion-stream", "reference-pt", "vertices", "safetensors"):
            raise InputError(f"generate takes speech (an audio/video file) or a features file from encode-audio; "
                             f"this is a {kind} file")
        sty = resolve_style(style, assets=m.assets, style_start=mo.style_start)
        clip_n = None if raw else resolve_clip_length(mo.clip_length)
        eng = create_engine(mo.engine, m, mo)
        check_input_kind(eng, "features" if kind == "features" else "audio")
        options = generation_options(eng, sty, motion=mo, raw=raw)
        with contextlib.ExitStack() as stack:  # files opened while setting up, closed however it ends
            speech = _speech(source, kind, label, stack)
            with MotionSink(MotionOutput(output), raw=raw, clip_length=clip_n, fix_pose=mo.fix_pose) as sink:
                run_engine(eng, speech, sty, sink, progress)
                return sink.finish(motion_metadata(eng, sty, options=options, raw=raw, clip_length=clip_n,
                                                   fix_pose=mo.fix_pose, audio=speech.facts()))


def smooth(input: Source, *, output: PathLike | None = None, clip_length: int | None = None,
           fix_pose: bool = False, force: bool = False) -> Motion:
    """The reference post-processing of a raw motion file (Savitzky-Golay, clip, fix-pose, jaw y/z = 0).

    A motion file on disk is read, smoothed and written block by block (memory does not grow
    with its length); the result equals :func:`artalk_core.postprocess.postprocess` of the whole.
    """
    from artalk_core.formats.motion import MotionReader
    from artalk_core.postprocess import postprocess_metadata

    check_not_input({"-o": output}, {"MOTION": input})
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
            with MotionSink(MotionOutput(output), raw=False, clip_length=clip_n, fix_pose=fix_pose) as sink:
                for block in motion.iter_blocks(4096):
                    sink.push(block)
                    if sink.full:
                        break
                return sink.finish(meta)


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


__all__ = ["FPS", "LoadedModel", "default_output", "encode_audio", "generate", "load_artalk", "resolve_clip_length",
           "save_motion", "smooth"]
