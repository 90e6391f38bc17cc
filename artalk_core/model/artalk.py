"""The ARTalk model: audio encoder, style encoder, multi-scale autoregressive transformer and motion VAE.

Shapes: E embed dim, C audio dim, D code dim, P patch scales with N = sum(P) tokens per chunk,
PR = PREV_RATIO, M = N * PR context tokens. Inference only, batch 1 per utterance.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Optional

import torch
from torch import Tensor, nn

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES, MOTION_DIM, STYLE_FRAMES
from artalk_core.errors import AudioError, InputError, StyleError
from artalk_core.model.config import ModelConfig
from artalk_core.model.style import STYLE_DIM, StyleEncoder
from artalk_core.model.transformer import AdaLNHead, AdaLNSelfAttnBlock
from artalk_core.model.vae import BitwiseMotionVAE, area_resample
from artalk_core.model.wav2vec import build_wav2vec2, run_wav2vec2
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import num_frames, padded_samples

DEFAULT_CHUNK_BATCH: int = 8
"""Audio chunks encoded together (exact: each row is normalised on its own)."""


def level_index(patch_nums: tuple[int, ...]) -> Tensor:
    """[1,N] int64: the scale level of each token."""
    return torch.cat([torch.full((p,), i, dtype=torch.long) for i, p in enumerate(patch_nums)])[None]


def attention_bias(patch_nums: tuple[int, ...], prev_ratio: int) -> Tensor:
    """[1,1,N,M+N]: context fully visible, then block-causal over levels (0 or -inf)."""
    lvl = level_index(patch_nums)[0]
    n = lvl.numel()
    causal = torch.where(lvl[None, :] <= lvl[:, None], 0.0, float("-inf"))
    return torch.cat([torch.zeros(n, n * prev_ratio), causal], dim=1)[None, None]


class ARTalkModel(nn.Module):
    """ARTalk with the released checkpoint's state-dict names."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        e, c, d = config.embed_dim, config.audio_dim, config.code_dim
        pn = config.patch_nums
        n = sum(pn)

        self.audio_encoder = build_wav2vec2(config.wav2vec2)
        self.style_encoder = StyleEncoder(config.motion_dim)
        self.basic_vae = BitwiseMotionVAE(config.motion_dim, d, config.vae_hidden, config.vae_depth,
                                          config.vae_heads, pn)

        self.style_cond_embed = nn.Linear(STYLE_DIM, e)
        self.null_style_cond = nn.Parameter(torch.zeros(1, 1, e))
        self.vqfeat_embed = nn.Linear(d, e)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, e))
        self.prev_pos_embed = nn.Parameter(torch.zeros(1, n * config.prev_ratio, e))
        self.lvl_embed = nn.Embedding(len(pn), e)
        self.register_buffer("lvl_idx", level_index(pn))
        self.register_buffer("attn_bias_for_masking", attention_bias(pn, config.prev_ratio))
        self.attn_blocks = nn.ModuleList(AdaLNSelfAttnBlock(e, config.ar_heads, c) for _ in range(config.ar_depth))
        self.cond_logits_head = AdaLNHead(e, c)
        self.logits_head = nn.Linear(e, 2 * d)

        self._level_ends = tuple(accumulate(pn))

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def _param(self) -> Tensor:
        return self.null_style_cond

    def _style_condition(self, style_motion: Optional[Tensor]) -> Tensor:
        """s [1,1,E]: guided style embedding, or the null style."""
        if style_motion is None:
            return self.null_style_cond
        style = self.style_embedding(style_motion)[None]
        return 1.1 * self.style_cond_embed(style)[:, None] - 0.1 * self.null_style_cond

    def _context_tokens(self, s: Tensor, prev_bits: Tensor) -> Tensor:
        """One chunk's context [1,N,E] = [s, embedded teacher-forced features of the previous bits]."""
        return torch.cat([s, self.vqfeat_embed(self.basic_vae.ms_feat(prev_bits))], dim=1)

    def _audio_condition(self, feats: Tensor) -> Tensor:
        """Per-token audio condition: [1,F,C] -> [1,N,C] (area-resampled to every scale)."""
        return torch.cat([area_resample(feats, p) for p in self.config.patch_nums], dim=1)

    def _generate_chunk(self, s: Tensor, ctx: Tensor, cond: Tensor, tok_pos: Tensor) -> Tensor:
        """Next-scale prediction of one chunk's bits [1,N,D] (greedy).

        ctx [1,M,E] already carries its level/position embeddings; tok_pos [1,N,E] those of the tokens.
        """
        m = ctx.shape[1]
        last = len(self._level_ends) - 1
        x_in = s
        bits = torch.empty(0)
        for k, n in enumerate(self._level_ends):
            h = x_in + tok_pos[:, :n]
            c = cond[:, :n]
            bias = self.attn_bias_for_masking[:, :, :n, : m + n]
            for block in self.attn_blocks:
                h = block(h, ctx, c, bias)
            logits = self.logits_head(self.cond_logits_head(h, c))
            bits = logits.view(1, n, self.config.code_dim, 2).argmax(dim=-1).bool()
            if k < last:
                x_in = torch.cat([s, self.vqfeat_embed(self.basic_vae.ar_feat(k, bits))], dim=1)
        return bits

    # ---- public API --------------------------------------------------------------------------
    @torch.no_grad()
    def encode_audio(self, audio: Tensor, progress: OptionalProgress = None, *,
                     chunk_batch: int = DEFAULT_CHUNK_BATCH) -> Tensor:
        """16 kHz mono audio [S] -> wav2vec2 features [n_chunks,199,C] (model device and dtype).

        The audio is zero-padded to whole 64,000-sample chunks covering ceil(S/16000*25) frames.
        """
        if audio.dim() != 1:
            raise AudioError(f"audio must be mono samples [S], got shape {tuple(audio.shape)}")
        n_samples = audio.shape[0]
        if num_frames(n_samples) < 1:
            raise AudioError("audio is empty: nothing to encode")
        if not torch.isfinite(audio).all():
            raise AudioError("audio contains NaN or infinite samples")
        ref = self._param
        total = padded_samples(n_samples)
        padded = torch.zeros(total, dtype=ref.dtype, device=ref.device)
        padded[:n_samples] = audio.to(device=ref.device, dtype=ref.dtype)
        chunks = padded.view(-1, CHUNK_SAMPLES)
        n_chunks = chunks.shape[0]
        report(progress, "encode audio", 0, n_chunks)
        out = []
        for start in range(0, n_chunks, max(1, chunk_batch)):
            out.append(run_wav2vec2(self.audio_encoder, chunks[start:start + chunk_batch]))
            report(progress, "encode audio", min(start + chunk_batch, n_chunks), n_chunks)
        return torch.cat(out, dim=0)

    @torch.no_grad()
    def style_embedding(self, style_motion: Tensor) -> Tensor:
        """Style clip [50,106] -> style vector [128]."""
        if tuple(style_motion.shape) != (STYLE_FRAMES, MOTION_DIM):
            raise StyleError(f"style motion must be [{STYLE_FRAMES}, {MOTION_DIM}], got {tuple(style_motion.shape)}")
        if not torch.isfinite(style_motion).all():
            raise StyleError("style motion contains NaN or infinite values")
        ref = self._param
        return self.style_encoder(style_motion.to(device=ref.device, dtype=ref.dtype)[None])[0]

    @torch.no_grad()
    def generate(self, features: Tensor, n_frames: int, style_motion: Optional[Tensor] = None,
                 progress: OptionalProgress = None) -> Tensor:
        """Audio features [n_chunks,F,C] -> raw motion [n_frames,106] (float32, CPU; no post-processing)."""
        cfg = self.config
        if features.dim() != 3 or features.shape[-1] != cfg.audio_dim or features.shape[0] < 1:
            raise InputError(f"audio features must be [n_chunks, frames, {cfg.audio_dim}], "
                             f"got {tuple(features.shape)}")
        n_chunks = features.shape[0]
        if not 1 <= n_frames <= n_chunks * CHUNK_FRAMES:
            raise InputError(f"n_frames must be in 1..{n_chunks * CHUNK_FRAMES} for {n_chunks} chunk(s), "
                             f"got {n_frames}")
        ref = self._param
        feats = features.to(device=ref.device, dtype=ref.dtype)
        n = cfg.num_tokens

        s = self._style_condition(style_motion)
        lvl = self.lvl_embed(self.lvl_idx)
        tok_pos = lvl + self.pos_embed
        ctx_pos = lvl.repeat(1, cfg.prev_ratio, 1) + self.prev_pos_embed

        prev_bits = self.basic_vae.encode_prev(torch.zeros(1, CHUNK_FRAMES, cfg.motion_dim,
                                                           dtype=ref.dtype, device=ref.device))
        ctx = self._context_tokens(s, prev_bits).repeat(1, cfg.prev_ratio, 1)
        motions = []
        report(progress, "generate", 0, n_chunks)
        for i in range(n_chunks):
            cond = self._audio_condition(feats[i:i + 1])
            bits = self._generate_chunk(s, ctx + ctx_pos, cond, tok_pos)
            motion = self.basic_vae.decode(prev_bits, bits)
            motions.append(motion)
            prev_bits = self.basic_vae.encode_prev(motion)
            ctx = torch.cat([ctx[:, n:], self._context_tokens(s, prev_bits)], dim=1)
            report(progress, "generate", i + 1, n_chunks)
        return torch.cat(motions, dim=1)[0, :n_frames].float().cpu()

    @torch.no_grad()
    def generate_from_audio(self, audio: Tensor, style_motion: Optional[Tensor] = None,
                            progress: OptionalProgress = None) -> Tensor:
        """16 kHz audio [S] -> raw motion [ceil(S/16000*25),106] (float32, CPU)."""
        features = self.encode_audio(audio, progress=progress)
        return self.generate(features, num_frames(audio.shape[0]), style_motion=style_motion, progress=progress)


__all__ = ["ARTalkModel", "attention_bias", "level_index"]
