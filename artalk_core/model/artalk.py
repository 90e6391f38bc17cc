"""The ARTalk model: audio encoder, style encoder, multi-scale autoregressive transformer and motion VAE.

Shapes: E embed dim, C audio dim and F audio frames per chunk (wav2vec2: 1024 x 199; Mimi: 512 x 50),
D code dim, P patch scales with N = sum(P) tokens per chunk, PR = PREV_RATIO, M = N * PR context tokens.
Inference only, batch 1 per utterance.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import accumulate

import torch
from torch import Tensor, nn

from artalk_core.constants import CHUNK_FRAMES, CHUNK_SAMPLES, MOTION_DIM, STYLE_FRAMES
from artalk_core.errors import AudioError, InputError, StyleError
from artalk_core.model.config import ModelConfig
from artalk_core.model.encoders import build_audio_encoder, run_audio_encoder
from artalk_core.model.precision import check_precision, resolve_precision
from artalk_core.model.style import STYLE_DIM, StyleEncoder
from artalk_core.model.transformer import AdaLNHead, AdaLNSelfAttnBlock
from artalk_core.model.vae import BitwiseMotionVAE, area_resample
from artalk_core.progress import OptionalProgress, report
from artalk_core.timing import num_frames, padded_samples

DEFAULT_CHUNK_BATCH: int = 8
"""Audio chunks encoded together (exact: each row is normalised on its own)."""

DEFAULT_COND_BATCH: int = 4
"""Chunks whose audio AdaLN modulations are computed in one product (fast path; ~40 MB each, full size)."""

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Compute precision of encode/generate: fp32 runs in the model's own dtype; bf16/fp16 autocast
(matrix products in the lower precision, norms and softmax statistics as autocast keeps them).
The public methods also take ``auto``: the fastest one here, measured once (model/precision.py)."""


