"""`artalk animate`: the whole chain (tts -> generate -> render -> mux) in one call, the
equivalent of the reference ``inference.py -a speech.wav -s style``.

With ``keep`` every intermediate file (speech WAV, features, motion, vertices) is kept in that
folder, and a rerun reuses each one whose recorded inputs (hashes, options) still match, so
changing only the style reruns only generation and rendering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from artalk_core.errors import AudioError, InputError
from artalk_core.fileio import (
    PathLike,
    check_not_input,
    make_folder,
    sha256_bytes,
    sha256_file,
    spooled,
)
from artalk_core.options import ModelOptions, MotionOptions, RenderOptions, flat_fields, from_flat, to_flat
from artalk_core.progress import OptionalProgress
from artalk_core.records import Recipe, RecordFolder
from artalk_core.text import slug


@dataclass
class AnimateResult:
    """What `animate` made, and which steps it reused from ``keep``."""

    output: Path
    frames: int
    head_is_standin: bool
    files: dict[str, Path] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    glb: Path | None = None  # the glTF export (``glb``), when asked for


@dataclass(frozen=True)
class AnimateOptions:
    """The options of `artalk animate`: its input and outputs here, the rest in the option groups of
    :mod:`artalk_core.options` (``motion``: what to generate, ``look``: how to draw it, ``model``:
    which model where). Every field keeps the name of its CLI flag (``--tts-engine`` ->
    ``tts_engine``); :meth:`from_flat` takes them all as one flat mapping, as ``animate(**keywords)``
    and a batch row do. ``audio`` (a speech file) or ``text`` (spoken by ``tts_engine``) is the input.
    """

    audio: PathLike | None = None
    text: str | None = None
    output: PathLike | None = None
    """The video; None: ``<audio stem>_<style>_<mesh or avatar>.mp4`` (the reference's name)."""
    lang: str = "en"
    tts_engine: str = "espeak"
    voice: str | None = None
    keep: PathLike | None = None
    """A folder keeping the intermediates, reused while their records match (:mod:`artalk_core.records`)."""
    glb: PathLike | None = None
    """Also export the motion as glTF (``.glb`` or ``.gltf``, see :mod:`artalk_core.export`)."""
    motion: MotionOptions = field(default_factory=MotionOptions)
    look: RenderOptions = field(default_factory=RenderOptions)
    model: ModelOptions = field(default_factory=ModelOptions)

    OWN: ClassVar[tuple[str, ...]] = ("audio", "text", "output", "lang", "tts_engine", "voice", "keep", "glb")

    @classmethod
    def flat_names(cls) -> tuple[str, ...]:
        """Every option name :meth:`from_flat` takes (the CLI's flags)."""
        return (*cls.OWN, *flat_fields())

    @classmethod
    def from_flat(cls, **values: Any) -> AnimateOptions:
        """The options of a flat mapping of option names (TypeError for an unknown name)."""
        model, motion, look = from_flat({k: v for k, v in values.items() if k not in cls.OWN})
        return cls(**{k: v for k, v in values.items() if k in cls.OWN}, motion=motion, look=look, model=model)

    def flat(self) -> dict[str, Any]:
        """The options as one flat mapping (the inverse of :meth:`from_flat`)."""
        return {**{k: getattr(self, k) for k in self.OWN}, **to_flat(self.model, self.motion, self.look)}

    def replace(self, **changes: Any) -> AnimateOptions:
        """A copy with ``changes`` by flat name (TypeError for a name that is not an option)."""
        return AnimateOptions.from_flat(**{**self.flat(), **changes})


def animate(audio: PathLike | AnimateOptions | None = None, *, progress: OptionalProgress = None,
            read_from: dict[str, Any] | None = None, **options: Any) -> AnimateResult:
    """Speech file or text -> MP4 with the speech muxed in. See the module docstring for ``keep``.

    ``animate("speech.wav", style="natural_0", size=256)``: the keywords are the flat option names
    of :class:`AnimateOptions` (TypeError for an unknown one); or ``animate(AnimateOptions(...))``,
    with keywords overriding its fields. ``read_from``: files the caller read the options from
    (by flag: the CLI's ``--text @notes.txt``), which no output may replace either.
    """
    opts = audio.replace(**options) if isinstance(audio, AnimateOptions) else \
        AnimateOptions.from_flat(audio=audio, **options)
    if (opts.audio is None) == (opts.text is None):
        raise InputError("give either an audio file or --text (not both)")
    avatar = opts.look.avatar
    stem = slug(Path(str(opts.audio)).stem if opts.audio is not None else "tts")
    look = "mesh" if avatar is None else slug(Path(str(avatar.avatar)).name)
    style_name = opts.motion.style if isinstance(opts.motion.style, str) else None
    out = Path(opts.output) if opts.output is not None else Path(f"{stem}_{slug(style_name or 'default')}_{look}.mp4")
    from artalk_core.video import video_container

    check_not_input(_outputs(opts, out, stem), {**_inputs(opts), **(read_from or {})})
    video_container(out)  # a container we cannot write is refused before any work
    if opts.text is not None:
        from artalk_core.tts import check_tts_options, normalize_lang

        normalize_lang(opts.lang)
        check_tts_options(engine=opts.tts_engine, voice=opts.voice)
    elif opts.voice is not None:
        raise InputError("--voice applies to --text (the speech is spoken by espeak-ng); AUDIO is used as it is")
    with contextlib.ExitStack() as stack:
        # FIFOs, /dev/stdin, <(...): read once, into temp files
        from artalk_core.generation import spooled_model
        from artalk_core.render.stage import spooled_look

        opts = dataclasses.replace(opts, audio=spooled(stack, opts.audio), model=spooled_model(stack, opts.model),
                                   motion=dataclasses.replace(opts.motion, style=spooled(stack, opts.motion.style)),
                                   look=spooled_look(stack, opts.look))
        if opts.keep is not None:
            make_folder(opts.keep)
            return _run(Path(opts.keep), opts, out, stem, progress)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="artalk-"))
        return _run(Path(tmp), opts, out, stem, progress)


