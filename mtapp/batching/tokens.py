"""Token-count bucketing: length-sorted batches of at most `max_tokens` padded slots per side."""

from __future__ import annotations

import numpy as np

from mtapp.batching.base import Strategy
from mtapp.config import check_fits


class TokenBuckets(Strategy):
    """Batches of pairs with (nearly) equal lengths, `rows * longest <= max_tokens` on each side.

    `batch_cost` (a fraction of max_tokens) is the padding a batch must save to be worth
    starting: 0 gives pure length cells (no padding, many small batches), larger values fill
    batches up to the budget at the price of some padding.

    Pairs are sorted by source length, then target length, with ties broken at random per
    epoch. The sorted order is cut into batches by `segment`, which trades padding against the
    number of batches; the batch order is shuffled per epoch. Lengths count each side's specials
    (`lengths.with_specials`). With `multiple_of` > 1 padded lengths are rounded up to a multiple
    of it (as some hardware likes), and the budget counts the rounded lengths.
    """

    def __init__(
        self,
        src_lengths: np.ndarray,
        tgt_lengths: np.ndarray,
        max_tokens: int,
        seed: int,
        batch_cost: float,
        multiple_of: int,
        pad_side: str = "post",
    ):
        super().__init__(src_lengths, tgt_lengths, seed, pad_side)
        self.max_tokens, self.batch_cost, self.multiple_of = max_tokens, batch_cost, multiple_of
        self.src_slots, self.tgt_slots = round_up(self.src, multiple_of), round_up(self.tgt, multiple_of)
        check_fits(int(max(self.src_slots.max(), self.tgt_slots.max())), max_tokens, "batching.max_tokens")

    def plan(self, epoch: int) -> list[np.ndarray]:
        rng = self.rng(epoch)
        order = rng.permutation(len(self.src))
        order = order[np.lexsort((self.tgt_slots[order], self.src_slots[order]))]
        cost = self.batch_cost * self.max_tokens
        batches = segment(order, self.src_slots, self.tgt_slots, self.max_tokens, cost)
        return [batches[i] for i in rng.permutation(len(batches))]

    def widths(self, indices: np.ndarray) -> tuple[int, int]:
        return int(self.src_slots[indices].max()), int(self.tgt_slots[indices].max())


def round_up(lengths: np.ndarray, multiple: int) -> np.ndarray:
    return -(-lengths // multiple) * multiple


def segment(
    order: np.ndarray, src: np.ndarray, tgt: np.ndarray, max_tokens: int, batch_cost: float, window: int = 256
) -> list[np.ndarray]:
    """Cut a length-sorted `order` into batches minimising padded slots + `batch_cost` per batch.

    Dynamic programming over runs of equal (src, tgt) length: a segment of consecutive runs
    becomes ceil(rows / capacity) near-equal batches, capacity = max_tokens // longest. Its
    cost is its padding (every row padded to the segment's longest source and target) plus
    `batch_cost` per batch. Segments span at most `window` runs, so this is O(runs * window).
    """
    s, t = src[order], tgt[order]
    change = np.flatnonzero((s[1:] != s[:-1]) | (t[1:] != t[:-1])) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [len(order)]]))
    run_s, run_t = s[starts], t[starts]
    rows_before = np.concatenate([[0], np.cumsum(counts)])
    real_before = np.concatenate([[0], np.cumsum(counts * (run_s + run_t))])

    n_runs = len(starts)
    best = np.full(n_runs + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n_runs + 1, dtype=np.int64)
    pieces = np.zeros(n_runs + 1, dtype=np.int64)
    for j in range(1, n_runs + 1):  # best split of runs [0, j): last segment is runs [i, j)
        lo = max(0, j - window)
        i = j - np.arange(1, j - lo + 1)  # candidate segment starts, nearest first
        longest_s = np.maximum.accumulate(run_s[lo:j][::-1])
        longest_t = np.maximum.accumulate(run_t[lo:j][::-1])
        rows = rows_before[j] - rows_before[i]
        n_batches = -(-rows // (max_tokens // np.maximum(longest_s, longest_t)))
        padding = rows * (longest_s + longest_t) - (real_before[j] - real_before[i])
        cost = best[i] + padding + batch_cost * n_batches
        k = int(np.argmin(cost))
        best[j], back[j], pieces[j] = cost[k], i[k], n_batches[k]

    batches, j = [], n_runs
    while j > 0:
        i = back[j]
        batches.extend(reversed(np.array_split(order[rows_before[i] : rows_before[j]], pieces[j])))
        j = i
    return batches[::-1]
