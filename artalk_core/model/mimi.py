"""The second audio encoder: Kyutai's Mimi codec encoder (``transformers.MimiModel``), as ARTalk uses it.

Per 4-s chunk (64,000 samples at 16 kHz): resampled to 24 kHz with torchaudio's sinc kernel (our
:mod:`artalk_core.audio.resample`, bit for bit), encoded to codes by ``MimiModel.encode``, and the
features are ``quantizer.decode(codes)``, [B, 512, 50] permuted to [B, 50, 512] (12.5 Hz, no upsampling).
The module sits at ``audio_encoder.acoustic_model`` in the ARTalk state dict, buffers included (the
codebooks), so a checkpoint carries every number; nothing is read from a hub.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from artalk_core.constants import MIMI_SAMPLE_RATE, SAMPLE_RATE
from artalk_core.errors import DependencyError

PREFIX = "audio_encoder.acoustic_model."
"""Where the Mimi weights sit in the ARTalk state dict (the reference's wrapper names it ``acoustic_model``)."""

MIMI_TRANSFORMERS_HINT = "the Mimi audio encoder needs transformers >= 4.45 (pip install -U transformers)"

# The two layouts of MimiModel's state dict: transformers 4.x keeps the flat one the kyutai/mimi files
# use; newer versions nest the halves (encoder.encoder_seanet..., decoder.decoder_seanet...). Pairs of
# (flat prefix, nested prefix) under ``acoustic_model.``; a checkpoint of either form loads into either.
LAYOUT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("encoder.layers.", "encoder.encoder_seanet.layers."),
    ("encoder_transformer.", "encoder.encoder_transformer."),
    ("downsample.", "encoder.downsample."),
    ("upsample.", "decoder.upsample."),
    ("decoder_transformer.", "decoder.decoder_transformer."),
    ("decoder.layers.", "decoder.decoder_seanet.layers."),
)


_SHAPES_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("artalk_mimi_shapes_only", default=False)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Within the block, a Mimi encoder made on the meta device stays there whole (its computed
    buffers too): a model made only for its state dict's shapes allocates nothing, so a checkpoint
    is compared with a model config before the encoder is made on the CPU (see ``__init__``)."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def _mimi_classes() -> tuple[Any, Any]:
    try:
        from transformers import MimiConfig, MimiModel
    except ImportError:
        raise DependencyError(MIMI_TRANSFORMERS_HINT) from None
    return MimiConfig, MimiModel


def _no_weight_init() -> contextlib.AbstractContextManager[Any]:
    """transformers' switch that skips random initialisation (the weights come from a checkpoint):
    ``transformers.initialization.no_init_weights`` (5.x) or ``modeling_utils``' (4.x), else nothing."""
    for module in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            ctx = getattr(importlib.import_module(module), "no_init_weights", None)
        except ImportError:
            continue
        if ctx is not None:
            return ctx()
    return contextlib.nullcontext()


class MimiAudioEncoder(nn.Module):
    """16 kHz chunks [G, 64000] -> Mimi features [G, F, C] (F = 50, C = 512 for kyutai/mimi)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        mimi_config_cls, mimi_model_cls = _mimi_classes()
        cfg = mimi_config_cls(**config)
        here = torch.empty(0).device
        if here.type == "meta" and not _SHAPES_ONLY.get():
            # Built for a checkpoint to be assigned into (checkpoint.load_model). MimiModel computes
            # non-persistent buffers in __init__ (the causal convolutions' paddings, the rotary
            # frequencies) that no checkpoint holds: they must be real numbers, so the module is made
            # on the CPU with transformers' random initialisation skipped (the weights are only
            # allocated, then replaced); see :meth:`_apply` for the move to the model's device.
            # (transformers' switch patches torch.nn.init while the module is made: a random
            # initialisation in another thread at that moment would be skipped too.)
            with torch.device("cpu"), _no_weight_init():
                self.acoustic_model = mimi_model_cls(cfg)
        else:
            self.acoustic_model = mimi_model_cls(cfg)
        self.acoustic_model.eval()
        self.register_load_state_dict_post_hook(lambda module, keys: module.forget_codebooks())

    def forget_codebooks(self) -> None:
        """Drop the codebooks' cached ``embed`` (embed_sum / cluster_usage): recomputed at the next use
        from the buffers as they are now (after a load, a move or a cast)."""
        for mod in self.acoustic_model.modules():
            if hasattr(mod, "_embed"):
                mod._embed = None

    def _apply(self, fn: Any, recurse: bool = True) -> MimiAudioEncoder:
        super()._apply(fn, recurse)
        self.forget_codebooks()
        return self

    def forward(self, chunks: Tensor) -> Tensor:
        """16 kHz chunks [G, S] -> features [G, F, C] (the model's device; float32 out of the codebooks)."""
        audio = resample_chunks(chunks).to(device=chunks.device, dtype=chunks.dtype)
        codes = self.acoustic_model.encode(audio[:, None]).audio_codes
        return self.acoustic_model.quantizer.decode(codes).permute(0, 2, 1)


def resample_chunks(chunks: Tensor) -> Tensor:
    """16 kHz chunks [G, S] -> 24 kHz [G, ceil(1.5 S)] float32 CPU, each row on its own (zero beyond
    both ends, as ``torchaudio.functional.resample`` of the chunk gives it, bit for bit)."""
    from artalk_core.audio.resample import resample

    rows = chunks.detach().to(device="cpu", dtype=torch.float32).numpy()
    return torch.from_numpy(np.ascontiguousarray(resample(rows, SAMPLE_RATE, target=MIMI_SAMPLE_RATE)))


def is_mimi_state(state_dict: dict[str, Tensor]) -> bool:
    """Whether a state dict holds a Mimi audio encoder (``audio_encoder.acoustic_model.*`` keys)."""
    return any(k.startswith(PREFIX) for k in state_dict)


def convert_layout_keys(state_dict: dict[str, Tensor], expected_keys: set[str]) -> dict[str, Tensor]:
    """Rename Mimi keys between the flat and nested layouts to whichever ``expected_keys`` uses
    (others untouched; a key whose renamed form is also given is left for the mismatch report)."""
    out: dict[str, Tensor] = {}
    for key, val in state_dict.items():
        new = key
        if key.startswith(PREFIX) and key not in expected_keys:
            rest = key[len(PREFIX):]
            for flat, nested in LAYOUT_PREFIXES:
                for src, dst in ((flat, nested), (nested, flat)):
                    if rest.startswith(src) and PREFIX + dst + rest[len(src):] in expected_keys:
                        new = PREFIX + dst + rest[len(src):]
        if new != key and new in state_dict:
            new = key
        out[new] = val
    return out


__all__ = ["LAYOUT_PREFIXES", "MIMI_TRANSFORMERS_HINT", "MimiAudioEncoder", "PREFIX", "convert_layout_keys",
           "is_mimi_state", "resample_chunks", "shapes_only"]
