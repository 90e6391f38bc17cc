"""Generation written once: an engine's raw motion blocks -> post-processing -> a writer.

``artalk generate`` (:func:`artalk_core.pipeline.generate`, a motion file or memory) is
:func:`run_engine` into a :class:`MotionSink`; the live paths (``generate --stream``,
``artalk serve``: :class:`artalk_core.live.session.LiveSession`) push an engine stream's blocks
into the same sink, writing motion-stream lines. The sink post-processes causally
(:class:`~artalk_core.postprocess.StreamingPostprocessor`, the same bits as offline) unless raw,
and the engine is stopped once the clip length is reached (generation is causal: the rest of the
speech cannot change the clip). :func:`motion_metadata` is the one place the output's metadata
(provenance, engine facts, style, audio facts, post-processing) is put together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, Protocol, TypeVar

import numpy as np

from artalk_core.constants import DEFAULT_CLIP_LENGTH, MOTION_DIM
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, atomic_output, is_stdio, provenance, spooled, writing
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.progress import OptionalProgress
from artalk_core.stdio import stdout_binary

if TYPE_CHECKING:
    from artalk_core.engines.base import MotionEngine
    from artalk_core.engines.speech import Speech
    from artalk_core.formats.motion import Motion
    from artalk_core.styles import Style

R = TypeVar("R", covariant=True)


def model_inputs(model: ModelOptions, *, input: Any = None, style: Any = None, role: str = "INPUT") -> dict[str, Any]:
    """The files encode-audio / generate read, for :func:`~artalk_core.fileio.check_not_input`:
    the speech, the style's file (a name resolved in the asset folder) and the model files (the
    given ones, else the asset folder's)."""
    from artalk_core.assets import asset_inputs
    from artalk_core.styles import style_file

    return {role: input, "--style": style_file(style, assets=model.assets),
            **asset_inputs(model.assets, {"--checkpoint": model.checkpoint, "--model-config": model.model_config})}


def spooled_model(stack: contextlib.ExitStack, model: ModelOptions) -> ModelOptions:
    """``model`` with its checkpoint and config read once into temp files where they are pipes
    (:func:`artalk_core.fileio.spooled`): both are read more than once."""
    return dataclasses.replace(model, checkpoint=spooled(stack, model.checkpoint),
                               model_config=spooled(stack, model.model_config))


def resolve_clip_length(clip_length: int | None) -> int | None:
    """None -> the reference default (750 frames); 0 -> no limit."""
    if clip_length is None:
        return DEFAULT_CLIP_LENGTH
    if clip_length < 0:
        raise InputError(f"--clip-length must be >= 0, got {clip_length}")
    return clip_length or None


def check_raw_options(*, raw: bool, motion: MotionOptions) -> None:
    """``--raw`` skips post-processing, so the post-processing options cannot go with it."""
    if raw and (motion.clip_length is not None or motion.fix_pose):
        raise InputError("--clip-length and --fix-pose apply at post-processing: drop --raw, "
                         "or pass them to `artalk smooth`")


def motion_metadata(engine: MotionEngine, style: Style, *, options: dict[str, Any], raw: bool,
                    clip_length: int | None, fix_pose: bool, audio: dict[str, str] | None,
                    tool: str = "artalk generate") -> dict[str, str]:
    """The metadata of generated motion: provenance (``options`` plus the engine's, the audio and
    checkpoint hashes), engine, style, the audio facts (``audio``: None while not yet known, as in
    a stream's header) and the post-processing applied (``clip_length``: the resolved one)."""
    from artalk_core.postprocess import postprocess_metadata

    inputs = {} if audio is None else {"audio": audio.get("audio_sha256", "")}
    if engine.checkpoint_sha256:
        inputs["checkpoint"] = engine.checkpoint_sha256
    meta: dict[str, str] = {"engine": engine.name, "style": style.label, "style_sha256": style.sha256,
                            "checkpoint_sha256": engine.checkpoint_sha256, **(audio or {})}
    if raw:
        meta.update(postprocessed="false", smoothed="false", clip_length="", fix_pose="false")
    else:
        meta.update(postprocess_metadata(clip_length=clip_length, fix_pose=fix_pose))
    return {**provenance(tool, options={**options, **engine.options}, inputs=inputs), **meta}


