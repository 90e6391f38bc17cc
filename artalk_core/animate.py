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
from typing import Any

from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import AudioError, InputError
from artalk_core.fileio import (
    PathLike,
    check_not_input,
    make_folder,
    sha256_bytes,
    sha256_file,
    spooled,
)
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
    """The options of `artalk animate`, named like its CLI flags (``--tts-engine`` -> ``tts_engine``).

    One field per option: adding an option is one line here, and :func:`animate` accepts it as a
    keyword at once. ``audio`` (a speech file) or ``text`` (spoken by ``tts_engine``) is the input.
    """

    audio: PathLike | None = None
    text: str | None = None
    output: PathLike | None = None
    style: str | None = None
    lang: str = "en"
    tts_engine: str = "espeak"
    voice: str | None = None
    engine: str = "artalk"
    clip_length: int | None = None
    fix_pose: bool = False
    shape: PathLike | None = None
    flame: PathLike | None = None
    size: int = IMAGE_SIZE
    renderer: str = "gl"
    background: Any = BACKGROUND_COLOR
    color: Any = MESH_COLOR
    keep: PathLike | None = None
    checkpoint: PathLike | None = None
    model_config: PathLike | None = None
    assets: PathLike | None = None
    device: str = "auto"
    precision: str = "fp32"
    # the photoreal GAGAvatar head instead of the mesh (see artalk_core.render.stage.render)
    avatar: PathLike | None = None
    tracked: PathLike | None = None
    avatar_checkpoint: PathLike | None = None
    avatar_config: PathLike | None = None
    avatar_noise: str = "seeded"
    watermark: PathLike | None = None
    seed: int = 0
    glb: PathLike | None = None
    """Also export the motion as glTF (``.glb`` or ``.gltf``, see :mod:`artalk_core.export`)."""

    def replace(self, **changes: Any) -> AnimateOptions:
        """A copy with ``changes`` (TypeError for a name that is not an option)."""
        return dataclasses.replace(self, **changes)


def animate(audio: PathLike | AnimateOptions | None = None, *, progress: OptionalProgress = None,
            read_from: dict[str, Any] | None = None, **options: Any) -> AnimateResult:
    """Speech file or text -> MP4 with the speech muxed in. See the module docstring for ``keep``.

    ``animate("speech.wav", style="natural_0", size=256)``: the keywords are the fields of
    :class:`AnimateOptions` (TypeError for an unknown one); or ``animate(AnimateOptions(...))``,
    with keywords overriding its fields. ``read_from``: files the caller read the options from
    (by flag: the CLI's ``--text @notes.txt``), which no output may replace either.
    """
    opts = audio.replace(**options) if isinstance(audio, AnimateOptions) else AnimateOptions(audio=audio, **options)
    if (opts.audio is None) == (opts.text is None):
        raise InputError("give either an audio file or --text (not both)")
    stem = slug(Path(str(opts.audio)).stem if opts.audio is not None else "tts")
    look = "mesh" if opts.avatar is None else slug(Path(str(opts.avatar)).name)
    out = Path(opts.output) if opts.output is not None else Path(f"{stem}_{slug(opts.style or 'default')}_{look}.mp4")
    from artalk_core.pipeline import check_precision
    from artalk_core.video import video_container

    check_not_input(_outputs(opts, out, stem), {**_inputs(opts), **(read_from or {})})
    video_container(out)  # a container we cannot write is refused before any work
    if opts.text is not None:
        from artalk_core.tts import check_tts_options, normalize_lang

        normalize_lang(opts.lang)
        check_tts_options(engine=opts.tts_engine, voice=opts.voice)
    elif opts.voice is not None:
        raise InputError("--voice applies to --text (the speech is spoken by espeak-ng); AUDIO is used as it is")
    check_precision(opts.precision)  # before the model is loaded
    with contextlib.ExitStack() as stack:
        # FIFOs, /dev/stdin, <(...): read once, into temp files
        opts = opts.replace(**{k: spooled(stack, getattr(opts, k)) for k in (
            "audio", "shape", "flame", "watermark", "style", "checkpoint", "model_config", "avatar", "tracked",
            "avatar_checkpoint", "avatar_config")})
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
        keep, label = Path(o.keep), slug(style_label(o.style))
        kept = [keep / f"{stem}_{label}.motion.safetensors"]
        if o.text is not None:
            kept.append(keep / f"{stem}.wav")
        if o.engine == "artalk":
            kept.append(keep / f"{stem}.features.safetensors")
        if o.avatar is None:
            kept.append(keep / f"{stem}_{label}.h5")
        files["--keep"] = kept + [RecordFolder(keep).path(p) for p in kept]
    return files


