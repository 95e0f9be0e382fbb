"""The sampler and collate seam: a strategy plans one epoch of batches and pads each one;
`EpochBatches` iterates the plan and resumes mid-epoch.

A strategy is a small class. `plan(epoch)` is a pure function of the length arrays it was built
from, its settings, the seed and the epoch number: strategies see lengths, never text.
`collate` turns one planned batch into a `Batch`; the default pads every row to the batch's
longest (`widths` may pad further, e.g. to the corpus maximum or a multiple of 8), the source on
the strategy's `pad_side`. batch.py shows what such a batch looks like.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from mtapp.batching.batch import Batch, collate
from mtapp.data.encoded import EncodedCorpus
from mtapp.specials import with_specials


class Strategy(ABC):
    """Built from lengths without specials; `src` / `tgt` count them (`lengths.with_specials`).

    `pad_side` ("post" or "pre", `batching.pad_side`): where `collate` puts the source's pads."""

    def __init__(self, src_lengths: np.ndarray, tgt_lengths: np.ndarray, seed: int, pad_side: str = "post"):
        src, tgt = np.asarray(src_lengths, dtype=np.int64), np.asarray(tgt_lengths, dtype=np.int64)
        self.src, self.tgt = with_specials(src, tgt)
        self.seed, self.pad_side = seed, pad_side

    @abstractmethod
    def plan(self, epoch: int) -> list[np.ndarray]:
        """Every batch of `epoch` (corpus indices), in the order they are trained on."""

    def widths(self, indices: np.ndarray) -> tuple[int, int]:
        """Padded (source, target) length of the batch `indices`."""
        return int(self.src[indices].max()), int(self.tgt[indices].max())

    def shape(self, item: np.ndarray) -> tuple[int, int, int]:
        """(rows, source width, target width) of a planned batch: its padded token slots."""
        return (len(item), *self.widths(item))

    def collate(self, corpus: EncodedCorpus, item: np.ndarray) -> Batch:
        """The `Batch` of the planned batch `item`, padded to `widths(item)` on `pad_side`."""
        src = [corpus.src_ids(i) for i in item]
        tgt = [corpus.tgt_ids(i) for i in item]
        return collate(src, tgt, item, self.pad_side, widths=self.widths(item))

    def efficiency(self, epoch: int = 1) -> dict[str, float]:
        """Real tokens / padded slots of one epoch's plan, per side and together; batch counts."""
        plan = self.plan(epoch)
        shapes = np.array([self.shape(item) for item in plan])  # (batches, 3)
        src_slots = int((shapes[:, 0] * shapes[:, 1]).sum())
        tgt_slots = int((shapes[:, 0] * shapes[:, 2]).sum())
        real_src, real_tgt = int(self.src.sum()), int(self.tgt.sum())
        return {
            "efficiency": (real_src + real_tgt) / (src_slots + tgt_slots),
            "src_efficiency": real_src / src_slots,
            "tgt_efficiency": real_tgt / tgt_slots,
            "batches": len(plan),
            "mean_sentences": len(self.src) / len(plan),
        }

    def rng(self, epoch: int) -> np.random.Generator:
        """The random generator of one epoch: the same (seed, epoch) always gives the same stream."""
        return np.random.default_rng([self.seed, epoch])


class EpochBatches:
    """Resumable iteration over a strategy's batches, epoch by epoch.

    `position` counts the batches of the current epoch already handed out; saving
    `state_dict()` after a batch and loading it later continues with the next batch.
    """

    def __init__(self, strategy: Strategy, epoch: int = 1):
        self.strategy = strategy
        self.epoch = epoch
        self.position = 0
        self._plan: tuple[int, list[np.ndarray]] = (0, [])  # (epoch, its batches), planned once

    def batches(self) -> list[np.ndarray]:
        """Every batch of the current epoch."""
        if self._plan[0] != self.epoch:
            self._plan = (self.epoch, self.strategy.plan(self.epoch))
        return self._plan[1]

    def epoch_iter(self) -> Iterator[np.ndarray]:
        """The remaining batches of the current epoch; the epoch advances when they run out."""
        batches = self.batches()
        while self.position < len(batches):
            batch = batches[self.position]
            self.position += 1
            yield batch
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
