"""Sorted buckets: a fixed number of sentences per batch, cut from length-sorted pools."""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy


class SortedBuckets(Strategy):
    """Shuffle, cut into pools of `pool_batches * batch_size` sentences, sort each pool by source
    then target length, cut it into batches of `batch_size`, shuffle the batch order (torchtext's
    BucketIterator, Hugging Face's `group_by_length`)."""

    def __init__(self, src_lengths, tgt_lengths, batch_size: int, pool_batches: int, seed: int, pad_side: str = "post"):
        super().__init__(src_lengths, tgt_lengths, seed, pad_side)
        self.batch_size, self.pool = batch_size, batch_size * pool_batches

    def plan(self, epoch: int) -> list[np.ndarray]:
        rng = self.rng(epoch)
        order = rng.permutation(len(self.src))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.lexsort((self.tgt[pool], self.src[pool]))]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]