def _outputs(o: AnimateOptions, out: Path, stem: str) -> dict[str, Any]:
    """Every file `animate` may write: the video, the glTF (and its .bin), the --keep intermediates
    this run makes (the WAV only for --text: AUDIO is read where it is, even when it sits in the
    --keep folder; the features only for the artalk engine; the vertices only for the mesh) and
    their records."""
    from artalk_core.export import gltf_outputs
    from artalk_core.styles import style_label

    files: dict[str, Any] = {"-o": out}
    if o.glb is not None:
        try:
            files.update(gltf_outputs(o.glb, "--glb"))
        except InputError:
            raise InputError(f"--glb {o.glb}: name the glTF output *.glb or *.gltf") from None
    if o.keep is not None:
        keep, label = Path(o.keep), slug(style_label(o.motion.style))
        kept = [keep / f"{stem}_{label}.motion.safetensors"]
        if o.text is not None:
            kept.append(keep / f"{stem}.wav")
        if o.motion.engine == "artalk":
            kept.append(keep / f"{stem}.features.safetensors")
        if o.look.avatar is None:
            kept.append(keep / f"{stem}_{label}.h5")
        files["--keep"] = kept + [RecordFolder(keep).path(p) for p in kept]
    return files


def _inputs(o: AnimateOptions) -> dict[str, Any]:
    """Every file `animate` reads (given, or found in the asset folder)."""
    from artalk_core.generation import model_inputs
    from artalk_core.render.stage import render_inputs

    return {**model_inputs(o.model, input=o.audio, style=o.motion.style, role="AUDIO"),
            **render_inputs(o.look, o.model)}


