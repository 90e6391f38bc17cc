"""The stages behind `artalk render` and `artalk mux`: motion -> FLAME vertices -> frames -> MP4.

Frames stream from the renderer straight into the encoder (and vertices straight into the HDF5
writer), so memory does not grow with the duration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artalk_core.constants import FPS
from artalk_core.errors import InputError
from artalk_core.fileio import PathLike, check_not_input, is_stdio, provenance, spooled
from artalk_core.options import ModelOptions, RenderOptions
from artalk_core.progress import OptionalProgress, report

if TYPE_CHECKING:
    from artalk_core.audio import Audio
    from artalk_core.formats.motion import Motion, MotionReader

@dataclass
class RenderResult:
    """What `render` wrote."""

    output: Path
    frames: int
    head: str  # "FLAME (<path>)" or "stand-in"
    head_is_standin: bool
    vertices: Path | None = None
    with_audio: bool = False
    meta: dict[str, str] = field(default_factory=dict)


def _is_h5(path: PathLike) -> bool:
    return str(path).lower().endswith((".h5", ".hdf5"))


def render_inputs(look: RenderOptions, model: ModelOptions) -> dict[str, Any]:
    """The files a render reads besides its input (for :func:`~artalk_core.fileio.check_not_input`):
    the given ones, else the asset folder's."""
    from artalk_core.assets import asset_inputs

    inputs: dict[str, Any] = {"--shape": look.shape, **asset_inputs(model.assets, {"--flame": look.flame})}
    a = look.avatar
    if a is not None:
        inputs.update({"--avatar": a.avatar, "--avatar-config": a.avatar_config, "--watermark": a.watermark,
                       **asset_inputs(model.assets, {"--tracked": a.tracked,
                                                     "--avatar-checkpoint": a.avatar_checkpoint})})
    return inputs


def render(input: PathLike | bytes | Motion | np.ndarray, *, output: PathLike, look: RenderOptions | None = None,
           model: ModelOptions | None = None, audio: PathLike | bytes | Audio | None = None,
           verts: PathLike | None = None, allow_standin: bool = True, force: bool = False,
           progress: OptionalProgress = None) -> RenderResult:
    """Render a motion file (ours or a reference ``.pt``), a vertices file (``.h5``), or motion
    data (a :class:`~artalk_core.formats.motion.Motion` or an array float32 [T,106]) to an MP4, as
    ``look`` says (the mesh's look, or its ``avatar``: the photoreal GAGAvatar head), with the asset
    folder and device of ``model`` (whose precision is the avatar upsampler's).

    ``output`` ending in ``.h5`` writes the vertices only; ending in ``/`` (or an existing folder)
    lossless PNG frames ``frame_000000.png``... into a new or empty folder, or one holding only a
    previous artalk frames set (``force``: also beside other files, which are kept; see
    :mod:`artalk_core.frames`). ``audio`` (a file or decoded
    :class:`~artalk_core.audio.Audio`) muxes the speech in (AAC, cut to the video's length as the
    reference does); ``verts`` also writes the vertices.
    """
    look, model = look or RenderOptions(), model or ModelOptions()
    if look.avatar is not None and verts is not None:
        raise InputError("--verts applies to the mesh only; --avatar renders the photoreal head")
    if is_stdio(output):
        raise InputError("render cannot write a video to stdout (MP4 needs a seekable file): give -o FILE.mp4")
    from artalk_core.frames import frames_outputs, is_frames_dir

    # -o DIR/: the files of a previous frames set that would be replaced (others refused unless force)
    check_not_input({"-o": frames_outputs(output, force=force) if is_frames_dir(output) else output,
                     "--verts": verts}, {"INPUT": input, "--audio": audio, **render_inputs(look, model)})
    if not _is_h5(output) and not is_frames_dir(output):
        from artalk_core.video import video_container

        video_container(output)  # refuse x.avi before rendering anything
    with contextlib.ExitStack() as stack:
        # side inputs given as FIFOs or <(...): read once, into temp files
        look = spooled_look(stack, look)
        if isinstance(audio, (str, os.PathLike)):
            audio = spooled(stack, audio)
        job = _Job(output=output, look=look, model=model, audio=audio, verts=verts, allow_standin=allow_standin,
                   force=force, progress=progress)
        return _render_input(stack, input, job)