def generation_options(engine: MotionEngine, style: Style, *, motion: MotionOptions, raw: bool,
                       **extra: Any) -> dict[str, Any]:
    """The options ``artalk generate`` records (as given; the engine adds its own)."""
    return {"engine": engine.name, "style": style.label, "style_start": motion.style_start, "raw": raw,
            "clip_length": motion.clip_length, "fix_pose": motion.fix_pose, **extra}


class MotionTarget(Protocol[R]):
    """Where post-processed frames go: a file, memory, a stream."""

    def write(self, frames: np.ndarray) -> None:
        """Take final frames float32 [n,106] (n may be 0)."""

    def finish(self, meta: dict[str, Any]) -> R:
        """The frames have all come: write what is left with ``meta``."""

    def close(self, error: BaseException | None) -> None:
        """Release the target; with ``error`` nothing partial may be left behind."""


class MotionSink(Generic[R]):
    """Raw motion in, final motion out to ``target``: post-processed causally (exactly as offline)
    unless ``raw``, cut to ``clip_length`` frames (the resolved one: None = all). A context
    manager: leaving it with an exception closes the target with the error."""

    def __init__(self, target: MotionTarget[R], *, raw: bool, clip_length: int | None, fix_pose: bool) -> None:
        from artalk_core.postprocess import StreamingPostprocessor

        self.target = target
        self.post = None if raw else StreamingPostprocessor(clip_length=clip_length, fix_pose=fix_pose)
        self.pushed = 0
        """Raw frames received."""

    @property
    def full(self) -> bool:
        """True once the clip length is reached: later frames cannot change the output."""
        return self.post is not None and self.post.full

    def push(self, raw: np.ndarray) -> None:
        """Raw frames float32 [n,106] in; those now final go to the target."""
        self.pushed += raw.shape[0]
        self.target.write(raw if self.post is None else self.post.push(raw))

    def finish(self, meta: dict[str, Any]) -> R:
        """Flush the post-processing and finish the target with ``meta``."""
        if self.post is not None:
            self.target.write(self.post.flush())
        return self.target.finish(meta)

    def __enter__(self) -> MotionSink[R]:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.target.close(exc)


def close_iterator(it: Iterator[Any]) -> None:
    """Close a generator (its ``finally`` blocks run now); any other iterator is left as it is."""
    close = getattr(it, "close", None)
    if close is not None:
        close()


def check_input_kind(engine: MotionEngine, kind: str) -> None:
    """Raise InputError unless ``engine`` reads speech of ``kind`` (``audio``, ``features``)."""
    if kind not in engine.inputs:
        raise InputError(f"the {engine.name} engine works from audio, not from a features file")


def run_engine(engine: MotionEngine, speech: Speech, style: Style, sink: MotionSink[Any],
               progress: OptionalProgress = None) -> bool:
    """Push the engine's raw blocks for ``speech`` into ``sink`` until they end or the clip is
    full, then give the speech's end warnings. Returns True when stopped at the clip length."""
    check_input_kind(engine, speech.kind)
    blocks = engine.motion(speech, style, progress)
    stopped = False
    try:
        for block in blocks:
            sink.push(block)
            if sink.full:  # the rest of the speech cannot change the clip (generation is causal)
                stopped = True
                break
    finally:
        close_iterator(blocks)
    speech.finish(stopped_early=stopped)
    return stopped


