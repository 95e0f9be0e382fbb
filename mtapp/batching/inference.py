"""Inference batches: sentences sorted longest first, each batch within a padded-slot budget."""

from __future__ import annotations

import numpy as np

from mtapp.specials import SOURCE_SPECIALS


def inference_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Batches of indices with `rows * (longest + SOURCE_SPECIALS) <= max_tokens` (the eos).

    A sentence longer than the budget forms a batch of its own rather than being dropped.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        rows = max(1, max_tokens // (int(lengths[order[start]]) + SOURCE_SPECIALS))
        batches.append(order[start : start + rows])
        start += rows
    return batches
