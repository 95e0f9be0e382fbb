"""What a run has done so far and whether it should stop: `Progress` (saved in checkpoints),
`EpochStats` (running sums for the logs), `StopSignals` (SIGINT / SIGTERM) and how progress
bars draw (`bar_settings`).
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import asdict, dataclass, fields

from mtapp.batching import Batch
from mtapp.distributed import Distributed


@dataclass
class Progress:
    updates: int = 0
    best_bleu: float = -1.0
    bad_epochs: int = 0  # epochs since the best validation BLEU
    elapsed: float = 0.0  # seconds spent in `fit`, over all sessions of this run
    tgt_tokens: int = 0  # real target tokens trained on
    skipped: int = 0  # updates skipped because the loss was not finite
    stopped: str = ""  # why training ended ("" while it has not)


class StopSignals:
    """While active, SIGINT / SIGTERM ask training to stop after the current update instead of
    killing it; `requested` names the signal received."""

    def __init__(self):
        self.requested = ""
        self._previous = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


LOG_BAR_SECONDS = 30.0  # a progress bar written into a file or pipe updates at most this often


def bar_settings() -> dict[str, float]:
    """tqdm keyword arguments for every progress bar: on a terminal tqdm's own redraws (10 a
    second); when stderr is a file or a pipe (a piped `scripts/run.sh`), one update every
    LOG_BAR_SECONDS, so a 22-minute run writes a few hundred lines of progress, not thousands."""
    if sys.stderr.isatty():
        return {}
    return {"mininterval": LOG_BAR_SECONDS, "maxinterval": 2 * LOG_BAR_SECONDS}


@dataclass
class EpochStats:
    """Running sums over the batches of one epoch (or one log interval)."""

    loss: float = 0.0
    nll: float = 0.0
    positions: int = 0  # target positions the loss covered (= tgt_tokens unless pads are not masked)
    tgt_tokens: int = 0
    src_tokens: int = 0
    slots: int = 0
    src_slots: int = 0
    sentences: int = 0
    seconds: float = 0.0

    def merge(self, other: EpochStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def add(self, batch: Batch, loss: float, nll: float, positions: int) -> None:
        self.loss += loss
        self.nll += nll
        self.positions += positions
        self.tgt_tokens += batch.tgt_tokens
        self.src_tokens += batch.src_tokens
        self.slots += batch.slots
        self.src_slots += batch.src.numel()
        self.sentences += len(batch.indices)  # packed rows hold several sentences per row

    def reduced(self, group: Distributed) -> EpochStats:
        """The sums over every rank; `seconds` is the ranks' mean (they train side by side)."""
        names = [f.name for f in fields(self)]
        totals = dict(zip(names, group.sum([float(getattr(self, n)) for n in names])))
        kinds = {n: type(getattr(self, n)) for n in names}
        merged = EpochStats(**{n: kinds[n](v) for n, v in totals.items()})
        merged.seconds /= group.world_size
        return merged

    def summary(self) -> dict[str, float]:
        return {
            "loss": self.loss / max(self.positions, 1),
            "nll": self.nll / max(self.positions, 1),
            "tgt_tokens": self.tgt_tokens,
            "sentences": self.sentences,
            "tgt_tokens_per_s": self.tgt_tokens / max(self.seconds, 1e-9),
            "padding_efficiency": (self.src_tokens + self.tgt_tokens) / max(self.slots, 1),
            "src_padding_efficiency": self.src_tokens / max(self.src_slots, 1),
            "tgt_padding_efficiency": self.tgt_tokens / max(self.slots - self.src_slots, 1),
            "seconds": self.seconds,
        }
