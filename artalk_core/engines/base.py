"""The engine interface: every motion engine turns :class:`Speech` into raw motion blocks.

An engine is made by a factory from the :class:`~artalk_core.options.ModelOptions` and
:class:`~artalk_core.options.MotionOptions` of the run (each takes what it needs: the model engine its
checkpoint, device and precision, the energy engine its seed), then
:meth:`MotionEngine.motion` yields raw motion float32 [n,106] at 25 fps, block by block, whose
concatenation is the whole clip's raw motion. The generation sink
(:mod:`artalk_core.generation`) post-processes and writes those blocks, the same way for the
offline (``artalk generate``) and the streaming (``generate --stream``) paths, and records the
engine's facts (``name``, ``checkpoint_sha256``, ``options``) in what it writes.

A new engine is one class with the four attributes below and one :func:`register_engine` call;
nothing in the pipeline or the streaming path changes.

Live use (``generate --stream``, ``artalk serve``) feeds speech as it is spoken. An engine that can
make frames from the audio heard so far also offers :meth:`StreamingEngine.open_stream`: an
:class:`EngineStream` pushed audio block by block, which returns each block's raw frames as soon as
they are final, and whose frames equal :meth:`MotionEngine.motion`'s bit for bit. An engine without
it still works live (:mod:`artalk_core.live.adapter` runs its ``motion`` in a helper thread, fed as
the audio arrives), but gives its frames only when it yields them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.progress import OptionalProgress

if TYPE_CHECKING:
    from artalk_core.engines.speech import Speech
    from artalk_core.styles import Style


@runtime_checkable
class MotionEngine(Protocol):
    """Speech -> raw FLAME motion blocks, plus the facts recorded in the output's metadata."""

    name: str
    """Recorded as the ``engine`` metadata and option."""
    checkpoint_sha256: str
    """sha256 of the weights used; "" for an engine without weights (then no checkpoint input)."""
    options: dict[str, Any]
    """Engine options recorded in the provenance (e.g. ``{"seed": 0}``, ``{"device": ..., "precision": ...}``)."""
    inputs: frozenset[str]
    """The :attr:`Speech.kind` values it reads: ``audio`` and/or ``features``."""

    def motion(self, speech: Speech, style: Style, progress: OptionalProgress = None) -> Iterator[np.ndarray]:
        """Raw motion float32 [n,106] blocks whose concatenation has ``speech.frames()`` frames.

        The caller may stop early (and closes the iterator); it then calls ``speech.finish``.
        """
        ...


class EngineStream(Protocol):
    """One utterance fed to an engine as it arrives: 16 kHz mono float32 audio in, raw motion out.

    ``block_samples``: audio is pushed in whole multiples of it (the model's 64,000-sample chunk,
    or one 640-sample frame); ``lookahead_frames``: raw frame t is final once the audio of frames
    up to t + lookahead_frames is in (beyond the block holding t).
    """

    block_samples: int
    lookahead_frames: int

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Audio float32 [k * block_samples] in; the raw frames float32 [n,106] now final."""
        ...

    def finish(self, samples: np.ndarray, total_samples: int) -> np.ndarray:
        """The end: the last audio (fewer than ``block_samples``; may be empty) and the number of
        samples of the whole utterance; returns the remaining raw frames (the concatenation of every
        output then has ``num_frames(total_samples)`` frames)."""
        ...

    def close(self) -> None:
        """Release what the stream holds (also when it is abandoned before :meth:`finish`)."""
        ...


@runtime_checkable
class StreamingEngine(Protocol):
    """A :class:`MotionEngine` that also makes frames from the audio heard so far."""

    def open_stream(self, style: Style) -> EngineStream:
        """A new :class:`EngineStream` for one utterance in ``style``."""
        ...


EngineFactory = Callable[[ModelOptions, MotionOptions], MotionEngine]
_FACTORIES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make ``name`` usable as ``--engine`` (``generate``, ``stream_generate``, ``animate``, the API)."""
    _FACTORIES[name] = factory


def motion_engines() -> tuple[str, ...]:
    """Names of the registered motion engines, in registration order."""
    return tuple(_FACTORIES)


def check_engine(name: str) -> None:
    """Raise InputError unless ``name`` is a registered motion engine."""
    from artalk_core.errors import InputError

    if name not in _FACTORIES:
        raise InputError(f"unknown engine '{name}': choose one of {', '.join(_FACTORIES)}")


def create_engine(engine: str | MotionEngine, model: ModelOptions | None = None,
                  motion: MotionOptions | None = None) -> MotionEngine:
    """The engine named ``engine`` made for ``model`` and ``motion`` (an engine object is returned as is)."""
    if not isinstance(engine, str):
        return engine
    check_engine(engine)
    return _FACTORIES[engine](model or ModelOptions(), motion or MotionOptions())


__all__ = ["EngineFactory", "EngineStream", "MotionEngine", "StreamingEngine", "check_engine", "create_engine", "motion_engines",
           "register_engine"]
