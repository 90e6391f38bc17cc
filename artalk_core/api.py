"""The Python API, mirroring the reference engine (``ARTAvatarInferEngine``): load once, set a
style, generate motion from speech, render it.

>>> from artalk_core.api import Animator
>>> anim = Animator(assets="assets", engine="energy")          # or engine="artalk" with the released weights
>>> motion = anim.generate("assets/speech_sample.wav")           # Motion: .data float32 [T,106] at 25 fps
>>> anim.render(motion, path="out.mp4", audio="assets/speech_sample.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from artalk_core.constants import FPS, SAMPLE_RATE
from artalk_core.fileio import PathLike
from artalk_core.options import ModelOptions, MotionOptions, RenderOptions, from_flat, to_flat
from artalk_core.progress import OptionalProgress

if TYPE_CHECKING:
    from artalk_core.audio import Audio
    from artalk_core.export import ExportResult
    from artalk_core.formats.motion import Motion
    from artalk_core.render.stage import RenderResult
    from artalk_core.styles import Style

AudioLike = Union[PathLike, bytes, np.ndarray, "Audio"]  # noqa: UP007 (a forward reference: no | at runtime)


class Animator:
    """Speech -> FLAME motion -> mesh video, with the model loaded once.

    Options are the flat names of :mod:`artalk_core.options` (the CLI's flags), as keywords:
    ``Animator(assets="assets", engine="energy", device="cuda", precision="auto", avatar="12.jpg")``,
    or option objects (``model=ModelOptions(...)``, ``motion=``, ``look=``; keywords override them).
    ``engine="artalk"`` (the default) needs the released assets (``ARTalk_wav2vec.pt``,
    ``config.json``, ``style_motion/``) in ``assets`` (default ``$ARTALK_ASSETS``, else ``./assets``);
    ``engine="energy"`` needs none. ``precision``: fp32 (exact, default), bf16, fp16, or auto (the
    fastest one here, measured once and cached; docs/performance.md); it applies to the photoreal
    avatar's upsampler too. ``avatar="12.jpg"`` (a name in ``<assets>/GAGAvatar/tracked.pt`` or a
    tracked entry file) renders the photoreal GAGAvatar head instead of the mesh.
    """

    def __init__(self, assets: PathLike | None = None, *, model: ModelOptions | None = None,
                 motion: MotionOptions | None = None, look: RenderOptions | None = None, **options: Any) -> None:
        from artalk_core.engines import check_engine
        from artalk_core.pipeline import load_artalk

        given = {**to_flat(model or ModelOptions(), motion or MotionOptions(), look or RenderOptions()), **options}
        if assets is not None:
            given["assets"] = assets
        self.model, self.motion, self.look = from_flat(given)
        if isinstance(self.motion.engine, str):
            check_engine(self.motion.engine)
        self._style: Style | None = None
        if self.look.avatar is not None:  # every avatar input checked now
            from artalk_core.render.avatar.renderer import resolve_source

            resolve_source(self.look.avatar, flame=self.look.flame, assets=self.model.assets)
        if self.motion.engine == "artalk":  # fail early, and load the weights once
            load_artalk(self.model)

    @property
    def assets(self) -> PathLike | None:
        return self.model.assets

    def set_style(self, style: None | str | PathLike | np.ndarray | Any = None, *, style_start: int = 0) -> None:
        """``None``/``"default"`` (no style), a style name in ``<assets>/style_motion``, a path to a
        style or motion file, or a [50,106] array."""
        from artalk_core.styles import resolve_style

        if isinstance(style, os.PathLike):
            style = str(os.fspath(style))
        self._style = resolve_style(cast(Any, style), assets=self.model.assets, style_start=style_start)

    def _audio(self, audio: AudioLike) -> Audio | PathLike | bytes:
        """Arrays become :class:`Audio`; files and bytes pass through (decoded progressively later)."""
        from artalk_core.audio import audio_from_array

        if isinstance(audio, np.ndarray) or hasattr(audio, "detach"):
            return audio_from_array(audio, SAMPLE_RATE)
        return audio

    def generate(self, audio: AudioLike, *, raw: bool = False, output: PathLike | None = None,
                 progress: OptionalProgress = None, **motion: Any) -> Motion:
        """Motion for ``audio`` (a file, bytes, or a 16 kHz float array [S]); post-processed as the
        reference engine unless ``raw``. ``motion``: options of :class:`MotionOptions` for this call
        (``clip_length`` None = 750 frames, 0 = all; ``fix_pose``)."""
        from artalk_core.pipeline import generate

        options = dataclasses.replace(self.motion, style=self._style, **motion)
        return generate(self._audio(audio), output=output, raw=raw, motion=options, model=self.model,
                        progress=progress)

    def render(self, motion: Motion | np.ndarray | PathLike, *, path: PathLike, audio: AudioLike | None = None,
               verts: PathLike | None = None, force: bool = False, progress: OptionalProgress = None,
               **look: Any) -> RenderResult:
        """Render ``motion`` (a :class:`Motion`, an array float32 [T,106] or a motion file) to an MP4
        at ``path`` (the speech muxed in when ``audio`` is given), or to PNG frames for ``path``
        ending in ``/`` (a new or empty folder, or one holding a previous frames set; ``force``:
        beside other files). Data is rendered as it is, with no file in between. ``look``: options of
        :class:`RenderOptions` for this call (``shape``, ``size``, ``renderer``, ``background``,
        ``color``; with an avatar they are refused: they apply to the mesh only)."""
        from artalk_core.render.stage import render

        return render(motion, output=path, look=dataclasses.replace(self.look, **look), model=self.model,
                      audio=None if audio is None else self._audio(audio), verts=verts, progress=progress,
                      force=force)

    def export(self, motion: Motion | PathLike, path: PathLike, *, shape: PathLike | None = None,
               fps: float = FPS, embed_audio: PathLike | None = None,
               progress: OptionalProgress = None) -> ExportResult:
        """Export ``motion`` as glTF 2.0 (``path`` ``.glb`` or ``.gltf``): skinned FLAME mesh, morph
        targets and the animation, for Blender, game engines and three.js (see ``artalk export``)."""
        from artalk_core.export import export
        from artalk_core.formats.motion import Motion, motion_bytes

        source: bytes | PathLike = motion_bytes(motion.data, motion.meta) if isinstance(motion, Motion) else motion
        return export(source, output=path, flame=self.look.flame, shape=shape, fps=fps, embed_audio=embed_audio,
                      assets=self.model.assets, progress=progress)

    def animate(self, audio: AudioLike, *, path: PathLike, **render_options: Any) -> RenderResult:
        """generate + render with the speech muxed in: the reference ``inference.py -a ...``."""
        speech = self._audio(audio)
        return self.render(self.generate(speech), path=path, audio=speech, **render_options)
