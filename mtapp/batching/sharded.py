"""One rank's share of any strategy's batches, for data-parallel training.

Every rank plans the same global epoch (the same lengths, seed and epoch number give the same
batches), pads it to a multiple of `world_size` by repeating its first batches, and takes every
`world_size`-th batch from its rank on. So the ranks train on distinct batches — together, the
batches one process would train on — all take the same number of steps per epoch, and each
batch keeps the padding efficiency the strategy gave it.
"""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy
from mtapp.batching.batch import Batch
from mtapp.data.encoded import EncodedCorpus


class ShardedStrategy(Strategy):
    def __init__(self, base: Strategy, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.base, self.rank, self.world_size = base, rank, world_size
        self.src, self.tgt, self.seed, self.pad_side = base.src, base.tgt, base.seed, base.pad_side

    def plan(self, epoch: int) -> list[np.ndarray]:
        batches = self.base.plan(epoch)
        extra = [batches[i % len(batches)] for i in range(-len(batches) % self.world_size)]
        return (batches + extra)[self.rank :: self.world_size]

    def widths(self, indices: np.ndarray) -> tuple[int, int]:
        return self.base.widths(indices)

    def shape(self, item: np.ndarray) -> tuple[int, int, int]:
        return self.base.shape(item)

    def collate(self, corpus: EncodedCorpus, item: np.ndarray) -> Batch:
        return self.base.collate(corpus, item)

    def efficiency(self, epoch: int = 1) -> dict[str, float]:
        """The global plan's figures: sharding moves batches between ranks, it does not change them."""
        return self.base.efficiency(epoch)


def shard(strategy: Strategy, rank: int, world_size: int) -> Strategy:
    """`strategy` itself for one process, else this rank's `ShardedStrategy`."""
    return strategy if world_size == 1 else ShardedStrategy(strategy, rank, world_size)
