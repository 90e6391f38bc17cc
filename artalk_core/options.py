"""The options of artalk, declared once: frozen dataclasses whose fields are named like the CLI flags.

Each group holds what one concern needs. Every field has its default and its meaning here, and its
check in ``__post_init__``: a wrong value (or a combination that cannot work) raises
:class:`~artalk_core.errors.OptionsError` (an InputError, exit 2, and a ValueError) when the object
is made, before any file is read or model loaded.

- :class:`ModelOptions`: which model files (the asset folder), on which device, in which precision.
- :class:`MotionOptions`: what ``generate`` makes of speech: style, engine, post-processing.
- :class:`AvatarOptions`: the photoreal GAGAvatar head.
- :class:`RenderOptions`: how the head is drawn: the mesh's look, or an avatar.

Front ends build them: the CLI from its flags (``artalk_cli.options`` declares each flag once),
the batch runner from a jobs file's columns, the web app and the live server from their requests.
A flat mapping of field names (``{"style": ..., "size": ..., "avatar": ...}``, a jobs row or
keywords) becomes the groups with :func:`from_flat`; :func:`flat_fields` lists the names it takes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from artalk_core.colors import Color, parse_color
from artalk_core.constants import (
    AVATAR_NOISE_MODES,
    BACKGROUND_COLOR,
    IMAGE_SIZE,
    MAX_IMAGE_SIZE,
    MESH_COLOR,
    MESH_RENDERERS,
    MIN_IMAGE_SIZE,
    PRECISIONS,
    SEED_LIMIT,
)
from artalk_core.errors import OptionsError
from artalk_core.fileio import PathLike

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?|egl(:\d+)?")
"""Device names a user may give (``egl:N`` picks a GPU for the OpenGL renderer only)."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`~artalk_core.constants.PRECISIONS`, else OptionsError."""
    if precision not in PRECISIONS:
        raise OptionsError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    return precision


def check_device(device: str) -> str:
    """``device`` if it names a device kind artalk knows (whether it exists is checked on use)."""
    if not isinstance(device, str) or _DEVICE.fullmatch(device.strip().lower()) is None:
        raise OptionsError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N")
    return device


def check_seed(seed: int) -> int:
    """A seed numpy and torch both take: 0 <= seed < 2**32."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise OptionsError(f"--seed must be a whole number between 0 and {SEED_LIMIT - 1}, got {seed!r}")
    return seed


def _whole(value: Any, flag: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionsError(f"{flag} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise OptionsError(f"{flag} must be {bound}, got {value}")


@dataclass(frozen=True)
class ModelOptions:
    """Which ARTalk model runs, where, and in which precision (``--assets`` ... ``--precision``).

    ``render`` and ``export`` use its asset folder (the FLAME head, the avatars) and its device.
    """

    assets: PathLike | None = None
    """The asset folder, in the reference tool's layout; None: ``$ARTALK_ASSETS``, else ``./assets``."""
    checkpoint: PathLike | None = None
    """The model weights (``.pt`` or ``.safetensors``); None: the asset folder's (``ARTalk_<encoder>.pt``)."""
    model_config: PathLike | None = None
    """The model config JSON; None: ``<assets>/config.json``, else the released config."""
    device: str = "auto"
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    precision: str = "fp32"
    """``fp32`` (exact), ``bf16``, ``fp16``, or ``auto``: the fastest measured on this machine (cached)."""

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_device(self.device)


@dataclass(frozen=True)
class MotionOptions:
    """What ``generate`` makes of speech (``-s/--style`` ... ``--seed``)."""

    style: Any = None
    """``None``/``"default"`` (no style), a name in ``<assets>/style_motion/``, a style or motion file,
    a [50,106] array, or a resolved :class:`~artalk_core.styles.Style`."""
    style_start: int = 0
    """First frame of the 50-frame style clip taken from a motion file."""
    engine: Any = "artalk"
    """A registered motion engine's name (``artalk``: the model; ``energy``: weight-free), or an engine
    object; a name is looked up in the registry when the engine is made."""
    clip_length: int | None = None
    """Keep at most this many frames; None: 750 (30 s, as the reference); 0: all."""
    fix_pose: bool = False
    """Zero the global head rotation (channels 100:103)."""
    seed: int = 0
    """Seed of the engine's random parts (the energy engine's head sway)."""

    def __post_init__(self) -> None:
        _whole(self.style_start, "--style-start", 0)
        if self.clip_length is not None:
            _whole(self.clip_length, "--clip-length", 0)
        if not isinstance(self.fix_pose, bool):
            raise OptionsError(f"--fix-pose must be true or false, got {self.fix_pose!r}")
        check_seed(self.seed)
        if not isinstance(self.engine, str) and not hasattr(self.engine, "motion"):
            raise OptionsError(f"--engine must be an engine's name, got {self.engine!r}")


