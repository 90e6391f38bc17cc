"""The ARTalk model configuration: the released ``config.json`` format, parsed and validated.

The file has ``AR_CONFIG {T_DEPTH, T_NUM_HEADS, PREV_RATIO[, EMBED_DIM]}`` and
``VAE_CONFIG {MOTION_DIM, V_CODE_DIM, T_DEPTH, T_NUM_HEADS, T_HIDDEN_DIM, V_PATCH_NUMS}``, plus an
optional top-level ``WAV2VEC2_CONFIG`` whose keys override the built-in wav2vec2-xls-r-300m config.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from artalk_core.constants import CHUNK_FRAMES, MOTION_DIM
from artalk_core.errors import ConfigError
from artalk_core.fileio import parse_json

C = TypeVar("C")

DEFAULT_EMBED_DIM: int = 768
SUPPORTED_AUDIO_ENCODERS: tuple[str, ...] = ("wav2vec",)
_W2V_CONFIG_FILE = "wav2vec2_xls_r_300m_config.json"


@lru_cache(maxsize=1)
def _builtin_wav2vec2_json() -> str:
    path = Path(__file__).with_name(_W2V_CONFIG_FILE)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:  # a broken install, not a user error
        raise ConfigError(f"built-in wav2vec2 config missing ({path}): reinstall artalk") from exc


def builtin_wav2vec2_config() -> dict[str, Any]:
    """A fresh copy of the wav2vec2-xls-r-300m config the released checkpoint was trained with."""
    return json.loads(_builtin_wav2vec2_json())


def _section(d: dict[str, Any], name: str) -> dict[str, Any]:
    sec = d.get(name)
    if sec is None:
        raise ConfigError(f"model config: missing section '{name}' (expected the released config.json format)")
    if not isinstance(sec, dict):
        raise ConfigError(f"model config: '{name}' must be an object, got {type(sec).__name__}")
    return sec


def _pos_int(sec: dict[str, Any], section: str, key: str, default: int | None = None) -> int:
    if key not in sec:
        if default is not None:
            return default
        raise ConfigError(f"model config: missing '{section}.{key}'")
    val = sec[key]
    if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
        raise ConfigError(f"model config: '{section}.{key}' must be a positive integer, got {val!r}")
    return val


def read_config_file(path: str | Path, what: str, parse: Callable[[Any], C]) -> C:
    """``parse`` the JSON in ``path``; ConfigError (naming ``what`` and the file) if it is unreadable,
    not JSON, or ``parse`` refuses it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} '{path}': {exc}") from exc
    # json.loads would raise RecursionError on deep nesting and convert 5000-digit integers slowly
    data = parse_json(text, f"{what} '{path}' is not valid JSON", error=ConfigError)
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the ARTalk model. ``wav2vec2`` is the full merged wav2vec2 config dict."""

    ar_depth: int
    ar_heads: int
    prev_ratio: int
    embed_dim: int
    motion_dim: int
    code_dim: int
    vae_depth: int
    vae_heads: int
    vae_hidden: int
    patch_nums: tuple[int, ...]
    wav2vec2: dict = field(default_factory=builtin_wav2vec2_config, hash=False)

    @property
    def audio_dim(self) -> int:
        """C: the wav2vec2 hidden size (1024 for xls-r-300m)."""
        return int(self.wav2vec2["hidden_size"])

    @property
    def num_tokens(self) -> int:
        """N: tokens per chunk, sum of the patch scales (181 released)."""
        return sum(self.patch_nums)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Parse the released ``config.json`` format; ConfigError names the first bad field."""
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(d).__name__}")
        ar = _section(d, "AR_CONFIG")
        vae = _section(d, "VAE_CONFIG")

        encoder = ar.get("AUDIO_ENCODER", "wav2vec")
        if encoder not in SUPPORTED_AUDIO_ENCODERS:
            raise ConfigError(f"model config: AR_CONFIG.AUDIO_ENCODER '{encoder}' is not supported "
                              f"(only {', '.join(SUPPORTED_AUDIO_ENCODERS)})")
        ar_depth = _pos_int(ar, "AR_CONFIG", "T_DEPTH")
        ar_heads = _pos_int(ar, "AR_CONFIG", "T_NUM_HEADS")
        prev_ratio = _pos_int(ar, "AR_CONFIG", "PREV_RATIO")
        embed_dim = _pos_int(ar, "AR_CONFIG", "EMBED_DIM", DEFAULT_EMBED_DIM)
        if embed_dim % ar_heads:
            raise ConfigError(f"model config: AR_CONFIG.EMBED_DIM ({embed_dim}) must be divisible by "
                              f"AR_CONFIG.T_NUM_HEADS ({ar_heads})")

        motion_dim = _pos_int(vae, "VAE_CONFIG", "MOTION_DIM")
        if motion_dim != MOTION_DIM:
            raise ConfigError(f"model config: VAE_CONFIG.MOTION_DIM must be {MOTION_DIM} (FLAME motion), "
                              f"got {motion_dim}")
        code_dim = _pos_int(vae, "VAE_CONFIG", "V_CODE_DIM")
        vae_depth = _pos_int(vae, "VAE_CONFIG", "T_DEPTH")
        vae_heads = _pos_int(vae, "VAE_CONFIG", "T_NUM_HEADS")
        vae_hidden = _pos_int(vae, "VAE_CONFIG", "T_HIDDEN_DIM")
        if vae_hidden % vae_heads:
            raise ConfigError(f"model config: VAE_CONFIG.T_HIDDEN_DIM ({vae_hidden}) must be divisible by "
                              f"VAE_CONFIG.T_NUM_HEADS ({vae_heads})")
        if vae_hidden % 2:
            raise ConfigError(f"model config: VAE_CONFIG.T_HIDDEN_DIM must be even, got {vae_hidden}")

        pn = vae.get("V_PATCH_NUMS")
        if (not isinstance(pn, list) or not pn
                or any(isinstance(p, bool) or not isinstance(p, int) or p <= 0 for p in pn)):
            raise ConfigError(f"model config: VAE_CONFIG.V_PATCH_NUMS must be a list of positive integers, got {pn!r}")
        if pn[0] != 1 or pn[-1] != CHUNK_FRAMES or any(a >= b for a, b in zip(pn, pn[1:])):
            raise ConfigError("model config: VAE_CONFIG.V_PATCH_NUMS must increase from 1 to "
                              f"{CHUNK_FRAMES}, got {pn!r}")

        w2v = builtin_wav2vec2_config()
        override = d.get("WAV2VEC2_CONFIG", {})
        if not isinstance(override, dict):
            raise ConfigError(f"model config: WAV2VEC2_CONFIG must be an object, got {type(override).__name__}")
        w2v.update(copy.deepcopy(override))
        _check_wav2vec2(w2v)

        return cls(ar_depth=ar_depth, ar_heads=ar_heads, prev_ratio=prev_ratio, embed_dim=embed_dim,
                   motion_dim=motion_dim, code_dim=code_dim, vae_depth=vae_depth, vae_heads=vae_heads,
                   vae_hidden=vae_hidden, patch_nums=tuple(pn), wav2vec2=w2v)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a model config JSON file (ConfigError if unreadable, not JSON, or invalid)."""
        return read_config_file(path, "model config", cls.from_dict)

    @classmethod
    def released(cls) -> ModelConfig:
        """The config of the released checkpoint (``ARTalk_wav2vec.pt``)."""
        return cls.from_dict({
            "AR_CONFIG": {"T_DEPTH": 12, "T_NUM_HEADS": 12, "PREV_RATIO": 1},
            "VAE_CONFIG": {"MOTION_DIM": 106, "V_CODE_DIM": 32, "T_DEPTH": 8, "T_NUM_HEADS": 8,
                           "T_HIDDEN_DIM": 512, "V_PATCH_NUMS": [1, 5, 25, 50, 100]},
        })

    def to_dict(self) -> dict[str, Any]:
        """The released format; ``WAV2VEC2_CONFIG`` holds only keys that differ from the built-in config."""
        builtin = builtin_wav2vec2_config()
        w2v_diff = {k: copy.deepcopy(v) for k, v in self.wav2vec2.items() if builtin.get(k, object()) != v}
        out: dict[str, Any] = {
            "AR_CONFIG": {"T_DEPTH": self.ar_depth, "T_NUM_HEADS": self.ar_heads,
                          "PREV_RATIO": self.prev_ratio, "EMBED_DIM": self.embed_dim},
            "VAE_CONFIG": {"MOTION_DIM": self.motion_dim, "V_CODE_DIM": self.code_dim, "T_DEPTH": self.vae_depth,
                           "T_NUM_HEADS": self.vae_heads, "T_HIDDEN_DIM": self.vae_hidden,
                           "V_PATCH_NUMS": list(self.patch_nums)},
        }
        if w2v_diff:
            out["WAV2VEC2_CONFIG"] = w2v_diff
        return out


def _check_wav2vec2(w2v: dict[str, Any]) -> None:
    """The few wav2vec2 fields the model relies on (the rest is checked by transformers)."""
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "num_conv_pos_embeddings", "num_conv_pos_embedding_groups"):
        val = w2v.get(key)
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ConfigError(f"model config: WAV2VEC2_CONFIG.{key} must be a positive integer, got {val!r}")
    if w2v["hidden_size"] % w2v["num_attention_heads"]:
        raise ConfigError("model config: WAV2VEC2_CONFIG.hidden_size must be divisible by num_attention_heads")
    if w2v["hidden_size"] % w2v["num_conv_pos_embedding_groups"]:
        raise ConfigError("model config: WAV2VEC2_CONFIG.hidden_size must be divisible by "
                          "num_conv_pos_embedding_groups")
    conv: list[Any] = [w2v.get(k) for k in ("conv_dim", "conv_kernel", "conv_stride")]
    if (not all(isinstance(c, list) and c for c in conv) or len({len(c) for c in conv}) != 1
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for c in conv for v in c)):
        raise ConfigError("model config: WAV2VEC2_CONFIG.conv_dim / conv_kernel / conv_stride must be "
                          "equal-length lists of positive integers")
    if not w2v.get("do_stable_layer_norm", False) or w2v.get("feat_extract_norm") != "layer":
        raise ConfigError("model config: WAV2VEC2_CONFIG must keep do_stable_layer_norm=true and "
                          "feat_extract_norm='layer' (the ARTalk audio encoder layout)")


__all__ = ["DEFAULT_EMBED_DIM", "ModelConfig", "builtin_wav2vec2_config"]