def _run(work: Path, o: AnimateOptions, out: Path, stem: str, progress: OptionalProgress) -> AnimateResult:
    from artalk_core.pipeline import encode_audio, generate, load_artalk
    from artalk_core.render.stage import render
    from artalk_core.styles import resolve_style

    reused: list[str] = []
    files: dict[str, Path] = {}
    records = RecordFolder(work) if o.keep is not None else None

    def step(name: str, path: Path, recipe: Recipe, make: Callable[[], object]) -> None:
        """Make ``path`` unless --keep holds it, made from the same recipe (see artalk_core.records)."""
        if records is not None and records.current(path, recipe):
            reused.append(name)
            return
        if records is not None:
            records.forget(path)
        make()
        if records is not None:
            records.write(path, recipe)

    audio, text = o.audio, o.text
    mo, m, avatar = o.motion, o.model, o.look.avatar
    if avatar is not None:
        from artalk_core.render.avatar.renderer import resolve_source

        # every avatar input checked now, not after minutes of generation
        resolve_source(avatar, flame=o.look.flame, assets=m.assets)
    precision = m.precision  # the one run (``auto`` resolved below)

    # 1. speech
    if text is not None:
        from artalk_core.tts import normalize_lang, tts

        speech = work / f"{stem}.wav"
        step("speech", speech, Recipe({"text": sha256_bytes(text.encode())},
                                      {"lang": normalize_lang(o.lang), "tts_engine": o.tts_engine, "voice": o.voice}),
             lambda: tts(text, output=speech, lang=o.lang, engine=o.tts_engine, voice=o.voice))
        files["speech"] = speech
        audio = speech
    assert audio is not None
    # The path, not decoded samples, goes to each step: they decode it progressively (bounded memory).
    if not Path(str(audio)).is_file():
        raise AudioError(f"audio file not found: {audio}")
    audio_sha = sha256_file(audio)

    # 2. motion (via cached features for the model engine)
    sty = resolve_style(mo.style, assets=m.assets, style_start=mo.style_start)
    motion_path = work / f"{stem}_{slug(sty.label)}.motion.safetensors"
    model: dict[str, str] = {}
    source: Any = audio
    if mo.engine == "artalk":
        loaded = load_artalk(m)
        if precision == "auto":  # kept files match the precision auto picks here (files record that)
            from artalk_core.model.precision import resolve_precision

            precision = resolve_precision("auto", loaded.device, loaded.model.config)
        model = {"checkpoint": loaded.checkpoint_sha256,
                 "model_config": sha256_bytes(json.dumps(loaded.config, sort_keys=True).encode())}
    if mo.engine == "artalk" and o.keep is not None:
        # Cache the audio features: another style reuses them. Without --keep there is nothing to
        # reuse, and generating straight from the audio keeps memory bounded for long speech.
        feats_path = work / f"{stem}.features.safetensors"
        step("features", feats_path, Recipe({"audio": audio_sha, **model}, {"precision": precision}),
             lambda: encode_audio(audio, output=feats_path, model=m, progress=progress))
        files["features"] = feats_path
        source = feats_path
    engine_options = {"precision": precision} if mo.engine == "artalk" else {"seed": mo.seed}
    step("motion", motion_path,
         Recipe({"audio": audio_sha, "style": sty.sha256, **model},
                {"engine": mo.engine, "fix_pose": mo.fix_pose, "clip_length": mo.clip_length, **engine_options}),
         lambda: generate(source, output=motion_path, motion=dataclasses.replace(mo, style=sty), model=m,
                          progress=progress))
    files["motion"] = motion_path
    glb_path = _export_glb(motion_path, o, progress)

    # 3. the video: from cached vertices with --keep, else straight from the motion (frames stream
    # from skinning through the renderer into the encoder, nothing of the whole length is held)
    if avatar is not None:
        # --precision applies to the avatar's upsampler too (auto: measured for it on its own)
        res = render(motion_path, output=out, look=o.look, model=m, audio=audio, progress=progress)
        return AnimateResult(output=out, frames=res.frames, head_is_standin=False, files=files, reused=reused,
                             glb=glb_path)
    from artalk_core.flame import resolve_flame

    head = resolve_flame(o.look.flame, m.assets)
    if o.keep is None:
        res = render(motion_path, output=out, look=o.look, model=m, audio=audio, progress=progress)
        return AnimateResult(output=out, frames=res.frames, head_is_standin=head.is_standin, reused=reused,
                             glb=glb_path)

    verts_path = work / f"{stem}_{slug(sty.label)}.h5"
    shape = {"shape": sha256_file(o.look.shape)} if o.look.shape is not None else {}
    step("vertices", verts_path, Recipe({"motion": sha256_file(motion_path), "head": head.sha256, **shape}),
         lambda: render(motion_path, output=verts_path, look=o.look, model=m, progress=progress))
    files["vertices"] = verts_path
    # the vertices hold the head and its shape: the look without them
    res = render(verts_path, output=out, look=dataclasses.replace(o.look, flame=None, shape=None), model=m,
                 audio=audio, progress=progress)
    return AnimateResult(output=out, frames=res.frames, head_is_standin=head.is_standin, files=files,
                         reused=reused, glb=glb_path)


def _export_glb(motion_path: Path, o: AnimateOptions, progress: OptionalProgress) -> Path | None:
    """``glb``: the motion as glTF, same head and shape as the video."""
    if o.glb is None:
        return None
    from artalk_core.export import export

    export(motion_path, output=o.glb, flame=o.look.flame, shape=o.look.shape, assets=o.model.assets, progress=progress)
    return Path(o.glb)


__all__ = ["AnimateOptions", "AnimateResult", "animate"]