def spooled_look(stack: contextlib.ExitStack, look: RenderOptions) -> RenderOptions:
    """``look`` with each file it names read once into a temp file where it is a pipe."""
    a = look.avatar
    if a is not None:
        a = dataclasses.replace(a, **{k: spooled(stack, getattr(a, k)) for k in (
            "avatar", "tracked", "avatar_checkpoint", "avatar_config", "watermark")})
    return dataclasses.replace(look, flame=spooled(stack, look.flame), shape=spooled(stack, look.shape), avatar=a)


@dataclass(frozen=True)
class _Job:
    """One render's options once checked (see :func:`render`)."""

    output: PathLike
    look: RenderOptions
    model: ModelOptions
    audio: PathLike | bytes | Audio | None
    verts: PathLike | None
    allow_standin: bool
    force: bool
    progress: OptionalProgress


def _render_input(stack: contextlib.ExitStack, input: PathLike | bytes | Motion | np.ndarray, job: _Job) -> RenderResult:
    """:func:`render` once its options are checked: motion data as it is, a file (or stdin) block by block."""
    from artalk_core.fileio import input_file, sha256_bytes
    from artalk_core.formats.motion import Motion, motion_bytes

    draw = _render if job.look.avatar is None else _render_avatar
    if isinstance(input, (Motion, np.ndarray)):  # data: rendered as is, no file in between
        motion = input if isinstance(input, Motion) else Motion(data=input)
        # Checks the frames (shape, finite) and records the hash the same motion has as a file.
        sha = sha256_bytes(motion_bytes(motion.data, motion.meta))
        return draw(None, sha, name="<motion>", data=motion.data, job=job)
    # Read from a file, block by block: stdin is spooled to a temp file first (hashed on the way),
    # so an hour of motion or vertices is never held in memory.
    path, input_sha, name = stack.enter_context(input_file(input))
    return draw(path, input_sha, name=name, job=job)


def _render(path: Path | None, input_sha: str, *, name: str, job: _Job, data: np.ndarray | None = None) -> RenderResult:
    """:func:`render` of a file on disk (``input_sha``: its hash when already known, else ""), or
    of motion ``data`` [T,106] (``path`` None, ``input_sha`` its hash), as the mesh."""
    from artalk_core.fileio import sha256_file
    from artalk_core.formats import sniff_kind

    look, flame, shape = job.look, job.look.flame, job.look.shape
    kind = "motion" if path is None else sniff_kind(path)  # InputError for a missing file or a folder
    options: dict[str, Any] = {"size": look.size, "renderer": look.renderer, "background": str(look.background),
                               "color": str(look.color), "shape": str(shape) if shape else None}
    frames_iter: Iterator[np.ndarray]
    closer: Any
    if kind == "vertices":
        if shape is not None or flame is not None:
            raise InputError("--shape and --flame apply to motion input; a vertices file already holds the mesh")
        from artalk_core.formats.vertices import read_vertices

        assert path is not None
        input_sha = input_sha or sha256_file(path)
        vf = read_vertices(path)
        n_frames, faces = vf.frames, np.asarray(vf.faces)
        frames_iter = iter(vf)
        head_sha = vf.meta.get("head_sha256", "")
        standin = str(vf.meta.get("head_is_standin", "false")).lower() == "true"
        head_label = "stand-in" if standin else "from vertices file"
        inputs = {"vertices": input_sha}
        closer = vf
    else:
        from artalk_core.flame import load_shape, resolve_flame
        from artalk_core.formats.motion import MotionReader

        motion: MotionReader | _MotionData = _MotionData(data) if path is None else MotionReader(path, label=name)
        closer = motion
        try:
            input_sha = input_sha or sha256_file(path or "")
            head = resolve_flame(flame, job.model.assets, allow_standin=job.allow_standin)
            beta = load_shape(shape) if shape is not None else None
            n_frames, faces = motion.frames, np.asarray(head.faces)
            frames_iter = _skinned(head, motion, beta)
        except BaseException:
            motion.close()
            raise
        head_sha, standin = head.sha256, head.is_standin
        head_label = "stand-in" if standin else f"FLAME ({head.source})"
        inputs = {"motion": input_sha, "head": head_sha}
        if shape is not None:
            inputs["shape"] = sha256_file(shape)

    meta = {**provenance("artalk render", options=options, inputs=inputs),
            "head": head_label, "head_is_standin": str(bool(standin)).lower(), "fps": str(FPS)}

    try:
        if _is_h5(job.output):
            if job.audio is not None:
                raise InputError("--audio needs a video output; -o FILE.h5 writes vertices only")
            _write_vertices(job.output, frames_iter, faces, meta, n_frames, job.progress)
            return RenderResult(output=Path(job.output), frames=n_frames, head=head_label, head_is_standin=standin,
                                meta=meta)
        return _render_video(frames_iter, faces, n_frames=n_frames, job=job, meta=meta, head_label=head_label,
                             standin=standin)
    finally:
        closer.close()


