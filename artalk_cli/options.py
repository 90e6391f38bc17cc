"""Option types reused by every command, so flags are spelled the same everywhere.

Each flag fills the field of the same name in one of the core's option objects
(:mod:`artalk_core.options`): ``--assets``, ``--checkpoint``, ``--model-config``, ``--device`` and
``--precision`` a ``ModelOptions``; ``-s/--style``, ``--engine``, ``--clip-length``, ``--fix-pose`` and
``--seed`` a ``MotionOptions``; ``--flame``, ``--shape``, ``--size``, ``--renderer``, ``--background``
and ``--color`` a ``RenderOptions``, the ``--avatar...`` flags its ``AvatarOptions``. A command builds
those objects from its flags, and their checks run when it does (before any model is loaded); flags
with a check also run it while parsing, through the same core function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

T = TypeVar("T")


def checked(check: Callable[[T], None]) -> Callable[[T], T]:
    """An option callback running a core ``check`` (which raises an ArtalkError) when parsing."""

    def callback(value: T) -> T:
        from artalk_cli.console import fail
        from artalk_core.errors import ArtalkError

        if value is not None:
            try:
                check(value)
            except ArtalkError as e:
                raise fail(e, e.exit_code) from None
        return value

    return callback


def _precision(value: str) -> None:
    from artalk_core.options import check_precision

    check_precision(value)


def _seed(value: int) -> None:
    from artalk_core.options import check_seed

    check_seed(value)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or status output.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on error.")]
Assets = Annotated[Path | None, typer.Option(
    "--assets", help="Asset folder in the reference layout (default: $ARTALK_ASSETS, else ./assets).",
    show_default=False)]
Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", help="Model weights (.pt or .safetensors; default: <assets>/ARTalk_wav2vec.pt, or ARTalk_mimi.pt "
                         "when the model config says AUDIO_ENCODER mimi).",
    show_default=False)]
ModelConfig = Annotated[Path | None, typer.Option(
    "--model-config", help="Model config JSON (default: <assets>/config.json, else the released config).",
    show_default=False)]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
ClipLength = Annotated[int | None, typer.Option(
    "--clip-length", min=0, help="Keep at most this many frames; 0 keeps all (default 750 = 30 s, as the reference).",
    show_default=False)]
FixPose = Annotated[bool, typer.Option("--fix-pose", help="Zero the global head rotation (channels 100:103).")]
Precision = Annotated[str, typer.Option(
    "--precision", callback=checked(_precision),
    help="fp32 (exact, default), bf16 or fp16: faster where the hardware has fast kernels for them, but the "
         "motion drifts from fp32; auto: the fastest one here, measured once and cached (see README, Performance).")]
AvatarPrecision = Annotated[str, typer.Option(
    "--precision", callback=checked(_precision),
    help="With --avatar, the upsampler's precision: fp32 (exact, default), bf16 or fp16 (faster where the CPU or "
         "GPU has native kernels for them; frames differ by about 1/255 at most); auto: the fastest one here, "
         "measured once and cached.")]
Seed = Annotated[int, typer.Option("--seed", callback=checked(_seed),
                                   help="Seed of the random parts: the energy engine's head sway, the avatar "
                                        "upsampler's noise.")]

# Photoreal avatar (GAGAvatar) flags of `render` and `animate`
Avatar = Annotated[str | None, typer.Option(
    "--avatar", help="Render the photoreal GAGAvatar head of this tracked avatar: a name in tracked.pt "
                     "(e.g. 12.jpg) or the path of a single tracked entry file.", show_default=False)]
Tracked = Annotated[Path | None, typer.Option(
    "--tracked", help="Tracked avatars file (default: <assets>/GAGAvatar/tracked.pt).", show_default=False)]
AvatarCheckpoint = Annotated[Path | None, typer.Option(
    "--avatar-checkpoint", help="GAGAvatar weights, .pt or .safetensors (default: <assets>/GAGAvatar/GAGAvatar.pt).",
    show_default=False)]
AvatarConfig = Annotated[Path | None, typer.Option(
    "--avatar-config", help="JSON of GAGAvatar sizes (default: the released ones).", show_default=False)]
AvatarNoise = Annotated[str, typer.Option(
    "--avatar-noise", help="Upsampler noise: seeded (from --seed, deterministic), stored (the checkpoint's "
                           "buffers) or none.")]
Watermark = Annotated[Path | None, typer.Option(
    "--watermark", help="RGBA image blended at the bottom right of avatar frames, as the reference's logo.",
    show_default=False)]