def _inputs(o: AnimateOptions) -> dict[str, Any]:
    """Every file `animate` reads (given, or found in the asset folder)."""
    from artalk_core.assets import asset_inputs
    from artalk_core.generation import model_inputs

    files = {**model_inputs(input=o.audio, style=o.style, checkpoint=o.checkpoint, model_config=o.model_config,
                            assets=o.assets, role="AUDIO"),
             "--shape": o.shape, **asset_inputs(o.assets, {"--flame": o.flame})}
    if o.avatar is not None:
        files.update({"--avatar": o.avatar, "--avatar-config": o.avatar_config, "--watermark": o.watermark,
                      **asset_inputs(o.assets, {"--tracked": o.tracked, "--avatar-checkpoint": o.avatar_checkpoint})})
    return files


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
    avatar_opts: dict[str, Any] = {}
    if o.avatar is not None:
        from artalk_core.render.avatar.renderer import resolve_source

        avatar_opts = {k: getattr(o, k) for k in ("avatar", "tracked", "avatar_checkpoint", "avatar_config",
                                                  "avatar_noise", "watermark", "seed")}
        # every avatar input checked now, not after minutes of generation
        resolve_source(o.avatar, tracked=o.tracked, avatar_checkpoint=o.avatar_checkpoint,
                       avatar_config=o.avatar_config, flame=o.flame, assets=o.assets)
    precision = o.precision  # the one run (``auto`` resolved below)

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
    sty = resolve_style(o.style, assets=o.assets)
    motion_path = work / f"{stem}_{slug(sty.label)}.motion.safetensors"
    model: dict[str, str] = {}
    source: Any = audio
    if o.engine == "artalk":
        loaded = load_artalk(checkpoint=o.checkpoint, model_config=o.model_config, assets=o.assets,
                             device=o.device)
        if precision == "auto":  # kept files match the precision auto picks here (files record that)
            from artalk_core.model.precision import resolve_precision

            precision = resolve_precision("auto", loaded.device, loaded.model.config)
        model = {"checkpoint": loaded.checkpoint_sha256,
                 "model_config": sha256_bytes(json.dumps(loaded.config, sort_keys=True).encode())}
    if o.engine == "artalk" and o.keep is not None:
        # Cache the audio features: another style reuses them. Without --keep there is nothing to
        # reuse, and generating straight from the audio keeps memory bounded for long speech.
        feats_path = work / f"{stem}.features.safetensors"
        step("features", feats_path, Recipe({"audio": audio_sha, **model}, {"precision": precision}),
             lambda: encode_audio(audio, output=feats_path, checkpoint=o.checkpoint, model_config=o.model_config,
                                  assets=o.assets, device=o.device, precision=o.precision, progress=progress))
        files["features"] = feats_path
        source = feats_path
    engine_options = {"precision": precision} if o.engine == "artalk" else {"seed": o.seed}
    step("motion", motion_path,
         Recipe({"audio": audio_sha, "style": sty.sha256, **model},
                {"engine": o.engine, "fix_pose": o.fix_pose, "clip_length": o.clip_length, **engine_options}),
         lambda: generate(source, style=sty, output=motion_path, clip_length=o.clip_length, fix_pose=o.fix_pose,
                          engine=o.engine, checkpoint=o.checkpoint, model_config=o.model_config, seed=o.seed,
                          assets=o.assets, device=o.device, precision=o.precision, progress=progress))
    files["motion"] = motion_path
    glb_path = _export_glb(motion_path, o, progress)

    # 3. the video: from cached vertices with --keep, else straight from the motion (frames stream
    # from skinning through the renderer into the encoder, nothing of the whole length is held)
    if avatar_opts:
        # --precision applies to the avatar's upsampler too (auto: measured for it on its own)
        res = render(motion_path, output=out, flame=o.flame, assets=o.assets, audio=audio, device=o.device,
                     progress=progress, precision=o.precision, **avatar_opts)
        return AnimateResult(output=out, frames=res.frames, head_is_standin=False, files=files, reused=reused,
                             glb=glb_path)
    from artalk_core.flame import resolve_flame

    head = resolve_flame(o.flame, o.assets)
    look = dict(audio=audio, size=o.size, renderer=o.renderer, background=o.background,
                color=o.color, device=o.device, progress=progress)
    if o.keep is None:
        res = render(motion_path, output=out, flame=o.flame, shape=o.shape, assets=o.assets, **look)
        return AnimateResult(output=out, frames=res.frames, head_is_standin=head.is_standin, reused=reused,
                             glb=glb_path)

    verts_path = work / f"{stem}_{slug(sty.label)}.h5"
    shape = {"shape": sha256_file(o.shape)} if o.shape is not None else {}
    step("vertices", verts_path, Recipe({"motion": sha256_file(motion_path), "head": head.sha256, **shape}),
         lambda: render(motion_path, output=verts_path, flame=o.flame, shape=o.shape, assets=o.assets,
                        progress=progress))
    files["vertices"] = verts_path
    res = render(verts_path, output=out, **look)
    return AnimateResult(output=out, frames=res.frames, head_is_standin=head.is_standin, files=files,
                         reused=reused, glb=glb_path)


def _export_glb(motion_path: Path, o: AnimateOptions, progress: OptionalProgress) -> Path | None:
    """``glb``: the motion as glTF, same head and shape as the video."""
    if o.glb is None:
        return None
    from artalk_core.export import export

    export(motion_path, output=o.glb, flame=o.flame, shape=o.shape, assets=o.assets, progress=progress)
    return Path(o.glb)


__all__ = ["AnimateOptions", "AnimateResult", "animate"]
