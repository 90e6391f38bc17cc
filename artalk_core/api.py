"""The Python API, mirroring the reference engine (``ARTAvatarInferEngine``): load once, set a
style, generate motion from speech, render it.

>>> from artalk_core.api import Animator
>>> anim = Animator(assets="assets", engine="energy")          # or engine="artalk" with the released weights
>>> motion = anim.generate("assets/speech_sample.wav")           # Motion: .data float32 [T,106] at 25 fps
>>> anim.render(motion, path="out.mp4", audio="assets/speech_sample.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from artalk_core.constants import BACKGROUND_COLOR, FPS, IMAGE_SIZE, MESH_COLOR, SAMPLE_RATE
from artalk_core.fileio import PathLike
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

    ``engine="artalk"`` needs the released assets (``ARTalk_wav2vec.pt``, ``config.json``,
    ``style_motion/``) in ``assets`` (default ``$ARTALK_ASSETS``, else ``./assets``);
    ``engine="energy"`` needs none. ``precision``: fp32 (exact, default), bf16, fp16, or auto (the
    fastest one here, measured once and cached; see README, Performance). ``avatar="12.jpg"`` (a name
    in ``<assets>/GAGAvatar/tracked.pt`` or a tracked entry file) renders the photoreal GAGAvatar head
    instead of the mesh; ``tracked``, ``avatar_checkpoint``, ``avatar_config``, ``avatar_noise``,
    ``watermark`` and ``seed`` as the ``render`` command's flags; ``precision`` applies to the avatar's
    upsampler too.
    """

    def __init__(self, assets: PathLike | None = None, *, device: str = "auto", engine: str = "artalk",
                 checkpoint: PathLike | None = None, model_config: PathLike | None = None,
                 flame: PathLike | None = None, precision: str = "fp32", avatar: str | PathLike | None = None,
                 tracked: PathLike | None = None, avatar_checkpoint: PathLike | None = None,
                 avatar_config: PathLike | None = None, avatar_noise: str = "seeded",
                 watermark: PathLike | None = None, seed: int = 0) -> None:
        from artalk_core.engines import check_engine
        from artalk_core.pipeline import check_precision, load_artalk

        check_engine(engine)
        check_precision(precision)  # fp32 | bf16 | fp16 | auto (see README, Performance)
        self.precision = precision
        self.assets = assets
        self.device = device
        self.engine = engine
        self.checkpoint = checkpoint
        self.model_config = model_config
        self.flame = flame
        self._style: Style | None = None
        self.avatar_options: dict[str, Any] = {}
        if avatar is not None:  # every avatar input checked now
            from artalk_core.render.avatar.renderer import resolve_source

            resolve_source(avatar, tracked=tracked, avatar_checkpoint=avatar_checkpoint, avatar_config=avatar_config,
                           flame=flame, assets=assets)
            self.avatar_options = {"avatar": avatar, "tracked": tracked, "avatar_checkpoint": avatar_checkpoint,
                                   "avatar_config": avatar_config, "avatar_noise": avatar_noise,
                                   "watermark": watermark, "seed": seed, "precision": precision}
        if engine == "artalk":  # fail early, and load the weights once
            load_artalk(checkpoint=checkpoint, model_config=model_config, assets=assets, device=device)

    def set_style(self, style: None | str | PathLike | np.ndarray | Any = None, *, style_start: int = 0) -> None:
        """``None``/``"default"`` (no style), a style name in ``<assets>/style_motion``, a path to a
        style or motion file, or a [50,106] array."""
        from artalk_core.styles import resolve_style

        if isinstance(style, os.PathLike):
            style = str(os.fspath(style))
        self._style = resolve_style(cast(Any, style), assets=self.assets, style_start=style_start)

    def _audio(self, audio: AudioLike) -> Audio | PathLike | bytes:
        """Arrays become :class:`Audio`; files and bytes pass through (decoded progressively later)."""
        from artalk_core.audio import audio_from_array

        if isinstance(audio, np.ndarray) or hasattr(audio, "detach"):
            return audio_from_array(audio, SAMPLE_RATE)
        return audio

    def generate(self, audio: AudioLike, *, clip_length: int | None = None, fix_pose: bool = False,
                 raw: bool = False, output: PathLike | None = None,
                 progress: OptionalProgress = None) -> Motion:
        """Motion for ``audio`` (a file, bytes, or a 16 kHz float array [S]); post-processed as the
        reference engine unless ``raw``. ``clip_length`` None = 750 frames, 0 = all."""
        from artalk_core.pipeline import generate

        return generate(self._audio(audio), style=self._style, output=output, raw=raw, clip_length=clip_length,
                        fix_pose=fix_pose, engine=self.engine, checkpoint=self.checkpoint,
                        model_config=self.model_config, assets=self.assets, device=self.device,
                        precision=self.precision, progress=progress)

    def render(self, motion: Motion | np.ndarray | PathLike, *, path: PathLike, audio: AudioLike | None = None,
               shape: PathLike | None = None, size: int = IMAGE_SIZE, renderer: str = "gl",
               background: Any = BACKGROUND_COLOR, color: Any = MESH_COLOR, verts: PathLike | None = None,
               force: bool = False, progress: OptionalProgress = None) -> RenderResult:
        """Render ``motion`` (a :class:`Motion`, an array float32 [T,106] or a motion file) to an MP4
        at ``path`` (the speech muxed in when ``audio`` is given), or to PNG frames for ``path``
        ending in ``/`` (a new or empty folder, or one holding a previous frames set; ``force``:
        beside other files). Data is rendered as it is, with no file in between. With an avatar
        (``Animator(avatar=...)``) the photoreal head is rendered (``shape``, ``size``,
        ``renderer``, ``background``, ``color`` and ``verts`` given away from their defaults are
        refused: they apply to the mesh only)."""
        from artalk_core.render.stage import render

        return render(motion, output=path, flame=self.flame, shape=shape,
                      audio=None if audio is None else self._audio(audio), verts=verts, size=size,
                      renderer=renderer, background=background, color=color, assets=self.assets,
                      device=self.device, progress=progress, force=force, **self.avatar_options)

    def export(self, motion: Motion | PathLike, path: PathLike, *, shape: PathLike | None = None,
               fps: float = FPS, embed_audio: PathLike | None = None,
               progress: OptionalProgress = None) -> ExportResult:
        """Export ``motion`` as glTF 2.0 (``path`` ``.glb`` or ``.gltf``): skinned FLAME mesh, morph
        targets and the animation, for Blender, game engines and three.js (see ``artalk export``)."""
        from artalk_core.export import export
        from artalk_core.formats.motion import Motion, motion_bytes

        source: bytes | PathLike = motion_bytes(motion.data, motion.meta) if isinstance(motion, Motion) else motion
        return export(source, output=path, flame=self.flame, shape=shape, fps=fps, embed_audio=embed_audio,
                      assets=self.assets, progress=progress)

    def animate(self, audio: AudioLike, *, path: PathLike, **render_options: Any) -> RenderResult:
        """generate + render with the speech muxed in: the reference ``inference.py -a ...``."""
        speech = self._audio(audio)
        return self.render(self.generate(speech), path=path, audio=speech, **render_options)
