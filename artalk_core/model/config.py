"""The ARTalk model configuration: the released ``config.json`` format, parsed and validated.

The file has ``AR_CONFIG {T_DEPTH, T_NUM_HEADS, PREV_RATIO[, EMBED_DIM][, AUDIO_ENCODER]}`` and
``VAE_CONFIG {MOTION_DIM, V_CODE_DIM, T_DEPTH, T_NUM_HEADS, T_HIDDEN_DIM, V_PATCH_NUMS}``, plus optional
top-level ``WAV2VEC2_CONFIG`` / ``MIMI_CONFIG`` objects whose keys override the built-in configs of the
two audio encoders (wav2vec2-xls-r-300m and kyutai/mimi, shipped as JSON beside this module: no hub).
``AUDIO_ENCODER`` is ``wav2vec`` (the released model) or ``mimi``; the released config.json does not
name it, and then the checkpoint's keys decide (see :func:`artalk_core.model.checkpoint.load_model`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from artalk_core.constants import (
    AUDIO_ENCODERS,
    CHUNK_FRAMES,
    CHUNK_SAMPLES,
    MIMI_SAMPLE_RATE,
    MODEL_MAX_REPEATS,
    MODEL_MAX_SIZE,
    MOTION_DIM,
    SAMPLE_RATE,
)
from artalk_core.errors import ConfigError
from artalk_core.fileio import parse_json

C = TypeVar("C")

DEFAULT_EMBED_DIM: int = 768
DEFAULT_AUDIO_ENCODER: str = AUDIO_ENCODERS[0]
_W2V_CONFIG_FILE = "wav2vec2_xls_r_300m_config.json"
_MIMI_CONFIG_FILE = "kyutai_mimi_config.json"
"""The released kyutai/mimi sizes (transformers' MimiConfig defaults are the same numbers)."""


@lru_cache(maxsize=2)
def _builtin_json(name: str) -> str:
    path = Path(__file__).with_name(name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:  # a broken install, not a user error
        raise ConfigError(f"built-in audio encoder config missing ({path}): reinstall artalk") from exc


def builtin_wav2vec2_config() -> dict[str, Any]:
    """A fresh copy of the wav2vec2-xls-r-300m config the released checkpoint was trained with."""
    return json.loads(_builtin_json(_W2V_CONFIG_FILE))


def builtin_mimi_config() -> dict[str, Any]:
    """A fresh copy of the kyutai/mimi config (the reference loads ``MimiModel.from_pretrained("kyutai/mimi")``)."""
    return json.loads(_builtin_json(_MIMI_CONFIG_FILE))


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
    limit = MODEL_MAX_REPEATS if key in _REPEATS else MODEL_MAX_SIZE
    if val > limit:
        raise ConfigError(f"model config: '{section}.{key}' {val} is larger than an ARTalk model can be "
                          f"(at most {limit})")
    return val


_REPEATS = ("T_DEPTH", "PREV_RATIO")
"""AR_CONFIG / VAE_CONFIG fields that repeat modules or tokens (at most MODEL_MAX_REPEATS)."""


def _check_bounds(value: Any, where: str, depth: int = 0) -> None:
    """Every integer in an audio encoder's config (nested in lists and objects) at most
    MODEL_MAX_SIZE, a layer count (``num_*layers``, ``num_*quantizers``) or a list's length at
    most MODEL_MAX_REPEATS: checked before transformers builds anything from them (a layer count
    of 10**9 builds for ever, a width of 2**40 overflows torch's storage size even on meta)."""
    if depth > 8:
        raise ConfigError(f"model config: {where} is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}"
            repeats = str(key).startswith("num_") and str(key).endswith(("layers", "quantizers"))
            if repeats and isinstance(item, int) and not isinstance(item, bool) and item > MODEL_MAX_REPEATS:
                raise ConfigError(f"model config: {name} {item} is larger than an ARTalk model can be "
                                  f"(at most {MODEL_MAX_REPEATS})")
            _check_bounds(item, name, depth + 1)
    elif isinstance(value, list):
        if len(value) > MODEL_MAX_REPEATS:
            raise ConfigError(f"model config: {where} lists {len(value)} values (at most {MODEL_MAX_REPEATS})")
        for item in value:
            _check_bounds(item, where, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MODEL_MAX_SIZE:
        raise ConfigError(f"model config: {where} {value} is larger than an ARTalk model can be "
                          f"(at most {MODEL_MAX_SIZE})")


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
    """Sizes of the ARTalk model. ``wav2vec2`` / ``mimi`` are the full merged configs of the two audio
    encoders (only the one ``audio_encoder`` names is built). ``audio_encoder_stated``: the config file
    named its encoder (else the checkpoint's keys may choose it when loading)."""

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
    audio_encoder: str = DEFAULT_AUDIO_ENCODER
    mimi: dict = field(default_factory=builtin_mimi_config, hash=False)
    audio_encoder_stated: bool = field(default=True, compare=False)

    @property
    def audio_dim(self) -> int:
        """C: the audio encoder's feature size (wav2vec2: hidden size, 1024 for xls-r-300m; Mimi: its
        hidden size, 512 for kyutai/mimi, what ``quantizer.decode`` gives)."""
        return int((self.mimi if self.audio_encoder == "mimi" else self.wav2vec2)["hidden_size"])

    @property
    def audio_tokens(self) -> int:
        """F: feature frames per 64,000-sample chunk (199 for wav2vec2, 50 for kyutai/mimi)."""
        return mimi_frames(self.mimi) if self.audio_encoder == "mimi" else wav2vec2_frames(self.wav2vec2)

    def with_audio_encoder(self, encoder: str) -> ModelConfig:
        """This config with ``encoder`` (stated) as its audio encoder."""
        _check_encoder(encoder)
        return dataclasses.replace(self, audio_encoder=encoder, audio_encoder_stated=True)

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

        encoder = ar.get("AUDIO_ENCODER", DEFAULT_AUDIO_ENCODER)
        _check_encoder(encoder)
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

        w2v = _merged(d, "WAV2VEC2_CONFIG", builtin_wav2vec2_config())
        _check_bounds(w2v, "WAV2VEC2_CONFIG")
        _check_wav2vec2(w2v)
        mimi = _merged(d, "MIMI_CONFIG", builtin_mimi_config())
        _check_bounds(mimi, "MIMI_CONFIG")
        _check_mimi(mimi)

        return cls(ar_depth=ar_depth, ar_heads=ar_heads, prev_ratio=prev_ratio, embed_dim=embed_dim,
                   motion_dim=motion_dim, code_dim=code_dim, vae_depth=vae_depth, vae_heads=vae_heads,
                   vae_hidden=vae_hidden, patch_nums=tuple(pn), wav2vec2=w2v, audio_encoder=encoder, mimi=mimi,
                   audio_encoder_stated="AUDIO_ENCODER" in ar)

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
        """The released format, naming the audio encoder; ``WAV2VEC2_CONFIG`` / ``MIMI_CONFIG`` hold only
        the keys of the encoder in use that differ from its built-in config."""
        out: dict[str, Any] = {
            "AR_CONFIG": {"T_DEPTH": self.ar_depth, "T_NUM_HEADS": self.ar_heads,
                          "PREV_RATIO": self.prev_ratio, "EMBED_DIM": self.embed_dim,
                          "AUDIO_ENCODER": self.audio_encoder},
            "VAE_CONFIG": {"MOTION_DIM": self.motion_dim, "V_CODE_DIM": self.code_dim, "T_DEPTH": self.vae_depth,
                           "T_NUM_HEADS": self.vae_heads, "T_HIDDEN_DIM": self.vae_hidden,
                           "V_PATCH_NUMS": list(self.patch_nums)},
        }
        if self.audio_encoder == "mimi":
            key, mine, builtin = "MIMI_CONFIG", self.mimi, builtin_mimi_config()
        else:
            key, mine, builtin = "WAV2VEC2_CONFIG", self.wav2vec2, builtin_wav2vec2_config()
        diff = {k: copy.deepcopy(v) for k, v in mine.items() if builtin.get(k, object()) != v}
        if diff:
            out[key] = diff
        return out


def _check_encoder(encoder: Any) -> None:
    if encoder not in AUDIO_ENCODERS:
        raise ConfigError(f"model config: AR_CONFIG.AUDIO_ENCODER {encoder!r} is not supported "
                          f"(choose {' or '.join(AUDIO_ENCODERS)})")


def _merged(d: dict[str, Any], key: str, builtin: dict[str, Any]) -> dict[str, Any]:
    """``builtin`` updated with the object ``d[key]`` (if any)."""
    override = d.get(key, {})
    if not isinstance(override, dict):
        raise ConfigError(f"model config: {key} must be an object, got {type(override).__name__}")
    builtin.update(copy.deepcopy(override))
    return builtin


def wav2vec2_frames(w2v: dict[str, Any], samples: int = CHUNK_SAMPLES) -> int:
    """Frames the wav2vec2 feature extractor makes of ``samples`` (its unpadded strided convolutions)."""
    n = samples
    for kernel, stride in zip(w2v["conv_kernel"], w2v["conv_stride"]):
        n = (n - kernel) // stride + 1
    return n


def mimi_frames(mimi: dict[str, Any], samples: int = CHUNK_SAMPLES) -> int:
    """Frames the Mimi encoder makes of ``samples`` at 16 kHz: resampled to 24 kHz, then each causal
    strided convolution (padded to whole strides) divides the length by its stride, rounding up, and
    the downsampling to the frame rate by the latent stride."""
    n = math.ceil(samples * MIMI_SAMPLE_RATE / SAMPLE_RATE)
    for ratio in reversed(mimi["upsampling_ratios"]):
        n = math.ceil(n / ratio)
    return math.ceil(n / _mimi_latent_stride(mimi))


def _mimi_latent_stride(mimi: dict[str, Any]) -> int:
    """The stride of Mimi's downsampling from the encoder rate to the frame rate (1: none)."""
    encoder_rate = MIMI_SAMPLE_RATE / math.prod(mimi["upsampling_ratios"])
    frame_rate = mimi.get("frame_rate") or encoder_rate / mimi.get("compress", 2)
    return max(1, int(encoder_rate / frame_rate))


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


def _check_mimi(mimi: dict[str, Any]) -> None:
    """The Mimi fields the model relies on (the rest is checked by transformers)."""
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_filters", "codebook_size",
                "codebook_dim", "num_quantizers"):
        val = mimi.get(key)
        if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            raise ConfigError(f"model config: MIMI_CONFIG.{key} must be a positive integer, got {val!r}")
    ratios = mimi.get("upsampling_ratios")
    if (not isinstance(ratios, list) or not ratios
            or any(isinstance(r, bool) or not isinstance(r, int) or r <= 0 for r in ratios)):
        raise ConfigError(f"model config: MIMI_CONFIG.upsampling_ratios must be a list of positive integers, "
                          f"got {ratios!r}")
    if mimi.get("sampling_rate", MIMI_SAMPLE_RATE) != MIMI_SAMPLE_RATE:
        raise ConfigError(f"model config: MIMI_CONFIG.sampling_rate must be {MIMI_SAMPLE_RATE} (the reference "
                          f"resamples every chunk to {MIMI_SAMPLE_RATE} Hz), got {mimi.get('sampling_rate')!r}")


__all__ = ["DEFAULT_AUDIO_ENCODER", "DEFAULT_EMBED_DIM", "ModelConfig", "builtin_mimi_config",
           "builtin_wav2vec2_config", "mimi_frames", "wav2vec2_frames"]
