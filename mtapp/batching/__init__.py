"""Batching: the `Batch` type, `collate`, and one small module per sampling strategy."""

from mtapp.batching.base import EpochBatches, Strategy
from mtapp.batching.batch import Batch, collate
from mtapp.batching.tokens import TokenBuckets

__all__ = ["Batch", "EpochBatches", "Strategy", "TokenBuckets", "collate", "build_strategy"]


def build_strategy(cfg, src_lengths, tgt_lengths) -> Strategy:
    """The configured strategy (`batching.strategy`) over these length arrays."""
    if cfg.strategy == "tokens":
        return TokenBuckets(src_lengths, tgt_lengths, cfg.max_tokens, cfg.seed, cfg.batch_cost)
    raise ValueError(f"unknown batching.strategy {cfg.strategy!r}")
