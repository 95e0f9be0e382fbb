"""Packed rows (padding-free batching): several sentences share a row, with block-diagonal
attention and positions restarting at every sentence (Krell et al. 2021), for the Transformer.

A planned batch is an int64 array (n, 2) of (sentence index, row) pairs. Rows are filled by
first-fit decreasing: sentences longest first (ties in random order), each into the first row
that still has room on both sides (`row_tokens` per side). Rows with similar fills are grouped
`max_tokens // row_tokens` to a batch (a batch is as wide as its fullest row), and the batch
order is shuffled.
"""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy
from mtapp.batching.batch import Batch, collate_packed
from mtapp.data.encoded import EncodedCorpus


class PackedRows(Strategy):
    def __init__(self, src_lengths, tgt_lengths, max_tokens: int, row_tokens: int, seed: int):
        super().__init__(src_lengths, tgt_lengths, seed)
        self.row_tokens, self.rows_per_batch = row_tokens, max(1, max_tokens // row_tokens)
        longest = int(max(self.src.max(), self.tgt.max()))
        if longest > row_tokens:
            raise ValueError(f"a sentence of {longest} tokens does not fit batching.row_tokens={row_tokens}")

    def plan(self, epoch: int) -> list[np.ndarray]:
        rng = self.rng(epoch)
        order = rng.permutation(len(self.src))
        order = order[np.argsort(-np.maximum(self.src, self.tgt)[order], kind="stable")]
        row_of = first_fit(self.src[order], self.tgt[order], self.row_tokens)
        n_rows = int(row_of.max()) + 1
        src_fill = np.bincount(row_of, weights=self.src[order], minlength=n_rows)
        tgt_fill = np.bincount(row_of, weights=self.tgt[order], minlength=n_rows)
        rank = np.empty(n_rows, dtype=np.int64)
        rank[np.lexsort((rng.permutation(n_rows), src_fill, tgt_fill))] = np.arange(n_rows)  # similar fills adjacent
        row_of = rank[row_of]
        by_row = np.lexsort((np.arange(len(order)), row_of))
        pairs = np.stack([order[by_row], row_of[by_row]], axis=1)  # (n, 2) grouped by row
        cuts = np.searchsorted(pairs[:, 1], np.arange(self.rows_per_batch, n_rows, self.rows_per_batch))
        batches = [batch - [0, batch[0, 1]] for batch in np.split(pairs, cuts)]  # rows numbered from 0
        return [batches[i] for i in rng.permutation(len(batches))]

    def shape(self, item: np.ndarray) -> tuple[int, int, int]:
        rows = item[:, 1]
        src_fill = np.bincount(rows, weights=self.src[item[:, 0]])
        tgt_fill = np.bincount(rows, weights=self.tgt[item[:, 0]])
        return len(src_fill), int(src_fill.max()), int(tgt_fill.max())

    def collate(self, corpus: EncodedCorpus, item: np.ndarray, pad_side: str) -> Batch:
        return collate_packed(corpus, item[:, 0], item[:, 1])


def first_fit(src: np.ndarray, tgt: np.ndarray, capacity: int) -> np.ndarray:
    """Row number of each item: the first row with room for it on both sides (items in order)."""
    fill_src = np.zeros(len(src), dtype=np.int64)
    fill_tgt = np.zeros(len(src), dtype=np.int64)
    row_of = np.empty(len(src), dtype=np.int64)
    n_rows = 0
    for i, (s, t) in enumerate(zip(src.tolist(), tgt.tolist())):
        fits = np.flatnonzero((fill_src[:n_rows] + s <= capacity) & (fill_tgt[:n_rows] + t <= capacity))
        row = int(fits[0]) if len(fits) else n_rows
        n_rows += row == n_rows
        fill_src[row] += s
        fill_tgt[row] += t
        row_of[i] = row
    return row_of
