"""Batching: the `Batch` type, `collate`, and one small module per sampling strategy."""

from mtapp.batching.base import EpochBatches, Strategy
from mtapp.batching.batch import Batch, collate
from mtapp.batching.global_max import GlobalPadding
from mtapp.batching.packed_rows import PackedRows
from mtapp.batching.random_batches import RandomBatches
from mtapp.batching.sorted_buckets import SortedBuckets
from mtapp.batching.tokens import TokenBuckets
from mtapp.config import BatchingConfig

__all__ = ["Batch", "EpochBatches", "Strategy", "collate", "build_strategy"]


def build_strategy(cfg: BatchingConfig, src_lengths, tgt_lengths) -> Strategy:
    """The configured strategy (`batching.strategy`) over these length arrays (without eos/bos);
    its `collate` pads the source on `batching.pad_side` (packed rows: always after the row)."""
    side = cfg.pad_side
    if cfg.strategy == "global":
        return GlobalPadding(src_lengths, tgt_lengths, cfg.batch_size, cfg.seed, side)
    if cfg.strategy == "random":
        return RandomBatches(src_lengths, tgt_lengths, cfg.batch_size, cfg.seed, side)
    if cfg.strategy == "sorted":
        return SortedBuckets(src_lengths, tgt_lengths, cfg.batch_size, cfg.pool_batches, cfg.seed, side)
    if cfg.strategy == "tokens":
        return TokenBuckets(src_lengths, tgt_lengths, cfg.max_tokens, cfg.seed, cfg.batch_cost, cfg.multiple_of, side)
    if cfg.strategy == "packed_rows":
        return PackedRows(src_lengths, tgt_lengths, cfg.max_tokens, cfg.row_tokens, cfg.seed)
    raise ValueError(f"unknown batching.strategy {cfg.strategy!r}")