@dataclass(frozen=True)
class AvatarOptions:
    """The photoreal GAGAvatar head (``--avatar`` ... ``--watermark``)."""

    avatar: PathLike
    """A name in ``tracked`` (``12.jpg``) or the path of a single tracked-entry file."""
    tracked: PathLike | None = None
    """The tracked avatars; None: ``<assets>/GAGAvatar/tracked.pt``."""
    avatar_checkpoint: PathLike | None = None
    """The GAGAvatar weights; None: ``<assets>/GAGAvatar/GAGAvatar.pt``."""
    avatar_config: PathLike | None = None
    """A JSON of network sizes; None: the released ones."""
    avatar_noise: str = "seeded"
    """The upsampler's noise: ``seeded`` (from ``seed``), ``stored`` (the checkpoint's buffers) or ``none``."""
    watermark: PathLike | None = None
    """An RGBA image blended at the bottom right, as the reference's logo."""
    seed: int = 0
    """Seed of the ``seeded`` noise."""

    def __post_init__(self) -> None:
        if self.avatar is None or str(self.avatar).strip() == "":
            raise OptionsError("--avatar needs a name in tracked.pt or a tracked entry file")
        if self.avatar_noise not in AVATAR_NOISE_MODES:
            raise OptionsError(f"unknown --avatar-noise '{self.avatar_noise}': choose one of "
                               f"{', '.join(AVATAR_NOISE_MODES)}")
        check_seed(self.seed)


@dataclass(frozen=True)
class RenderOptions:
    """How the head is drawn: the FLAME mesh's look (``--flame`` ... ``--color``), or ``avatar``."""

    flame: PathLike | None = None
    """The FLAME head file; None: ``<assets>/FLAME_with_eye.pt``, else the bundled stand-in head."""
    shape: PathLike | None = None
    """A FLAME shape (identity) vector file ([300]); None: the template's shape."""
    size: int = IMAGE_SIZE
    """Square image size in pixels (even)."""
    renderer: str = "gl"
    """``gl`` (moderngl, offscreen) or ``pytorch3d`` (where installed)."""
    background: Color = BACKGROUND_COLOR
    """Background colour: a name, ``#rrggbb`` or ``r,g,b``."""
    color: Color = MESH_COLOR
    """The mesh's colour."""
    avatar: AvatarOptions | None = None
    """The photoreal head instead of the mesh (then the mesh's look options keep their defaults)."""

    def __post_init__(self) -> None:
        _whole(self.size, "--size", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.renderer not in MESH_RENDERERS:
            raise OptionsError(f"unknown renderer '{self.renderer}': choose one of {', '.join(MESH_RENDERERS)}")
        background, color = parse_color(self.background, "--background"), parse_color(self.color, "--color")
        if self.avatar is not None:
            given = [flag for flag, used in (
                ("--size", self.size != IMAGE_SIZE), ("--renderer", self.renderer != "gl"),
                ("--background", background != tuple(BACKGROUND_COLOR)), ("--color", color != tuple(MESH_COLOR)),
                ("--shape", self.shape is not None)) if used]
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise OptionsError(f"{', '.join(given)} {verb} to the mesh only; --avatar renders the photoreal "
                                   f"head at its network's size, with its own colours and FLAME shape")

    @property
    def rgb(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(background, mesh colour) as (r, g, b) in 0-255."""
        return parse_color(self.background, "--background"), parse_color(self.color, "--color")


GROUPS: tuple[type, ...] = (ModelOptions, MotionOptions, RenderOptions, AvatarOptions)
"""The option groups, in the order their fields are listed."""

G = TypeVar("G")


def field_names(group: type) -> tuple[str, ...]:
    """The flat names a group takes (RenderOptions' ``avatar`` is the avatar's name, see :func:`from_flat`)."""
    return tuple(f.name for f in dataclasses.fields(group))


def flat_fields(groups: Iterable[type] = GROUPS) -> tuple[str, ...]:
    """Every flat option name of ``groups``, each once, in declaration order."""
    names: dict[str, None] = {}
    for group in groups:
        names.update(dict.fromkeys(field_names(group)))
    return tuple(names)


def pick(group: type[G], values: Mapping[str, Any]) -> G:
    """``group`` made of the entries of ``values`` that are its fields (the others are ignored)."""
    names = set(field_names(group))
    return group(**{k: v for k, v in values.items() if k in names})


def from_flat(values: Mapping[str, Any]) -> tuple[ModelOptions, MotionOptions, RenderOptions]:
    """(model, motion, render options) of a flat mapping of option names (a jobs row, keywords).

    ``avatar`` (a name) with the ``avatar_*`` fields, ``watermark`` and ``seed`` becomes the
    :class:`AvatarOptions` of the render options; ``seed`` seeds the motion engine too. A name that
    belongs to no group is a TypeError, as an unknown keyword is.
    """
    unknown = sorted(set(values) - set(flat_fields()))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    mesh = {k: v for k, v in values.items() if k in field_names(RenderOptions) and k != "avatar"}
    avatar = None
    if values.get("avatar") is not None:
        avatar = pick(AvatarOptions, values)
    return pick(ModelOptions, values), pick(MotionOptions, values), RenderOptions(**mesh, avatar=avatar)


def to_flat(*groups: Any) -> dict[str, Any]:
    """The flat mapping of option objects (the inverse of :func:`from_flat`)."""
    flat: dict[str, Any] = {}
    for group in groups:
        for f in dataclasses.fields(group):
            value = getattr(group, f.name)
            if isinstance(value, AvatarOptions):
                flat.update(to_flat(value))
            elif not (f.name == "avatar" and value is None and "avatar" in flat):
                flat[f.name] = value
    return flat


__all__ = ["AvatarOptions", "GROUPS", "ModelOptions", "MotionOptions", "RenderOptions", "check_device",
           "check_precision", "check_seed", "field_names", "flat_fields", "from_flat", "pick", "to_flat"]
