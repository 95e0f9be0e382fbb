"""LSTM encoder-decoder with Luong attention and input feeding (Luong et al. 2015).

Encoder: bidirectional multi-layer LSTM (`rnn_encoder.LSTMEncoder`, any padding mode).
Decoder: an L-layer LSTM whose input at step t is [embedding of y_{t-1}; attentional vector of
step t-1] ("input feeding"); "general" attention score(h_t, a_s) = h_t^T W a_s over the encoder
outputs, pads masked; attentional vector = tanh(W_c [context; h_t]); logits through the tied
embedding matrix. The decoder's initial state is tanh(W [h_fwd; h_bwd]) of the encoder's final
states, layer by layer (and likewise for the cell).

Shapes: B batch, S source length, T target length, E = d_model (embedding size), H encoder
hidden per direction, D = 2H decoder hidden, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from mtapp.batching import Batch
from mtapp.config import ModelConfig
from mtapp.models.base import Seq2Seq
from mtapp.models.dropout import Dropout
from mtapp.models.rnn_encoder import LSTM, LSTMEncoder
from mtapp.specials import PAD


@dataclass(frozen=True)
class LSTMState:
    """h, c (L, B, D) decoder LSTM state; feed (B, D) previous attentional vector;
    memory (B, S, 2H) encoder outputs; keys (B, S, D) = memory W (computed once);
    real (B, S) True at real source tokens."""

    h: torch.Tensor
    c: torch.Tensor
    feed: torch.Tensor
    memory: torch.Tensor
    keys: torch.Tensor
    real: torch.Tensor

    def reorder(self, index: torch.Tensor) -> LSTMState:
        return LSTMState(
            self.h.index_select(1, index),
            self.c.index_select(1, index),
            self.feed.index_select(0, index),
            self.memory.index_select(0, index),
            self.keys.index_select(0, index),
            self.real.index_select(0, index),
        )


class LSTMSeq2Seq(Seq2Seq):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        e, h, layers = cfg.d_model, cfg.rnn_hidden, cfg.rnn_layers
        d = 2 * h
        self.embed = nn.Embedding(vocab_size, e, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, mean=0.0, std=e**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.scale = math.sqrt(e)
        self.drop = Dropout(cfg.dropout)
        self.encoder = LSTMEncoder(e, h, layers, cfg.dropout, cfg.encoder_padding)
        self.bridge_h, self.bridge_c = nn.Linear(d, d), nn.Linear(d, d)
        between = cfg.dropout if cfg.decoder_layers > 1 else 0.0  # applied between LSTM layers only
        self.decoder = LSTM(e + d, d, cfg.decoder_layers, batch_first=True, dropout=between)
        self.attn_key = nn.Linear(d, d, bias=False)  # W of the "general" score
        self.attn_out = nn.Linear(2 * d, d, bias=False)  # W_c
        self.out_proj = nn.Linear(d, e)  # to the (tied) embedding space

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(tokens) * self.scale)

    def encode(self, batch: Batch) -> LSTMState:
        enc = self.encoder(self._embed(batch.src), batch.src_lengths, batch.src_pad_mask)
        h0, c0 = torch.tanh(self.bridge_h(enc.final_h)), torch.tanh(self.bridge_c(enc.final_c))
        memory = self.drop(enc.outputs)
        feed = memory.new_zeros(memory.shape[0], h0.shape[-1])
        return LSTMState(h0.contiguous(), c0.contiguous(), feed, memory, self.attn_key(memory), ~enc.pad_mask)

    def _step(self, tokens: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """tokens (B,) -> attentional vector (B, D) and the next state."""
        x = torch.cat([self._embed(tokens), state.feed], dim=-1)[:, None]  # (B, 1, E + D)
        out, (h, c) = self.decoder(x, (state.h, state.c))
        top = out[:, 0]  # (B, D)
        scores = torch.bmm(state.keys, top[:, :, None]).squeeze(2)  # (B, S)
        alpha = scores.masked_fill(~state.real, float("-inf")).softmax(dim=-1)
        context = torch.bmm(alpha[:, None], state.memory).squeeze(1)  # (B, 2H)
        feed = self.drop(torch.tanh(self.attn_out(torch.cat([context, top], dim=-1))))
        return feed, replace(state, h=h, c=c, feed=feed)

    def decode_step(self, tokens: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        feed, state = self._step(tokens, state)
        return self.project(self.out_proj(feed)), state

    def forward(self, batch: Batch) -> torch.Tensor:
        state = self.encode(batch)
        feeds = []
        for t in range(batch.tgt_in.shape[1]):  # input feeding makes every step depend on the last
            feed, state = self._step(batch.tgt_in[:, t], state)
            feeds.append(feed)
        return self.out_proj(torch.stack(feeds, dim=1))  # (B, T, E)

    def output_embedding(self) -> torch.Tensor:
        return self.embed.weight  # tied with the input embeddings
