"""The two audio encoders behind one interface, chosen by the model config's ``AUDIO_ENCODER``.

``wav2vec``: a transformers Wav2Vec2Model (:mod:`artalk_core.model.wav2vec`), 199 x 1024 per 4-s chunk.
``mimi``: Kyutai's Mimi codec encoder (:mod:`artalk_core.model.mimi`), 50 x 512 per 4-s chunk.
Either way the module is the ARTalk model's ``audio_encoder`` and its weights come from the checkpoint.
"""

from __future__ import annotations

from torch import Tensor, nn

from artalk_core.model.config import ModelConfig


def build_audio_encoder(config: ModelConfig) -> nn.Module:
    """A randomly initialised audio encoder of ``config`` (on the current default device; on "meta"
    only the weights are left unallocated, ready for a checkpoint to be assigned)."""
    if config.audio_encoder == "mimi":
        from artalk_core.model.mimi import MimiAudioEncoder

        return MimiAudioEncoder(config.mimi)
    from artalk_core.model.wav2vec import build_wav2vec2

    return build_wav2vec2(config.wav2vec2)


def run_audio_encoder(config: ModelConfig, encoder: nn.Module, chunks: Tensor) -> Tensor:
    """16 kHz audio chunks [G, 64000] -> features [G, F, C] (F = config.audio_tokens, C = config.audio_dim).
    Each row is encoded on its own, so a chunk's features depend on its samples only."""
    if config.audio_encoder == "mimi":
        return encoder(chunks)
    from artalk_core.model.wav2vec import run_wav2vec2

    return run_wav2vec2(encoder, chunks)


def state_audio_encoder(state_dict: dict[str, Tensor]) -> str | None:
    """The audio encoder a state dict holds: ``mimi`` (``audio_encoder.acoustic_model.*``), ``wav2vec``
    (other ``audio_encoder.*`` keys) or None (no audio encoder keys)."""
    from artalk_core.model.mimi import is_mimi_state

    if is_mimi_state(state_dict):
        return "mimi"
    return "wav2vec" if any(k.startswith("audio_encoder.") for k in state_dict) else None


def convert_encoder_keys(state_dict: dict[str, Tensor], expected_keys: set[str]) -> dict[str, Tensor]:
    """Key spellings that differ between library versions, renamed to what the model expects:
    the wav2vec2 positional conv's two weight-norm forms, Mimi's flat and nested layouts."""
    from artalk_core.model.mimi import convert_layout_keys
    from artalk_core.model.wav2vec import convert_weight_norm_keys

    return convert_layout_keys(convert_weight_norm_keys(state_dict, expected_keys), expected_keys)


__all__ = ["build_audio_encoder", "convert_encoder_keys", "run_audio_encoder", "state_audio_encoder"]
