"""Random batches with dynamic padding: a fixed number of sentences, padded to the batch's longest."""

from __future__ import annotations

import numpy as np

from mtapp.batching.global_max import GlobalPadding


class RandomBatches(GlobalPadding):
    """The batches of `GlobalPadding`, each padded only to its own longest sentence."""

    def widths(self, indices: np.ndarray) -> tuple[int, int]:
        return int(self.src[indices].max()), int(self.tgt[indices].max())
