"""Inference batches: sentences sorted longest first, each batch within a padded-slot budget."""

from __future__ import annotations

import numpy as np


def inference_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Batches of indices with `rows * (longest + 1) <= max_tokens` (+1: the eos).

    A sentence longer than the budget forms a batch of its own rather than being dropped.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        rows = max(1, max_tokens // (int(lengths[order[start]]) + 1))
        batches.append(order[start : start + rows])
        start += rows
    return batches
