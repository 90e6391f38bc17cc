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
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artalk_core.constants import BACKGROUND_COLOR, IMAGE_SIZE, MESH_COLOR
from artalk_core.errors import ArtalkError, AudioError, InputError
from artalk_core.fileio import (
    PathLike,
    check_not_input,
    input_file,
    is_stream_path,
    make_folder,
    sha256_bytes,
    sha256_file,
)
from artalk_core.progress import OptionalProgress


@dataclass
class AnimateResult:
    """What `animate` made, and which steps it reused from ``keep``."""

    output: Path
    frames: int
    head_is_standin: bool
    files: dict[str, Path] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    glb: Path | None = None  # the glTF export (``glb``), when asked for


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "x"


def _meta_of(path: Path, reader: Callable[[Path], Any]) -> dict[str, str] | None:
    """Metadata of an existing intermediate, or None if absent or unreadable (then it is remade)."""
    if not path.is_file():
        return None
    try:
        return dict(reader(path))
    except ArtalkError:
        return None


def _vertices_meta(path: Path) -> dict[str, str]:
    from artalk_core.formats.vertices import read_vertices

    with read_vertices(path) as vf:
        return {k: str(v) for k, v in vf.meta.items()}


def _matches(meta: dict[str, str] | None, **want: str) -> bool:
    return meta is not None and all(meta.get(k) == v for k, v in want.items())


def _options(meta: dict[str, str] | None) -> dict[str, Any]:
    try:
        return json.loads((meta or {}).get("options", "{}"))
    except ValueError:
        return {}


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
            **options: Any) -> AnimateResult:
    """Speech file or text -> MP4 with the speech muxed in. See the module docstring for ``keep``.

    ``animate("speech.wav", style="natural_0", size=256)``: the keywords are the fields of
    :class:`AnimateOptions` (TypeError for an unknown one); or ``animate(AnimateOptions(...))``,
    with keywords overriding its fields.
    """
    opts = audio.replace(**options) if isinstance(audio, AnimateOptions) else AnimateOptions(audio=audio, **options)
    if (opts.audio is None) == (opts.text is None):
        raise InputError("give either an audio file or --text (not both)")
    if opts.glb is not None and Path(opts.glb).suffix.lower() not in (".glb", ".gltf"):
        raise InputError(f"--glb {opts.glb}: name the glTF output *.glb or *.gltf")
    style_label = opts.style or "default"
    stem = _slug(Path(str(opts.audio)).stem if opts.audio is not None else "tts")
    look = "mesh" if opts.avatar is None else _slug(Path(str(opts.avatar)).name)
    out = Path(opts.output) if opts.output is not None else Path(f"{stem}_{_slug(style_label)}_{look}.mp4")
    from artalk_core.pipeline import check_precision
    from artalk_core.video import video_container

    check_not_input({"-o": out}, {"AUDIO": opts.audio, "--style": opts.style, "--shape": opts.shape,
                                  "--flame": opts.flame, "--checkpoint": opts.checkpoint,
                                  "--model-config": opts.model_config})
    video_container(out)  # a container we cannot write is refused before any work
    check_precision(opts.precision)  # before the model is loaded
    with contextlib.ExitStack() as stack:
        if opts.audio is not None and is_stream_path(opts.audio):
            # a FIFO or /dev/stdin: read once, into a temp file
            opts = opts.replace(audio=stack.enter_context(input_file(opts.audio))[0])
        if opts.keep is not None:
            make_folder(opts.keep)
            return _run(Path(opts.keep), opts, out, stem, progress)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="artalk-"))
        return _run(Path(tmp), opts, out, stem, progress)


def _run(work: Path, o: AnimateOptions, out: Path, stem: str, progress: OptionalProgress) -> AnimateResult:
    from artalk_core.audio import read_wav_metadata
    from artalk_core.formats.features import read_features_meta
    from artalk_core.formats.motion import read_motion_meta
    from artalk_core.pipeline import encode_audio, generate, load_artalk
    from artalk_core.render.stage import render
    from artalk_core.styles import resolve_style

    reused: list[str] = []
    files: dict[str, Path] = {}
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
        want = {"text_sha256": sha256_bytes(text.encode())}
        opts = {"lang": normalize_lang(o.lang), "engine": o.tts_engine, "voice": o.voice}
        meta = _meta_of(speech, read_wav_metadata)
        if _matches(meta, **want) and all(_options(meta).get(k) == v for k, v in opts.items()):
            reused.append("speech")
        else:
            tts(text, output=speech, lang=o.lang, engine=o.tts_engine, voice=o.voice)
        files["speech"] = speech
        audio = speech
    assert audio is not None
    # The path, not decoded samples, goes to each step: they decode it progressively (bounded memory).
    if not Path(str(audio)).is_file():
        raise AudioError(f"audio file not found: {audio}")
    audio_sha = sha256_file(audio)

    # 2. motion (via cached features for the model engine)
    sty = resolve_style(o.style, assets=o.assets)
    motion_path = work / f"{stem}_{_slug(sty.label)}.motion.safetensors"
    want_motion = {"audio_sha256": audio_sha, "style_sha256": sty.sha256, "engine": o.engine,
                   "fix_pose": str(bool(o.fix_pose)).lower()}
    source: Any = audio
    if o.engine == "artalk":
        loaded = load_artalk(checkpoint=o.checkpoint, model_config=o.model_config, assets=o.assets,
                             device=o.device)
        want_motion["checkpoint_sha256"] = loaded.checkpoint_sha256
        if precision == "auto":  # kept files match the precision auto picks here (files record that)
            from artalk_core.model.precision import resolve_precision

            precision = resolve_precision("auto", loaded.device, loaded.model.config)
    if o.engine == "artalk" and o.keep is not None:
        # Cache the audio features: another style reuses them. Without --keep there is nothing to
        # reuse, and generating straight from the audio keeps memory bounded for long speech.
        feats_path = work / f"{stem}.features.safetensors"
        fmeta = _meta_of(feats_path, read_features_meta)
        if (_matches(fmeta, audio_sha256=audio_sha, checkpoint_sha256=loaded.checkpoint_sha256)
                and _options(fmeta).get("precision", "fp32") == precision):
            reused.append("features")
        else:
            encode_audio(audio, output=feats_path, checkpoint=o.checkpoint, model_config=o.model_config,
                         assets=o.assets, device=o.device, precision=o.precision, progress=progress)
        files["features"] = feats_path
        source = feats_path
    mmeta = _meta_of(motion_path, read_motion_meta)
    if (_matches(mmeta, **want_motion) and _options(mmeta).get("clip_length") == o.clip_length
            and (o.engine != "artalk" or _options(mmeta).get("precision", "fp32") == precision)):
        reused.append("motion")
    else:
        generate(source, style=sty, output=motion_path, clip_length=o.clip_length, fix_pose=o.fix_pose,
                 engine=o.engine, checkpoint=o.checkpoint, model_config=o.model_config,
                 assets=o.assets, device=o.device, precision=o.precision, progress=progress)
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

    verts_path = work / f"{stem}_{_slug(sty.label)}.h5"
    want_verts = {"motion_sha256": sha256_file(motion_path), "head_sha256": head.sha256}
    if o.shape is not None:
        want_verts["shape_sha256"] = sha256_file(o.shape)
    vmeta = _meta_of(verts_path, _vertices_meta)
    if _matches(vmeta, **want_verts) and (o.shape is not None or "shape_sha256" not in (vmeta or {})):
        reused.append("vertices")
    else:
        render(motion_path, output=verts_path, flame=o.flame, shape=o.shape, assets=o.assets,
               progress=progress)
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
