"""One clip of a batch, as a worker runs it: skip it if its outputs are current, else make them.

A clip's outputs sit in the batch's output folder under the clip's name (``NAME.mp4``,
``NAME.motion.safetensors``, ``NAME.h5``, ``NAME.glb``). Beside them, ``.artalk-batch/NAME.json``
records what made them (the row's key, the sha256 of every input, the sha256 of every output);
``.artalk-batch/work/NAME/`` keeps the intermediates ``animate --keep`` reuses, so a rerun with a
changed style does not re-encode the audio.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artalk_core import records
from artalk_core.batch.jobs import Job, options_of
from artalk_core.constants import BATCH_STATE_DIR
from artalk_core.errors import ArtalkError, DependencyError, OutputError
from artalk_core.fileio import atomic_output, make_folder, sha256_file_cached
from artalk_core.options import ModelOptions
from artalk_core.records import Recipe

if TYPE_CHECKING:
    from artalk_core.animate import AnimateOptions

SUFFIXES: dict[str, str] = {"mp4": ".mp4", "motion": ".motion.safetensors", "vertices": ".h5", "glb": ".glb"}
"""File name ending of each output kind."""

@dataclass(frozen=True)
class WorkerConfig:
    """What every clip of a batch shares: where outputs go, and the model's files and device (a row's
    ``precision`` is its own)."""

    output_dir: str
    model: ModelOptions = field(default_factory=ModelOptions)
    force: bool = False


@dataclass
class ClipResult:
    """How one clip ended: ``status`` is done, skipped (its outputs were current), failed or interrupted."""

    row: int
    name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The results file's line (shallow: ``dataclasses.asdict`` deep-copies, 2 s per 100k clips)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def targets(job: Job, output_dir: Path) -> dict[str, Path]:
    """Output kind -> path, for the kinds the job asks for."""
    return {kind: output_dir / f"{job.name}{SUFFIXES[kind]}" for kind in job.outputs}


def record_path(job: Job, output_dir: Path) -> Path:
    return output_dir / BATCH_STATE_DIR / f"{job.name}.json"


def input_hashes(job: Job, cfg: WorkerConfig) -> dict[str, str]:
    """sha256 of everything the clip is made from (files the row names, the style, model and head)."""
    from artalk_core.flame import resolve_flame
    from artalk_core.styles import resolve_style

    o, m = job.options, cfg.model
    hashes: dict[str, str] = {}
    for key in ("audio", "shape", "watermark", "avatar_config"):
        if o.get(key):
            hashes[key] = sha256_file_cached(o[key])
    hashes["style"] = resolve_style(o.get("style"), assets=m.assets).sha256
    if o.get("engine", "artalk") == "artalk":
        from artalk_core.assets import checkpoint_path

        hashes["checkpoint"] = sha256_file_cached(checkpoint_path(m.checkpoint, m.assets, model_config=m.model_config))
    hashes["head"] = resolve_flame(o.get("flame"), m.assets).sha256
    look = animate_options(job, cfg).look
    if look.avatar is not None:  # the photoreal head: its network and the tracked person
        from artalk_core.render.avatar.renderer import resolve_source

        src = resolve_source(look.avatar, flame=look.flame, assets=m.assets)
        hashes["avatar_checkpoint"] = sha256_file_cached(src.checkpoint)
        hashes["avatar"] = src.entry.sha256
    return hashes


def recipe(job: Job, inputs: dict[str, str]) -> Recipe:
    """What a clip is made from: its inputs' hashes and its row's key (options and outputs)."""
    return Recipe(inputs, {"key": job.key})


def is_current(job: Job, cfg: WorkerConfig, inputs: dict[str, str]) -> bool:
    """True when the clip's record matches the row and its inputs, and every output is as recorded
    (:mod:`artalk_core.records`: a record of any other shape means the clip is remade)."""
    out = Path(cfg.output_dir)
    return records.is_current(record_path(job, out), recipe(job, inputs), targets(job, out))


def partial_files(job: Job, output_dir: Path) -> list[Path]:
    """Temporary files a worker killed while making this clip may have left (``atomic_output``'s
    ``.NAME.*.part*`` beside each of the clip's files, and any in its work folder): never a
    finished output, and never a file of another clip or of the user."""
    import glob

    def matching(folder: Path, pattern: str) -> list[Path]:
        # root_dir: the folder's own name may hold glob characters ("out[1]")
        return [folder / name for name in glob.glob(pattern, root_dir=folder)]

    found: list[Path] = []
    for path in [*targets(job, output_dir).values(), record_path(job, output_dir)]:
        found += matching(path.parent, f".{glob.escape(path.name)}.*.part*")
    if _linked_folder(output_dir, BATCH_STATE_DIR, "work", job.name) is None:  # never clean up through a link
        found += matching(output_dir / BATCH_STATE_DIR / "work" / job.name, ".*.part*")
    return [p for p in found if p.is_file()]


def _linked_folder(output_dir: Path, *parts: str) -> Path | None:
    """The first of ``output_dir/parts[0]``, ``output_dir/parts[0]/parts[1]``... that is a symbolic
    link, else None."""
    path = output_dir
    for part in parts:
        path = path / part
        if path.is_symlink():
            return path
    return None


def state_folder(output_dir: Path, *parts: str) -> Path:
    """``output_dir/BATCH_STATE_DIR/parts...`` made (as :func:`~artalk_core.fileio.make_folder`) and
    returned; OutputError when it or a folder on the way there is a symbolic link: the state folder
    is the batch's own, and writing (or cleaning up) through a link planted there would touch files
    outside the output folder. The link is refused, never followed, and left as it is."""
    link = _linked_folder(output_dir, BATCH_STATE_DIR, *parts)
    if link is not None:
        raise OutputError(f"cannot use {link}: it is a symbolic link, and the batch keeps its state only inside "
                          f"the output folder; remove the link")
    path = output_dir
    for part in (BATCH_STATE_DIR, *parts):  # one at a time: each says which of them is in the way
        path = make_folder(path / part)
    return path


def work_folder(job: Job, output_dir: Path) -> Path:
    """The clip's folder of intermediates, ``.artalk-batch/work/NAME`` (no link on the way, nor its
    records' folder: see :func:`state_folder`)."""
    state_folder(output_dir, "work", job.name, records.RecordFolder.DIR)
    return output_dir / BATCH_STATE_DIR / "work" / job.name


def check_writable(job: Job, output_dir: Path) -> None:
    """OutputError, before any work, when one of the clip's files (outputs, record) is in the way
    as a folder or a special file (a FIFO there would block, a folder would fail after the work)."""
    for path in [*targets(job, output_dir).values(), record_path(job, output_dir)]:
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder")
        if path.exists() and not path.is_file():
            raise OutputError(f"cannot write {path}: it is not a regular file")


def _publish(src: Path, dst: Path) -> None:
    """Put an intermediate at its output name atomically (a hard link where possible, else a copy).

    An output that already is that very file (a rerun published it before) is left as it is: a
    rename onto another link of the same file does nothing, which would leave the temporary link
    behind as a hidden ``.part`` file.
    """
    import shutil

    with contextlib.suppress(OSError):
        if os.path.samefile(src, dst):
            return
    with atomic_output(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def animate_options(job: Job, cfg: WorkerConfig) -> AnimateOptions:
    """The clip's :class:`~artalk_core.animate.AnimateOptions`: the row's, with the batch's model files
    and device (and the row's precision, if it names one)."""
    opts = options_of(job.options)
    model = dataclasses.replace(cfg.model, precision=opts.model.precision) if "precision" in job.options else cfg.model
    return dataclasses.replace(opts, model=model)


def make_clip(job: Job, cfg: WorkerConfig, inputs: dict[str, str]) -> dict[str, Path]:
    """Run the chain for one clip; return the outputs written (kind -> path)."""
    from artalk_core.animate import animate

    out = Path(cfg.output_dir)
    want = targets(job, out)
    work = work_folder(job, out)
    video = want.get("mp4", work / "video.mp4")
    res = animate(animate_options(job, cfg), output=video, keep=work)
    if "mp4" not in want:
        video.unlink(missing_ok=True)
    for kind, role in (("motion", "motion"), ("vertices", "vertices")):
        if kind in want:
            _publish(res.files[role], want[kind])
    if "glb" in want:
        try:
            from artalk_core.export import export
        except ImportError:
            raise DependencyError("glb output needs the glTF exporter (`artalk export`)") from None
        export(res.files["motion"], output=want["glb"], flame=job.options.get("flame"),
               shape=job.options.get("shape"), assets=cfg.model.assets)
    records.write_record(record_path(job, out), recipe(job, inputs), want, row=job.as_dict())
    return want


def run_clip(job: Job, cfg: WorkerConfig) -> ClipResult:
    """Make (or skip) one clip. Errors of the clip are returned as a failed result, never raised;
    an interrupt (KeyboardInterrupt, SystemExit from a signal) propagates."""
    start = time.perf_counter()
    result = ClipResult(row=job.row, name=job.name, status="failed", options=dict(job.options))
    if job.error is not None:
        result.error = job.error
        return result
    try:
        inputs = input_hashes(job, cfg)
        if not cfg.force and is_current(job, cfg, inputs):
            result.status = "skipped"
            result.outputs = {k: str(p) for k, p in targets(job, Path(cfg.output_dir)).items()}
        else:
            check_writable(job, Path(cfg.output_dir))
            records.forget(record_path(job, Path(cfg.output_dir)))  # a failed remake must not look current
            made = make_clip(job, cfg, inputs)
            result.status = "done"
            result.outputs = {k: str(p) for k, p in made.items()}
    except ArtalkError as e:
        result.error = str(e)
    except Exception as e:  # a bug shows as this clip's failure; the batch goes on
        result.error = f"unexpected {type(e).__name__}: {e}"
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def lost_result(job: Job, what: str, tries: int, seconds: float) -> ClipResult:
    """The failed result of a clip whose worker was lost under it (a killed process, a dead actor)
    on each of its ``tries``."""
    error = f"{what} (tried {tries} time{'' if tries == 1 else 's'})"
    return ClipResult(row=job.row, name=job.name, status="failed", seconds=round(seconds, 3), error=error,
                      options=dict(job.options))
