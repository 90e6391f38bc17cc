"""Motion engines: speech -> raw FLAME motion blocks (the interface is :mod:`artalk_core.engines.base`).

``artalk`` (:mod:`.artalk`) is the ARTalk model; ``energy`` (:mod:`.energy`) needs no weights
(loudness-driven). Each module is imported only when its engine is made, so listing the engines
stays instant. Add one with :func:`register_engine`.
"""

from __future__ import annotations

from artalk_core.engines.base import (
    EngineFactory,
    EngineStream,
    MotionEngine,
    StreamingEngine,
    check_engine,
    create_engine,
    motion_engines,
    register_engine,
)
from artalk_core.options import ModelOptions, MotionOptions


def _artalk(model: ModelOptions, motion: MotionOptions) -> MotionEngine:
    from artalk_core.engines.artalk import ArtalkEngine

    return ArtalkEngine(model)


def _energy(model: ModelOptions, motion: MotionOptions) -> MotionEngine:
    from artalk_core.engines.energy import EnergyEngine

    return EnergyEngine(seed=motion.seed)


register_engine("artalk", _artalk)
register_engine("energy", _energy)

__all__ = ["EngineFactory", "EngineStream", "MotionEngine", "StreamingEngine", "check_engine", "create_engine", "motion_engines",
           "register_engine"]
