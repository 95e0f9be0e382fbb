"""The model interface that training and search use, whatever the architecture.

    state = model.encode(batch)                 # once per batch: decoder state before the first target token
    logits, state = model.decode_step(tokens, state)   # one target position for every row
    state = state.reorder(index)                # beam search: keep / repeat rows
    hidden = model(batch)                       # teacher forcing: decoder output (B, T, D)
    logits = model.project(hidden[~batch.tgt_pad_mask])   # (N, V) at real target positions only
                                                # (training fuses it with the loss: mtapp.loss)

Each architecture owns its state type; nothing outside `models/` looks inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from mtapp.batching import Batch


class DecoderState(Protocol):
    def reorder(self, index: torch.Tensor) -> DecoderState:
        """The state of rows `index` (int64 (B',)), in that order; rows may repeat."""
        ...


class Seq2Seq(nn.Module, ABC):
    """An encoder-decoder over one joint vocabulary."""

    # Its limits, which everything else asks it for (set by the constructor, from `specials.model_limits`):
    max_source_tokens: int | None = None  # most source subwords (eos excluded) it can encode (None: no limit)
    max_output_tokens: int | None = None  # most target tokens before eos it can decode (None: no limit)
    source_pad_side: str = "post"  # the side its sources were padded on in training (`build_model`)

    def __init__(self):
        super().__init__()
        self.projection: nn.Module | None = None  # set by `quantize.int8`: the output projection as a layer

    @abstractmethod
    def encode(self, batch: Batch) -> DecoderState:
        """Encode `batch.src`; returns the initial decoder state (no target token consumed yet)."""

    @abstractmethod
    def decode_step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Feed one token per row (int64 (B,)); returns next-token logits (B, V) and the new state.
        `state` is consumed (its buffers may be reused): continue from the returned one."""

    @abstractmethod
    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced decoder output (B, T, D) for `batch.tgt_in`, before the projection."""

    @abstractmethod
    def output_embedding(self) -> torch.Tensor:
        """The (V, D) matrix that turns decoder outputs into logits (tied with the input embeddings)."""

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decoder output (..., D) -> vocabulary logits (..., V)."""
        if self.projection is not None:
            return self.projection(hidden)
        return F.linear(hidden, self.output_embedding())
