"""The sampler seam: a strategy plans one epoch of batches; `EpochBatches` iterates and resumes.

A strategy is a small class with `plan(epoch) -> list[np.ndarray]`: a pure function of the
length arrays it was built from, its settings, the seed and the epoch number. Strategies see
lengths, never text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class Strategy(Protocol):
    def plan(self, epoch: int) -> list[np.ndarray]:
        """Every batch of `epoch` (corpus indices), in the order they are trained on."""
        ...


class EpochBatches:
    """Resumable iteration over a strategy's batches, epoch by epoch.

    `position` counts the batches of the current epoch already handed out; saving
    `state_dict()` after a batch and loading it later continues with the next batch.
    """

    def __init__(self, strategy: Strategy, epoch: int = 1):
        self.strategy = strategy
        self.epoch = epoch
        self.position = 0

    def epoch_iter(self) -> Iterator[np.ndarray]:
        """The remaining batches of the current epoch; the epoch advances when they run out."""
        batches = self.strategy.plan(self.epoch)
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


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random generator of one epoch: the same (seed, epoch) always gives the same stream."""
    return np.random.default_rng([seed, epoch])
