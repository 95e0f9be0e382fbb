"""Packed rows (padding-free batching): several sentences share a row, with block-diagonal
attention and positions restarting at every sentence (Krell et al. 2021), for the Transformer.

A planned batch is an int64 array (n, 2) of (sentence index, row) pairs. Rows are filled by
first-fit decreasing: sentences longest first, then by total length (pairs of equal lengths
adjacent, in random order), each into the first row that still has room on both sides
(`row_tokens` per side). Rows with similar fills are grouped
`max_tokens // row_tokens` to a batch (a batch is as wide as its fullest row), and the batch
order is shuffled.

Packed rows have no pad side: a row's sentences come first and its padding after them, so
`pad_side` is always "post" (the config refuses batching.pad_side pre with packed_rows).
"""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy
from mtapp.batching.batch import Batch, collate_packed
from mtapp.config import check_fits
from mtapp.data.encoded import EncodedCorpus


class PackedRows(Strategy):
    def __init__(self, src_lengths, tgt_lengths, max_tokens: int, row_tokens: int, seed: int):
        super().__init__(src_lengths, tgt_lengths, seed)
        self.row_tokens, self.rows_per_batch = row_tokens, max(1, max_tokens // row_tokens)
        check_fits(int(max(self.src.max(), self.tgt.max())), row_tokens, "batching.row_tokens")

    def plan(self, epoch: int) -> list[np.ndarray]:
        rng = self.rng(epoch)
        order = rng.permutation(len(self.src))
        s, t = self.src[order], self.tgt[order]
        order = order[np.lexsort((t, s, -(s + t), -np.maximum(s, t)))]  # longest first; equal pairs adjacent
        row_of = first_fit(self.src[order], self.tgt[order], self.row_tokens)
        n_rows = int(row_of.max()) + 1
        src_fill = np.bincount(row_of, weights=self.src[order], minlength=n_rows)
        tgt_fill = np.bincount(row_of, weights=self.tgt[order], minlength=n_rows)
        rank = np.empty(n_rows, dtype=np.int64)
        rank[np.lexsort((rng.permutation(n_rows), src_fill, tgt_fill))] = np.arange(n_rows)  # similar fills adjacent
        row_of = rank[row_of]
        by_row = np.argsort(row_of, kind="stable")
        pairs = np.stack([order[by_row], row_of[by_row]], axis=1)  # (n, 2) grouped by row
        cuts = np.searchsorted(pairs[:, 1], np.arange(self.rows_per_batch, n_rows, self.rows_per_batch))
        batches = [batch - [0, batch[0, 1]] for batch in np.split(pairs, cuts)]  # rows numbered from 0
        return [batches[i] for i in rng.permutation(len(batches))]

    def shape(self, item: np.ndarray) -> tuple[int, int, int]:
        rows = item[:, 1]
        src_fill = np.bincount(rows, weights=self.src[item[:, 0]])
        tgt_fill = np.bincount(rows, weights=self.tgt[item[:, 0]])
        return len(src_fill), int(src_fill.max()), int(tgt_fill.max())

    def collate(self, corpus: EncodedCorpus, item: np.ndarray) -> Batch:
        """The packed `Batch` of `item`: (sentence, row) pairs, each row post-padded."""
        return collate_packed(corpus, item[:, 0], item[:, 1])


def first_fit(src: np.ndarray, tgt: np.ndarray, capacity: int) -> np.ndarray:
    """Row number of each item: the first row with room for it on both sides (items in order).

    Consecutive equal items are placed together: an item equal to the previous one cannot go to
    a row the previous one did not fit, so a run of k equal items fills the open rows in order,
    each taking as many as it has room for, and the rest open new rows. The loop runs once per
    run of equal (src, tgt) lengths, not once per item; rows that no later item can fit are
    closed and never scanned again.
    """
    starts = np.flatnonzero(np.r_[True, (src[1:] != src[:-1]) | (tgt[1:] != tgt[:-1])])
    ends = np.r_[starts[1:], len(src)]
    # smallest lengths still to come after each run: a row with less room is closed for good
    next_src = np.r_[np.minimum.accumulate(src[starts][::-1])[::-1][1:], capacity + 1]
    next_tgt = np.r_[np.minimum.accumulate(tgt[starts][::-1])[::-1][1:], capacity + 1]
    row_of = np.empty(len(src), dtype=np.int64)
    rows = np.zeros(0, dtype=np.int64)  # open rows, in row order, and their fills
    fill_src, fill_tgt = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_rows = 0
    for k, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
        s, t, count = int(src[start]), int(tgt[start]), end - start
        room = np.minimum((capacity - fill_src) // s, (capacity - fill_tgt) // t)  # items each open row takes
        take = np.clip(count - (np.cumsum(room) - room), 0, room)
        per_row = min(capacity // s, capacity // t)
        new = -(-(count - int(take.sum())) // per_row)
        new_take = np.minimum(per_row, count - int(take.sum()) - per_row * np.arange(new))
        rows = np.concatenate([rows, n_rows + np.arange(new)])
        take = np.concatenate([take, new_take])
        row_of[start:end] = np.repeat(rows, take)
        fill_src = np.concatenate([fill_src, np.zeros(new, dtype=np.int64)]) + take * s
        fill_tgt = np.concatenate([fill_tgt, np.zeros(new, dtype=np.int64)]) + take * t
        n_rows += new
        still_open = (capacity - fill_src >= next_src[k]) & (capacity - fill_tgt >= next_tgt[k])
        rows, fill_src, fill_tgt = rows[still_open], fill_src[still_open], fill_tgt[still_open]
    return row_of
