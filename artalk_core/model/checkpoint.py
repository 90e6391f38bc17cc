"""Reading checkpoints and building / loading the ARTalk model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from artalk_core.errors import CheckpointError, ConfigError
from artalk_core.fileio import PathLike, load_torch
from artalk_core.model.artalk import ARTalkModel
from artalk_core.model.config import ModelConfig
from artalk_core.model.encoders import convert_encoder_keys, state_audio_encoder

_WRAPPER_KEYS = ("model", "state_dict")
_SHOW = 5


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def load_state_dict(path: PathLike) -> dict[str, Tensor]:
    """Tensors of a ``.pt`` (torch.save, weights only) or ``.safetensors`` checkpoint, on CPU.

    A ``.pt`` dict that wraps the state dict under ``model`` or ``state_dict`` is unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    with p.open("rb") as fh:
        head = fh.read(16)
    is_safetensors = p.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{")
    obj: Any
    if is_safetensors:
        from safetensors.torch import load_file

        try:
            obj = load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises several private error types
            raise CheckpointError(f"cannot read safetensors checkpoint '{p}': {exc}") from exc
    else:

        # pickle / zip errors of any kind mean "not a torch checkpoint" (torch's advice to load
        # with weights_only=False is never passed on)
        obj = load_torch(p, f"checkpoint '{p}' (a torch .pt or .safetensors file)", error=CheckpointError)
        if isinstance(obj, dict) and not _is_state_dict(obj):
            for key in _WRAPPER_KEYS:
                if _is_state_dict(obj.get(key)):
                    obj = obj[key]
                    break
    if not _is_state_dict(obj):
        raise CheckpointError(f"'{p}' does not hold a model state dict (a mapping of names to tensors)")
    return dict(obj)


def build_model(config: ModelConfig, device: str | torch.device = "cpu") -> ARTalkModel:
    """A randomly initialised model (eval mode). ``device="meta"`` allocates nothing."""
    try:
        with torch.device(device):
            model = ARTalkModel(config)
    # transformers rejects an inconsistent audio encoder config (ValueError, TypeError); torch sizes
    # that cannot be (RuntimeError, OverflowError: a dilation growing past int64)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise ConfigError(f"model config cannot build the model: {exc}") from exc
    return model.eval()


def expected_state(config: ModelConfig) -> dict[str, Tensor]:
    """The state dict a checkpoint of ``config`` holds, as meta tensors (names, shapes, dtypes):
    nothing is allocated, the Mimi encoder included."""
    from artalk_core.model.mimi import shapes_only

    with shapes_only():
        return build_model(config, device="meta").state_dict()


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def check_state_dict(state_dict: dict[str, Tensor], expected: dict[str, Tensor], source: str = "checkpoint",
                     *, hint: str = "wrong --model-config for this checkpoint?") -> None:
    """CheckpointError naming missing / unexpected / wrong-shape keys when ``state_dict`` does not fit.

    ``hint`` ends the message (the option that most likely explains the mismatch).
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_list(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_list(unexpected)}")
    if wrong:
        parts.append(f"{len(wrong)} wrong-shape key(s): " + _list(
            [f"{k} {_shape(state_dict[k])} (model wants {_shape(expected[k])})" for k in wrong]))
    raise CheckpointError(f"{source} does not match the model config: " + "; ".join(parts) + f" ({hint})")


def load_model(checkpoint: PathLike | dict[str, Tensor], config: ModelConfig,
               device: str | torch.device = "cpu", *, dtype: torch.dtype = torch.float32) -> ARTalkModel:
    """The model with every weight from ``checkpoint`` (a path or a state dict), in eval mode.

    Strict: any missing, unexpected or mis-shaped key raises CheckpointError. Floating-point
    tensors are cast to ``dtype``; key spellings of other library versions load (both weight-norm
    forms of the wav2vec2 positional conv, Mimi's flat and nested layouts). A config that does not
    name its audio encoder (the released config.json) takes the one the checkpoint holds, as the
    reference picks ``ARTalk_<encoder>.pt``; one that names the other encoder is a mismatch.
    """
    if isinstance(checkpoint, dict):
        state, source = checkpoint, "state dict"
    else:
        state, source = load_state_dict(checkpoint), f"checkpoint '{checkpoint}'"
    held = state_audio_encoder(state)
    hint = "wrong --model-config for this checkpoint?"
    if held is not None and held != config.audio_encoder:
        if not config.audio_encoder_stated:
            config = config.with_audio_encoder(held)
        else:
            hint = (f"the checkpoint holds a {held} audio encoder but the model config says AR_CONFIG.AUDIO_ENCODER "
                    f"{config.audio_encoder!r}: set it to {held!r} or give the matching --model-config")
    # The checkpoint's keys and shapes are compared with the config's before the model is made: a
    # Mimi encoder is made on the CPU (its computed buffers must be real), sized by the config.
    expected = expected_state(config)
    state = convert_encoder_keys(state, set(expected))
    check_state_dict(state, expected, source, hint=hint)
    model = build_model(config, device="meta")
    cast = {}
    for key, val in state.items():
        want = expected[key].dtype
        target = dtype if want.is_floating_point else want
        cast[key] = val.to(device=device, dtype=target)
    # Meta parameters are replaced by the checkpoint tensors: no second copy of 2 GB of weights. The
    # move takes the few buffers no checkpoint holds (Mimi's, made on the CPU) to the device too.
    model.load_state_dict(cast, strict=True, assign=True)
    return model.to(device).requires_grad_(False).eval()


__all__ = ["build_model", "check_state_dict", "expected_state", "load_model", "load_state_dict"]