class _MotionData:
    """Motion frames in memory [T,106] read like a :class:`MotionReader` (frames, blocks, close)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.frames = int(data.shape[0])

    def iter_blocks(self, block: int = 1024) -> Iterator[np.ndarray]:
        for start in range(0, self.frames, block):
            yield np.asarray(self.data[start:start + block], dtype=np.float32)

    def close(self) -> None:
        pass


def _skinned(head: Any, motion: Any, beta: Any) -> Iterator[np.ndarray]:
    """Vertices [V,3] per frame of a :class:`MotionReader`, skinned as the frames are read."""
    for block in motion.iter_blocks(1024):
        yield from head.iter_vertices(block, beta, with_global=True)


def _write_vertices(path: PathLike, frames: Iterator[np.ndarray], faces: np.ndarray, meta: dict[str, str],
                    n_frames: int, progress: OptionalProgress) -> None:
    from artalk_core.formats.vertices import VerticesWriter

    with VerticesWriter(path, faces, meta=meta, expected_frames=n_frames) as w:
        for i, v in enumerate(frames):
            w.write(v)
            report(progress, "vertices", i + 1, n_frames)


def _render_video(frames: Iterator[np.ndarray], faces: np.ndarray, *, n_frames: int, job: _Job,
                  meta: dict[str, str], head_label: str, standin: bool) -> RenderResult:
    from artalk_core.frames import is_frames_dir
    from artalk_core.render.mesh import create_renderer

    output, verts, progress, look = job.output, job.verts, job.progress, job.look
    if is_frames_dir(output) and (job.audio is not None or verts is not None):
        raise InputError("--audio and --verts need a video output; -o DIR/ writes PNG frames only")
    samples = _audio_samples(job.audio, meta)
    rend = create_renderer(faces, backend=look.renderer, size=look.size, background=look.background,
                           color=look.color, device=job.model.device)
    with contextlib.ExitStack() as stack:
        stack.callback(rend.close)
        vw = None
        if verts is not None:
            from artalk_core.formats.vertices import VerticesWriter

            vw = stack.enter_context(VerticesWriter(verts, faces, meta=meta, expected_frames=n_frames))

        def images() -> Iterator[np.ndarray]:
            for i, v in enumerate(frames):
                if vw is not None:
                    vw.write(v)
                yield rend.render(v)
                report(progress, "render", i + 1, n_frames)

        count = _write_images(output, images(), samples, meta, force=job.force)
    return RenderResult(output=Path(output), frames=count, head=head_label, head_is_standin=standin,
                        vertices=Path(verts) if verts is not None else None, with_audio=samples is not None,
                        meta=meta)


def _write_images(output: PathLike, images: Iterator[np.ndarray], samples: Any, meta: dict[str, str], *,
                  force: bool = False) -> int:
    """Frames to an MP4 (with the audio samples, if any) or, for ``-o DIR/``, to PNG frames."""
    from artalk_core.frames import is_frames_dir, write_frames
    from artalk_core.video import write_video

    if is_frames_dir(output):
        return write_frames(output, images, meta=meta, force=force)
    return write_video(output, images, audio=samples, fps=FPS, meta=meta)


def _audio_samples(audio: PathLike | bytes | Audio | None, meta: dict[str, str]) -> Any:
    """The audio to mux: samples decoded block by block (the first block read now, so a file too short
    to use fails before anything is rendered); its hash goes into ``meta``."""
    if audio is None:
        return None
    import itertools

    from artalk_core.audio import Audio, iter_audio

    if isinstance(audio, Audio):
        meta["audio_sha256"] = audio.sha256
        return audio.samples
    stream = iter_audio(audio)
    blocks = iter(stream)
    first = next(blocks, None)
    meta["audio_sha256"] = stream.sha256
    return itertools.chain([] if first is None else [first], blocks)


# ---- photoreal avatar (GAGAvatar) ------------------------------------------------------------------

def _render_avatar(path: Path | None, input_sha: str, *, name: str, job: _Job,
                   data: np.ndarray | None = None) -> RenderResult:
    """Motion (a file, or ``data`` [T,106] with ``path`` None) -> photoreal frames (MP4 or PNG folder).
    Every input is checked before any frame is made."""
    from artalk_core.fileio import sha256_file
    from artalk_core.formats import sniff_kind
    from artalk_core.frames import is_frames_dir
    from artalk_core.render.avatar.renderer import open_avatar, resolve_source

    output, audio, progress, a = job.output, job.audio, job.progress, job.look.avatar
    assert a is not None
    if _is_h5(output):
        raise InputError("--avatar renders frames; -o FILE.h5 (vertices only) does not apply")
    if is_frames_dir(output) and audio is not None:
        raise InputError("--audio needs a video output; -o DIR/ writes PNG frames only")
    if path is not None and sniff_kind(path) == "vertices":
        raise InputError("--avatar needs a motion file (the avatar is driven by FLAME codes), not vertices")
    from artalk_core.formats.motion import MotionReader

    src = resolve_source(a, flame=job.look.flame, assets=job.model.assets)
    reader: MotionReader | _MotionData = _MotionData(data) if path is None else MotionReader(path, label=name)
    with contextlib.closing(reader) as motion:
        n_frames = motion.frames  # the reader refused NaN/inf on opening: no frame is made from bad motion
        rend = open_avatar(a, source=src, device=job.model.device, precision=job.model.precision, progress=progress)
        from artalk_core.model.precision import precision_options

        options = {"avatar": str(a.avatar), "avatar_noise": a.avatar_noise, "seed": a.seed,
                   "rasterizer": rend.backend_used, **precision_options(job.model.precision, rend.precision)}
        meta = {**provenance("artalk render", options=options,
                             inputs={"motion": input_sha or sha256_file(path or ""), "head": src.flame.sha256}),
                **rend.meta, "head": f"GAGAvatar '{src.entry.name}' (FLAME {src.flame.source})",
                "head_is_standin": "false", "fps": str(FPS)}
        samples = _audio_samples(audio, meta)
        frames = rend.frames(motion.iter_blocks(64), total=n_frames, progress=progress)
        count = _write_images(output, frames, samples, meta, force=job.force)
    return RenderResult(output=Path(output), frames=count, head=meta["head"], head_is_standin=False,
                        with_audio=samples is not None, meta=meta)


def mux(video: PathLike, audio: PathLike, *, output: PathLike) -> dict[str, Any]:
    """Add ``audio`` (any format) to ``video`` as AAC, cut to the video's length as the reference does.

    The audio is decoded as the video's packets are copied, so its length does not matter.
    """
    check_not_input({"-o": output}, {"VIDEO": video, "AUDIO": audio})
    from artalk_core.audio import iter_audio
    from artalk_core.fileio import sha256_file
    from artalk_core.video import mux as mux_video
    from artalk_core.video import probe_video, video_container

    if is_stdio(output):
        raise InputError("mux cannot write to stdout (MP4 needs a seekable file): give -o FILE.mp4")
    video_container(output)
    from artalk_core.fileio import existing_file, input_file

    # A FIFO or /dev/stdin is read once into a temp file (a regular file is used as it is).
    with input_file(video) as (video_path, _, _), input_file(audio) as (audio_path, _, audio_name):
        existing_file(video_path, "video file")  # before hashing it
        stream = iter_audio(audio_path, label=audio_name)
        meta = provenance("artalk mux", inputs={"video": sha256_file(video_path), "audio": stream.sha256})
        mux_video(video_path, iter(stream), output, meta=meta)  # the decoded blocks, read as the video is copied
    return probe_video(output)
