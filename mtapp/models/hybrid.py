"""Hybrid: an LSTM encoder (packed by default) feeding masked Transformer encoder layers, then
the Transformer decoder.

The LSTM supplies word order, so the Transformer layers on top get no position embeddings;
their attention masks the pads the LSTM encoder reports (its own layout: packing returns
post-padded rows even for pre-padded input).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mtapp.batching import Batch
from mtapp.config import ModelConfig
from mtapp.models.rnn_encoder import LSTMEncoder
from mtapp.models.transformer import Transformer


class Hybrid(Transformer):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__(cfg, vocab_size)
        self.rnn = LSTMEncoder(cfg.d_model, cfg.rnn_hidden, cfg.rnn_layers, cfg.dropout, cfg.encoder_padding)
        self.rnn_proj = nn.Linear(2 * cfg.rnn_hidden, cfg.d_model)  # (B, S, 2H) -> (B, S, D)

    def encode_source(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.drop(self.embed(batch.src) * math.sqrt(self.d_model))
        enc = self.rnn(x, batch.src_lengths, batch.src_pad_mask)
        real = ~enc.pad_mask
        return self.encoder_stack(self.drop(self.rnn_proj(enc.outputs)), real[:, None, None, :]), real