def precision_context(precision: str, device: torch.device) -> AbstractContextManager[None]:
    """The autocast context for ``precision`` (fp32 | bf16 | fp16) on ``device`` (no-op for fp32)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def linear_weights_cast(modules: list[nn.Module], dtype: torch.dtype | None) -> Iterator[None]:
    """Temporarily hold the weights and biases of every nn.Linear under ``modules`` in ``dtype``.

    Under autocast this casts them once instead of at every call (the levels of the AR loop call
    each layer many times). The model's own parameters are put back on exit, even on error; do not
    run the same model from two threads at once while this is active.
    """
    if dtype is None:
        yield
        return
    saved: list[tuple[nn.Module, str, nn.Parameter]] = []
    try:
        for root in modules:
            for mod in root.modules():
                if not isinstance(mod, nn.Linear):
                    continue
                for name, param in list(mod._parameters.items()):
                    if param is None or param.dtype == dtype or not param.is_floating_point():
                        continue
                    saved.append((mod, name, param))
                    mod._parameters[name] = nn.Parameter(param.detach().to(dtype), requires_grad=False)
        yield
    finally:
        for mod, name, param in reversed(saved):
            mod._parameters[name] = param


@dataclass
class Generation:
    """What :meth:`ARTalkModel.generate_detailed` returns.

    motion: raw motion [n_frames,106] float32 CPU; bits: every chunk's codes [n_chunks,N,D] bool CPU;
    seconds: wall time per stage, ``ar`` (the autoregressive levels, with context and conditions)
    and ``vae`` (decode + re-encode of each chunk).
    """

    motion: Tensor
    bits: Tensor
    seconds: dict[str, float] = field(default_factory=dict)


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

    lvl_idx: Tensor
    attn_bias_for_masking: Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        e, c, d = config.embed_dim, config.audio_dim, config.code_dim
        pn = config.patch_nums
        n = sum(pn)

        self.audio_encoder = build_audio_encoder(config)
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
    def _blocks(self) -> list[AdaLNSelfAttnBlock]:
        """The AR blocks, typed."""
        return list(self.attn_blocks)  # type: ignore[arg-type]

    @property
    def _param(self) -> Tensor:
        return self.null_style_cond

    def _style_condition(self, style_motion: Tensor | None) -> Tensor:
        """s [1,1,E]: guided style embedding, or the null style."""
        if style_motion is None:
            return self.null_style_cond
        style = self.style_embedding(style_motion)[None]
        return 1.1 * self.style_cond_embed(style)[:, None] - 0.1 * self.null_style_cond

    def _context_tokens(self, s: Tensor, prev_bits: Tensor) -> Tensor:
        """One chunk's context [1,N,E] = [s, embedded teacher-forced features of the previous bits]."""
        return torch.cat([s, self.vqfeat_embed(self.basic_vae.ms_feat(prev_bits))], dim=1)

    def _audio_condition(self, feats: Tensor) -> Tensor:
        """Per-token audio condition: [G,F,C] -> [G,N,C] (area-resampled to every scale)."""
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
            for block in self._blocks:
                h = block(h, ctx, c, bias)
            logits = self.logits_head(self.cond_logits_head(h, c))
            bits = logits.view(1, n, self.config.code_dim, 2).argmax(dim=-1).bool()
            if k < last:
                x_in = torch.cat([s, self.vqfeat_embed(self.basic_vae.ar_feat(k, bits))], dim=1)
        return bits

    def _condition_mods(self, cond: Tensor) -> tuple[list[Tensor], Tensor]:
        """Audio AdaLN modulations of every token, for the fast path: cond [G,N,C] ->
        (per block ada_lin(cond) [G,N,6E], cond_logits_head.ada_lin(cond) [G,N,2E])."""
        return [block.ada_lin(cond) for block in self._blocks], self.cond_logits_head.ada_lin(cond)

    def _generate_chunk_fast(self, s: Tensor, ctx: Tensor, mods: list[Tensor], head_mod: Tensor,
                             tok_pos: Tensor) -> Tensor:
        """Same bits as :meth:`_generate_chunk` [1,N,D], each token run through the blocks once.

        Valid because the mask is block-causal: a level's tokens see only the context and levels <= it,
        and appending a level leaves the earlier tokens' inputs unchanged (the first pieces of
        ar_feat(k) are ar_feat(k-1)). So per chunk the context keys/values of every block are computed
        once, the audio AdaLN modulations of all N tokens come precomputed (mods [1,N,6E] per block,
        head_mod [1,N,2E], see :meth:`_condition_mods`), and each level runs only its new tokens,
        attending (unmasked) to [context, cached earlier tokens, themselves].
        """
        n_tok = head_mod.shape[1]
        d = self.config.code_dim
        blocks = self._blocks
        caches = [block.attn.new_cache(ctx, n_tok) for block in blocks]
        last = len(self._level_ends) - 1
        x_new, acc, start = s, None, 0
        parts = []
        for k, end in enumerate(self._level_ends):
            h = x_new + tok_pos[:, start:end]
            for block, cache, mod in zip(blocks, caches, mods):
                h = block.forward_cached(h, mod[:, start:end], cache)
            logits = self.logits_head(self.cond_logits_head.modulate(h, head_mod[:, start:end]))
            bits_k = logits.view(1, end - start, d, 2).argmax(dim=-1).bool()
            parts.append(bits_k)
            if k < last:
                acc, piece = self.basic_vae.ar_feat_step(acc, k, bits_k)
                x_new = self.vqfeat_embed(piece)
            start = end
        return torch.cat(parts, dim=1)

    def _cast_modules(self) -> list[nn.Module]:
        """The modules whose linear weights a bf16/fp16 generation holds cast (not the audio encoder)."""
        return [self.attn_blocks, self.cond_logits_head, self.logits_head, self.vqfeat_embed, self.basic_vae]

    def hold_precision(self, precision: str) -> AbstractContextManager[None]:
        """Keep the generator's linear weights cast to ``precision`` while inside (a server running
        many interleaved generations casts them once, not once per generation); same numbers. Only
        for a process whose generations all run in ``precision``, from one thread."""
        return linear_weights_cast(self._cast_modules(), PRECISIONS[self._precision(precision)])

    # ---- public API --------------------------------------------------------------------------
    def _precision(self, precision: str) -> str:
        """``precision`` checked; ``auto`` resolved to what runs fastest here (artalk_core.model.precision)."""
        if check_precision(precision) == "auto":
            return resolve_precision(precision, self._param.device, self.config)
        return precision

    def _check_audio(self, audio: Tensor) -> None:
        if audio.dim() != 1:
            raise AudioError(f"audio must be mono samples [S], got shape {tuple(audio.shape)}")
        if num_frames(audio.shape[0]) < 1:
            raise AudioError("audio is empty: nothing to encode")
        for start in range(0, audio.shape[0], 1 << 20):  # in slices: no mask as long as the audio
            if not torch.isfinite(audio[start:start + (1 << 20)]).all():
                raise AudioError("audio contains NaN or infinite samples")

    @torch.no_grad()
    def encode_chunks(self, chunks: Tensor, *, precision: str = "fp32") -> Tensor:
        """Audio chunks [G,64000] (or one chunk [S<=64000], zero-padded) -> features [G,F,C].

        Model device and dtype; ``precision`` autocasts the encoder (see :meth:`encode_audio`).
        Each row is normalised on its own, so a chunk's features depend on its samples only.
        """
        ref = self._param
        if chunks.dim() == 1:
            if chunks.shape[0] > CHUNK_SAMPLES:
                raise AudioError(f"one audio chunk holds at most {CHUNK_SAMPLES} samples, got {chunks.shape[0]}")
            padded = torch.zeros(1, CHUNK_SAMPLES, dtype=ref.dtype, device=ref.device)
            padded[0, :chunks.shape[0]] = chunks.to(device=ref.device, dtype=ref.dtype)
            chunks = padded
        if chunks.dim() != 2 or chunks.shape[1] != CHUNK_SAMPLES or chunks.shape[0] < 1:
            raise AudioError(f"audio chunks must be [G, {CHUNK_SAMPLES}], got shape {tuple(chunks.shape)}")
        with precision_context(self._precision(precision), ref.device):
            feats = run_audio_encoder(self.config, self.audio_encoder, chunks.to(device=ref.device, dtype=ref.dtype))
        return feats.to(ref.dtype)

    @torch.no_grad()
    def iter_encode_audio(self, audio: Tensor, progress: OptionalProgress = None, *,
                          chunk_batch: int = DEFAULT_CHUNK_BATCH, precision: str = "fp32") -> Iterator[Tensor]:
        """16 kHz mono audio [S] -> features [G,F,C] for ``chunk_batch`` chunks at a time (the last
        group may be smaller); :meth:`encode_audio` concatenated, without holding all of them.

        Only the last chunk is zero-padded (no padded copy of the whole audio is made).
        """
        self._check_audio(audio)
        return self._iter_encode(audio, progress, max(1, chunk_batch), self._precision(precision))

    def _iter_encode(self, audio: Tensor, progress: OptionalProgress, batch: int, precision: str) -> Iterator[Tensor]:
        ref = self._param
        n_samples = audio.shape[0]
        n_chunks = padded_samples(n_samples) // CHUNK_SAMPLES
        report(progress, "encode audio", 0, n_chunks)
        for start in range(0, n_chunks, batch):
            stop = min(start + batch, n_chunks)
            group = torch.zeros(stop - start, CHUNK_SAMPLES, dtype=ref.dtype, device=ref.device)
            piece = audio[start * CHUNK_SAMPLES: stop * CHUNK_SAMPLES]
            group.view(-1)[:piece.shape[0]] = piece.to(device=ref.device, dtype=ref.dtype)
            with torch.no_grad():
                feats = self.encode_chunks(group, precision=precision)
            del group
            report(progress, "encode audio", stop, n_chunks)
            yield feats

    @torch.no_grad()
    def encode_audio(self, audio: Tensor, progress: OptionalProgress = None, *,
                     chunk_batch: int = DEFAULT_CHUNK_BATCH, precision: str = "fp32") -> Tensor:
        """16 kHz mono audio [S] -> audio features [n_chunks,F,C] (model device and dtype).

        The audio is zero-padded to whole 64,000-sample chunks covering ceil(S/16000*25) frames.
        ``precision`` (fp32 | bf16 | fp16) autocasts the encoder; the features keep the model's dtype.
        """
        return torch.cat(list(self.iter_encode_audio(audio, progress, chunk_batch=chunk_batch,
                                                     precision=precision)), dim=0)

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
    def generate(self, features: Tensor, n_frames: int, style_motion: Tensor | None = None,
                 progress: OptionalProgress = None, *, fast: bool = True, precision: str = "fp32") -> Tensor:
        """Audio features [n_chunks,F,C] -> raw motion [n_frames,106] (float32, CPU; no post-processing).

        ``fast=False`` runs the straightforward per-level algorithm (the reference path: every level
        re-runs all tokens so far); the default key/value-cached path gives the same bits.
        ``precision``: fp32 | bf16 | fp16 (autocast; lower precisions can change bits).
        """
        return self.generate_detailed(features, n_frames, style_motion, progress,
                                      fast=fast, precision=precision).motion

    @torch.no_grad()
    def generate_reference(self, features: Tensor, n_frames: int, style_motion: Tensor | None = None,
                           progress: OptionalProgress = None, *, precision: str = "fp32") -> Tensor:
        """:meth:`generate` by the straightforward per-level algorithm of the specification (slow path)."""
        return self.generate(features, n_frames, style_motion, progress, fast=False, precision=precision)

    @torch.no_grad()
    def generate_detailed(self, features: Tensor, n_frames: int, style_motion: Tensor | None = None,
                          progress: OptionalProgress = None, *, fast: bool = True, precision: str = "fp32",
                          cond_batch: int = DEFAULT_COND_BATCH) -> Generation:
        """:meth:`generate` returning also every chunk's bits and the seconds spent per stage.

        ``cond_batch``: chunks whose audio modulations the fast path computes together.
        """
        self._check_features(features)
        n_chunks = features.shape[0]
        if not 1 <= n_frames <= n_chunks * CHUNK_FRAMES:
            raise InputError(f"n_frames must be in 1..{n_chunks * CHUNK_FRAMES} for {n_chunks} chunk(s), "
                             f"got {n_frames}")
        seconds = {"ar": 0.0, "vae": 0.0}
        motions, all_bits = [], []
        for motion, bits in self._generate_stream([features], style_motion, progress, fast=fast,
                                                  precision=precision, cond_batch=cond_batch,
                                                  total=n_chunks, seconds=seconds):
            motions.append(motion)
            all_bits.append(bits)
        return Generation(motion=torch.cat(motions, dim=0)[:n_frames],
                          bits=torch.cat(all_bits, dim=0).cpu(), seconds=seconds)

    def _check_features(self, features: Tensor) -> None:
        # Any number of frames works (they are area-resampled to every scale); the encoder gives F.
        c, f = self.config.audio_dim, self.config.audio_tokens
        if features.dim() != 3 or features.shape[-1] != c or features.shape[0] < 1:
            raise InputError(f"audio features must be [n_chunks, frames, {c}] ({f} frames from this model's "
                             f"{self.config.audio_encoder} audio encoder), got {tuple(features.shape)}")

    @torch.no_grad()
    def iter_generate(self, feature_chunks: Iterable[Tensor], style_motion: Tensor | None = None,
                      progress: OptionalProgress = None, *, fast: bool = True, precision: str = "fp32",
                      cond_batch: int = DEFAULT_COND_BATCH, total: int = 0) -> Iterator[Tensor]:
        """Chunk-wise :meth:`generate`: yields each chunk's raw motion [100,106] (float32, CPU) as soon
        as it is made, pulling the features one item at a time from ``feature_chunks``.

        An item is one chunk's features [F,C] or a group [G,F,C]; within a group the fast path
        computes the audio modulations of ``cond_batch`` chunks together (exact either way). The
        previous-chunk context is kept between items, so the concatenated chunks equal
        :meth:`generate` of the concatenated features (before its cut to ``n_frames``). Only the item
        being worked on is held. ``total``: number of chunks for progress reports (0 if unknown).
        """
        for motion, _bits in self._generate_stream(feature_chunks, style_motion, progress, fast=fast,
                                                   precision=precision, cond_batch=cond_batch, total=total):
            yield motion

    def _generate_stream(self, feature_groups: Iterable[Tensor], style_motion: Tensor | None,
                         progress: OptionalProgress, *, fast: bool, precision: str, cond_batch: int,
                         total: int, seconds: dict[str, float] | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """The autoregressive loop over chunks: yields (motion [100,106] float32 CPU, bits [1,N,D]).

        Autocast is entered around each chunk's work only, never across a ``yield``, so the caller's
        code between chunks runs in its own precision. With bf16/fp16 the linear weights of the AR
        blocks and the VAE stay cast while the generator is alive: do not use this model for other
        work between chunks (encoding audio is fine: the audio encoder is not cast).
        """
        cfg = self.config
        ref = self._param
        precision = self._precision(precision)
        autocast_dtype = PRECISIONS[precision]
        cond_batch = max(1, cond_batch)
        n = cfg.num_tokens
        sync = torch.cuda.synchronize if ref.device.type == "cuda" else (lambda: None)
        seconds = seconds if seconds is not None else {"ar": 0.0, "vae": 0.0}

        def compute() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            stack.enter_context(torch.no_grad())
            stack.enter_context(precision_context(precision, ref.device))
            return stack

        # The weight cast lasts the whole loop (casting per chunk would cost time); autocast is
        # thread-local state, so it is entered per chunk and never held across a ``yield``.
        with linear_weights_cast(self._cast_modules(), autocast_dtype):
            with compute():
                s = self._style_condition(style_motion)
                lvl = self.lvl_embed(self.lvl_idx)
                tok_pos = lvl + self.pos_embed
                ctx_pos = lvl.repeat(1, cfg.prev_ratio, 1) + self.prev_pos_embed
                prev_bits = self.basic_vae.encode_prev(torch.zeros(1, CHUNK_FRAMES, cfg.motion_dim,
                                                                   dtype=ref.dtype, device=ref.device))
                ctx = self._context_tokens(s, prev_bits).repeat(1, cfg.prev_ratio, 1)
            report(progress, "generate", 0, total)
            i = 0
            last_motion: Tensor | None = None  # re-encoded only once a next chunk comes (none for the last)
            for group in feature_groups:
                if group.dim() == 2:
                    group = group[None]
                self._check_features(group)
                feats = group.to(device=ref.device, dtype=ref.dtype)
                del group
                mods: list[Tensor] = []
                head_mod = feats.new_empty(0)
                for j in range(feats.shape[0]):
                    with compute():
                        if last_motion is not None:
                            t0 = time.perf_counter()
                            prev_bits = self.basic_vae.encode_prev(last_motion)
                            sync()
                            t1 = time.perf_counter()
                            ctx = torch.cat([ctx[:, n:], self._context_tokens(s, prev_bits)], dim=1)
                            seconds["vae"] += t1 - t0
                            seconds["ar"] += time.perf_counter() - t1
                        t0 = time.perf_counter()
                        if not fast:
                            bits = self._generate_chunk(s, ctx + ctx_pos, self._audio_condition(feats[j:j + 1]),
                                                        tok_pos)
                        else:
                            k = j % cond_batch
                            if k == 0:  # one bigger product for a group of chunks is faster than one per chunk
                                mods, head_mod = self._condition_mods(self._audio_condition(feats[j:j + cond_batch]))
                            bits = self._generate_chunk_fast(s, ctx + ctx_pos, [m[k:k + 1] for m in mods],
                                                             head_mod[k:k + 1], tok_pos)
                        sync()
                        t1 = time.perf_counter()
                        motion = self.basic_vae.decode(prev_bits, bits)
                        sync()
                        t2 = time.perf_counter()
                    seconds["ar"] += t1 - t0
                    seconds["vae"] += t2 - t1
                    last_motion = motion
                    i += 1
                    report(progress, "generate", i, max(total, i))
                    if j % cond_batch == cond_batch - 1 or j == feats.shape[0] - 1:
                        # the modulations are used up: not held while suspended (40 MB at full size,
                        # per stream for a live server keeping many generators waiting for audio)
                        mods, head_mod = [], feats.new_empty(0)
                    yield motion[0].float().cpu(), bits.cpu()
                del feats, mods, head_mod

    @torch.no_grad()
    def generate_from_audio(self, audio: Tensor, style_motion: Tensor | None = None,
                            progress: OptionalProgress = None, *, fast: bool = True,
                            precision: str = "fp32") -> Tensor:
        """16 kHz audio [S] -> raw motion [ceil(S/16000*25),106] (float32, CPU).

        Same result as :meth:`encode_audio` then :meth:`generate`, but the features of only
        ``DEFAULT_CHUNK_BATCH`` chunks are held at a time (memory independent of the duration).
        """
        n_frames = num_frames(audio.shape[0])
        out = torch.empty(n_frames, self.config.motion_dim)  # filled in place: one copy of the result
        start = 0
        for motion in self.iter_generate_from_audio(audio, style_motion, progress, fast=fast, precision=precision):
            take = min(motion.shape[0], n_frames - start)
            out[start:start + take] = motion[:take]
            start += take
        return out

    @torch.no_grad()
    def iter_generate_from_audio(self, audio: Tensor | Iterable[Tensor], style_motion: Tensor | None = None,
                                 progress: OptionalProgress = None, *, fast: bool = True, precision: str = "fp32",
                                 chunk_batch: int = DEFAULT_CHUNK_BATCH) -> Iterator[Tensor]:
        """Audio -> each chunk's raw motion [100,106] (float32, CPU), encoding interleaved with generation.

        ``audio``: the whole 16 kHz signal [S] (encoded ``chunk_batch`` chunks at a time; cut the
        concatenation to ceil(S/16000*25) frames), or an iterable of chunks, each [64000] (the last
        may be shorter: zero-padded) or a group [G,64000], encoded as it arrives (streaming).
        """
        if isinstance(audio, Tensor):
            groups: Iterable[Tensor] = self.iter_encode_audio(audio, progress, chunk_batch=chunk_batch,
                                                              precision=precision)
            total = padded_samples(audio.shape[0]) // CHUNK_SAMPLES
        else:
            precision = self._precision(precision)
            groups = (self.encode_chunks(chunk, precision=precision) for chunk in audio)
            total = 0
        return self.iter_generate(groups, style_motion, progress, fast=fast, precision=precision, total=total)


__all__ = ["ARTalkModel", "Generation", "PRECISIONS", "attention_bias", "level_index", "precision_context"]