class MotionOutput:
    """A :class:`MotionTarget` for :func:`~artalk_core.pipeline.generate` and ``smooth``: frames
    written progressively to an artalk motion file, or gathered (no output, or the reference
    ``.pt`` format, which is written whole). :meth:`finish` returns the :class:`Motion`; with a
    motion file its ``data`` is a copy-on-write memory map of the frames written."""

    def __init__(self, output: PathLike | None) -> None:
        self.output = output
        self._parts: list[np.ndarray] = []
        self._writer: Any = None
        if output is not None and not str(output).lower().endswith(".pt"):
            from artalk_core.formats.motion import MotionWriter

            self._writer = MotionWriter(output)

    def write(self, frames: np.ndarray) -> None:
        if frames.shape[0] == 0:
            return
        if self._writer is not None:
            self._writer.write(frames)
        else:
            self._parts.append(np.array(frames, dtype=np.float32))

    def finish(self, meta: dict[str, Any]) -> Motion:
        from artalk_core.formats.motion import Motion

        if self._writer is not None:
            self._writer.finish(meta)
            return Motion(data=self._writer.map_frames(), meta=meta)
        data = (np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]) if self._parts \
            else np.zeros((0, MOTION_DIM), np.float32)
        self._parts = []
        if self.output is not None:
            save_motion(self.output, data, meta)
        return Motion(data=data, meta=meta)

    def close(self, error: BaseException | None) -> None:
        if self._writer is not None:
            self._writer.__exit__(None if error is None else type(error), error, None)


class LazyStreamOutput:
    """The motion stream's destination: stdout, a pipe/device written directly, or a regular file
    written atomically (renamed into place at the end). The header is written with the first frames,
    so an error before any output leaves stdout empty."""

    def __init__(self, output: PathLike | BinaryIO) -> None:
        self._target = output
        self._stack = contextlib.ExitStack()
        self._file: BinaryIO | None = None

    def open(self) -> BinaryIO:
        if self._file is not None:
            return self._file
        out = self._target
        if not isinstance(out, (str, os.PathLike)):  # a binary file object
            self._file = out
        elif is_stdio(out):
            self._file = stdout_binary()
        else:
            path = Path(out)
            if path.exists() and not path.is_file() and not path.is_dir():
                # A FIFO or device: stream into it (atomic_output would only copy at the end).
                try:
                    self._file = self._stack.enter_context(open(path, "wb"))
                except OSError as e:
                    from artalk_core.errors import OutputError

                    raise OutputError(f"cannot write {path}: {e.strerror}") from e
            else:
                tmp = self._stack.enter_context(atomic_output(path))
                self._file = self._stack.enter_context(open(tmp, "wb"))
        assert self._file is not None
        return self._file

    def close(self, ok: bool) -> None:
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("stream failed"), None)


class StreamLines:
    """The motion stream's destination (stdout, a pipe, or a file written atomically): the header
    is written with the first frames, so an error before any output leaves nothing behind."""

    def __init__(self, output: PathLike | BinaryIO, header: str, t_start: float) -> None:
        self._out = LazyStreamOutput(output)
        self._name: PathLike = output if isinstance(output, (str, os.PathLike)) else "the output"
        self._header = header
        self._t_start = t_start
        self._file: BinaryIO | None = None
        self.first_output_s: float | None = None

    @property
    def started(self) -> bool:
        return self._file is not None

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        if self._file is None:
            self._file = self._out.open()
            lines = [self._header, *lines]
            self.first_output_s = time.perf_counter() - self._t_start
        with writing(self._name):
            self._file.write(("\n".join(lines) + "\n").encode("utf-8"))
            self._file.flush()

    def close(self, *, ok: bool) -> None:
        self._out.close(ok)


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


__all__ = ["LazyStreamOutput", "StreamLines", "MotionOutput", "MotionSink", "MotionTarget", "check_input_kind", "close_iterator", "check_raw_options", "generation_options",
           "motion_metadata", "resolve_clip_length", "run_engine", "save_motion"]
