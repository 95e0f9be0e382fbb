"""Global padding: every sentence padded to the longest in the corpus (the naive baseline)."""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy


class GlobalPadding(Strategy):
    """`batch_size` sentences in random order per batch; every batch has the same fixed shape
    (corpus maximum on each side), as code that pads a whole dataset up front produces."""

    def __init__(
        self, src_lengths: np.ndarray, tgt_lengths: np.ndarray, batch_size: int, seed: int, pad_side: str = "post"
    ):
        super().__init__(src_lengths, tgt_lengths, seed, pad_side)
        self.batch_size = batch_size

    def plan(self, epoch: int) -> list[np.ndarray]:
        order = self.rng(epoch).permutation(len(self.src))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def widths(self, indices: np.ndarray) -> tuple[int, int]:
        return int(self.src.max()), int(self.tgt.max())
