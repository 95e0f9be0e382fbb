"""Pre-norm Transformer encoder-decoder with tied embeddings and cached incremental decoding.

Shapes: B batch, S source length, T target length, D d_model, H heads, K = D / H.
Source positions count real tokens only (a pre-padded sentence gets the same positions as a
post-padded one), so the output for a sentence does not depend on its padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from mtapp.batching import Batch
from mtapp.config import ModelConfig
from mtapp.models.base import Seq2Seq
from mtapp.models.dropout import Dropout
from mtapp.specials import PAD, model_limits


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sinusoidal position table (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def low_precision_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float, causal: bool
) -> torch.Tensor:
    """softmax(q k^T / sqrt(K) + mask) v with its products in bf16, for the CPU: what
    `F.scaled_dot_product_attention` computes, without its CPU paths' costs in bf16 — the flash
    kernel's backward took a third of a bf16-pure update, and the math path casts q, k, v and
    their gradients to float32 and back (docs/training_memory_speed.md). The softmax accumulates
    in float32 inside its kernel; its probabilities are bf16, as in the fused GPU kernels."""
    with torch.autocast("cpu", enabled=False):  # under autocast the inputs are bf16 already
        k, v = k.to(q.dtype), v.to(q.dtype)
        scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))  # (B, H, L, L')
        if causal:
            future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if p > 0:
            weights = F.dropout(weights, p)
        return torch.matmul(weights, v)


class Attention(nn.Module):
    """Multi-head attention over fused scaled-dot-product kernels."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, K)"""
        b, length, d = x.shape
        return x.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> keys and values, each (B, H, L, K)"""
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """x (B, L, D) attends to k, v (B, H, L', K); mask (B, 1, 1, L') True = may attend."""
        q = self.split(self.q(x))
        p = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and (torch.is_autocast_enabled("cpu") or q.dtype == torch.bfloat16):
            y = low_precision_attention(q, k, v, mask, p, causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        b, _, length, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, length, -1))  # (B, L, D)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float):
        super().__init__(
            nn.Linear(d_model, ffn_dim), nn.ReLU(inplace=True), Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.activation_dropout)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, *self.attn.keys_values(h), mask=mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = Attention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.cross_attn = Attention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.activation_dropout)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, cross_kv, src_mask, cache=None, self_mask=None, group=1) -> torch.Tensor:
        """x (B, L, D). Without `cache`: teacher forcing over L positions (causal, or `self_mask`
        (B, 1, L, L) when given). With `cache` (t + 1, B, 2, H, K), this layer's self-attention
        keys/values of the t earlier positions: x is the next position (L = 1), whose keys/values
        are written into `cache[t]`.

        `group` g > 1 (incremental decoding only): rows come in groups of g consecutive rows
        that share one source (the beams of a sentence), and `cross_kv`/`src_mask` hold one
        entry per group (B / g): the g queries of a group attend to it together."""
        h = self.norm1(x)
        if cache is None:
            k, v = self.self_attn.keys_values(h)
        else:  # (B, 1, 2D) -> cache[t] (B, 2, H, K); keys and values (B, H, t + 1, K) are views
            cache[-1] = self.self_attn.kv(h).view(cache.shape[1:])
            k, v = cache.permute(2, 1, 3, 0, 4).unbind(0)
        causal = cache is None and self_mask is None
        x = x + self.drop(self.self_attn(h, k, v, mask=self_mask, causal=causal))
        h = self.norm2(x)
        if group > 1:  # (B, 1, D) -> (B / g, g, D): the g beams of a source as g query positions
            h = h.reshape(-1, group, h.shape[-1])
        x = x + self.drop(self.cross_attn(h, *cross_kv, mask=src_mask).reshape(x.shape))
        return x + self.drop(self.ffn(self.norm3(x)))


@dataclass(frozen=True)
class TransformerState:
    """Decoder state for incremental decoding (L = decoder layers, B rows, N sources).

    src_mask:  bool (N, 1, 1, S)            True at real source tokens
    cross_kv:  L pairs of (N, H, S, K)       keys/values of the encoder output, computed once
    source:    int64 (B,)                    the source (index into the N) each row decodes
    cache:     (capacity, B, L, 2, H, K)     self-attention keys/values of the target tokens fed
                                             so far, time-major: `cache[:step]` holds them
                                             (None before the first token)
    spare:     1-D, or None                  memory for the next `reorder` to copy the cache into

    Rows that decode the same source (the beams of a sentence) share its encoder keys/values:
    `reorder` only moves `source` and the self-attention cache, and drops sources no row uses.
    The cache is time-major so that its filled part `cache[:step]` is one contiguous block: a
    step writes its keys/values in place (no concatenation) and `reorder` copies that block
    once, into the spare memory, whereupon the old cache's memory becomes the spare. The two
    buffers are reused for the whole search: a fresh block of this size (tens of MB) would come
    from mmap and be page-faulted in again at every step. A state is therefore consumed by
    `decode_step` and `reorder`: continue from the state they return.
    """

    src_mask: torch.Tensor
    cross_kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    source: torch.Tensor
    cache: torch.Tensor | None = None
    step: int = 0
    spare: torch.Tensor | None = None

    @property
    def group(self) -> int:
        """g when the rows are g consecutive rows per source, in source order; else 0."""
        rows, sources = len(self.source), len(self.src_mask)
        g = rows // sources
        layout = torch.arange(sources, device=self.source.device).repeat_interleave(g)
        return g if g * sources == rows and torch.equal(self.source, layout) else 0

    def reorder(self, index: torch.Tensor) -> TransformerState:
        source = self.source.index_select(0, index)
        used, source = torch.unique(source, return_inverse=True)  # sorted sources still decoded
        src_mask, cross_kv = self.src_mask, self.cross_kv
        if len(used) < len(src_mask):  # a finished sentence's encoder output is dropped once
            src_mask = src_mask.index_select(0, used)
            cross_kv = tuple((k.index_select(0, used), v.index_select(0, used)) for k, v in cross_kv)
        if self.cache is None:
            return TransformerState(src_mask, cross_kv, source)
        shape = (len(self.cache), len(index), *self.cache.shape[2:])
        cache = _take(self.spare, shape, self.cache)
        # The rows of the (step * B) filled block, as one index_select along dim 0 (along dim 1
        # of the (step, B, ...) view it takes ~2x longer).
        rows = (torch.arange(self.step, device=index.device)[:, None] * self.cache.shape[1] + index).view(-1)
        torch.index_select(self.cache[: self.step].flatten(0, 1), 0, rows, out=cache[: self.step].flatten(0, 1))
        return TransformerState(src_mask, cross_kv, source, cache, self.step, self.cache.view(-1))

    def grown(self, row_shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The cache and spare with room for one more position (16 more when full) of `row_shape`
        (B, L, 2, H, K) and `dtype`."""
        if self.cache is None:
            return torch.empty((16, *row_shape), dtype=dtype, device=self.source.device), None
        if self.step < len(self.cache):
            return self.cache, self.spare
        cache = _take(self.spare, (self.step + 16, *row_shape), self.cache)
        cache[: self.step] = self.cache
        return cache, self.cache.view(-1)

    def cross(self, group: int) -> tuple[torch.Tensor, tuple]:
        """Source mask and encoder keys/values as the decoder layers take them with `group`."""
        if group:
            return self.src_mask, self.cross_kv
        pick = self.source  # rows in no regular layout: one copy of the source per row
        return self.src_mask.index_select(0, pick), tuple(
            (k.index_select(0, pick), v.index_select(0, pick)) for k, v in self.cross_kv
        )


class Transformer(Seq2Seq):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.d_model = cfg.d_model
        self.embed = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, mean=0.0, std=cfg.d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.register_buffer("positions", sinusoids(cfg.max_positions, cfg.d_model), persistent=False)
        self.max_source_tokens, self.max_output_tokens = model_limits(cfg.type, cfg.max_positions)
        self.drop = Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)

    def _embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens, positions (B, L) -> (B, L, D)"""
        return self.drop(self.embed(tokens) * math.sqrt(self.d_model) + self.positions[positions])

    def output_embedding(self) -> torch.Tensor:
        return self.embed.weight  # tied with the input embeddings

    def encode(self, batch: Batch) -> TransformerState:
        memory, real = self.encode_source(batch)  # (B, S, D), (B, S)
        cross_kv = tuple(layer.cross_attn.keys_values(memory) for layer in self.decoder)
        return TransformerState(real[:, None, None, :], cross_kv, torch.arange(len(real), device=real.device))

    def encode_source(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B, S, D) and its real-token mask (B, S)."""
        real = ~batch.src_pad_mask
        if batch.src_segments is not None:  # packed rows: each sentence sees only itself
            positions = segment_positions(batch.src_segments)
            mask = block_mask(batch.src_segments, batch.src_segments)[:, None]  # (B, 1, S, S)
        else:
            positions = (real.cumsum(dim=1) - 1).clamp(min=0)  # real tokens count from 0 on either pad side
            mask = real[:, None, None, :]  # (B, 1, 1, S)
        return self.encoder_stack(self._embed(batch.src, positions), mask), real

    def encoder_stack(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The Transformer encoder layers over x (B, S, D); mask (B, 1, 1 or S, S) True = may attend."""
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def decode_step(self, tokens: torch.Tensor, state: TransformerState) -> tuple[torch.Tensor, TransformerState]:
        t = state.step
        x = self._embed(tokens[:, None], torch.full_like(tokens, t)[:, None])  # (B, 1, D)
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        heads = self.decoder[0].self_attn.heads
        cache, spare = state.grown((len(tokens), len(self.decoder), 2, heads, self.d_model // heads), dtype)
        group = state.group
        src_mask, cross_kv = state.cross(group)
        for i, (layer, cross) in enumerate(zip(self.decoder, cross_kv)):
            x = layer(x, cross, src_mask, cache=cache[: t + 1, :, i], group=group)
        return self.project(self.decoder_norm(x[:, 0])), replace(state, cache=cache, step=t + 1, spare=spare)

    def forward(self, batch: Batch) -> torch.Tensor:
        state = self.encode(batch)
        tgt, cross_mask, self_mask = batch.tgt_in, state.src_mask, None
        if batch.tgt_segments is not None:  # packed rows: block-diagonal, causal within a sentence
            seg = batch.tgt_segments
            positions = segment_positions(seg)
            cross_mask = block_mask(seg, batch.src_segments)[:, None]  # (B, 1, T, S)
            causal = torch.ones(seg.shape[1], seg.shape[1], dtype=torch.bool, device=seg.device).tril()
            self_mask = (block_mask(seg, seg) & causal)[:, None]  # (B, 1, T, T)
        else:
            positions = torch.arange(tgt.shape[1], device=tgt.device).expand_as(tgt)
        x = self._embed(tgt, positions)
        for layer, cross in zip(self.decoder, state.cross_kv):
            x = layer(x, cross, cross_mask, self_mask=self_mask)
        return self.decoder_norm(x)  # (B, T, D)


def _take(memory: torch.Tensor | None, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A tensor of `shape` in the 1-D `memory` when it is large enough, else newly allocated."""
    size = math.prod(shape)
    if memory is not None and len(memory) >= size:
        return memory[:size].view(shape)
    return like.new_empty(shape)


def segment_positions(segments: torch.Tensor) -> torch.Tensor:
    """(B, L) segment ids -> each token's position within its segment (restarting at 0)."""
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return index - torch.where(starts, index, 0).cummax(dim=1).values


def block_mask(query_segments: torch.Tensor, key_segments: torch.Tensor) -> torch.Tensor:
    """(B, Lq, Lk) True where a query may attend: keys of its own segment. Padding queries
    (segment 0) may attend anywhere, so that no row is empty; their outputs are never used."""
    same = query_segments[:, :, None] == key_segments[:, None, :]
    return same | (query_segments == 0)[:, :, None]
