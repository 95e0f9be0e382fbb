"""What a run has done so far and whether it should stop: `Progress` (saved in checkpoints),
`EpochStats` (running sums for the logs), the records of the run's log (`RunLog`: `train`,
`valid` and `epoch` records in log.jsonl), `StopSignals` (SIGINT / SIGTERM) and how progress
bars draw (`bar_settings`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from mtapp import rundir
from mtapp.batching import Batch
from mtapp.distributed import Distributed
from mtapp.runtime import memory_mb

log = logging.getLogger(__name__)


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


class RunLog:
    """The run's log.jsonl (`mtapp.rundir`), one JSON record per line, written by rank 0 alone
    (`is_main`); the other ranks' calls do nothing. With `tensorboard`, every number of a record
    is also a TensorBoard scalar ("train/loss", "valid/valid_bleu", "epoch/..."; step: the update)
    in RUN/tensorboard/, beside the run's config as text, so `tensorboard --logdir runs` shows
    every run."""

    def __init__(self, run_dir: Path, is_main: bool = True, tensorboard: bool = False, config_text: str = ""):
        self.run_dir, self.is_main = Path(run_dir), is_main
        self.board = None
        if tensorboard and is_main:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package (a dependency)

            self.board = SummaryWriter(str(rundir.tensorboard_dir(self.run_dir)))
            if config_text:
                self.board.add_text("config", "```\n" + config_text + "\n```", 0)
                self.board.flush()

    def write(self, record: dict) -> None:
        if not self.is_main:
            return
        rundir.append_log(self.run_dir, record)
        if self.board is not None:
            kind, step = record.get("event", "log"), int(record.get("update", 0))
            for key, value in record.items():
                if key not in ("event", "update") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.board.add_scalar(f"{kind}/{key}", value, step)
            self.board.flush()

    def close(self) -> None:
        """TensorBoard's events written out; later records go to log.jsonl only."""
        if self.board is not None:
            self.board.close()
            self.board = None

    def epoch(self, record: dict, best_bleu: float) -> None:
        """An `epoch_record`, into the file and, as one line, into the log of this process."""
        self.write(record)
        if self.is_main:
            log.info(
                "epoch %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f (best %.2f), %.0f target tokens/s, "
                "padding efficiency %.3f",
                record["epoch"],
                record["loss"],
                record["valid_loss"],
                record["valid_bleu"],
                best_bleu,
                record["tgt_tokens_per_s"],
                record["padding_efficiency"],
            )


def train_record(epoch: int, update: int, stats: EpochStats) -> dict:
    """Every `train.log_every` updates: the statistics of those updates, and this process's memory."""
    return {"event": "train", "epoch": epoch, "update": update, **stats.summary(), **memory_mb()}


def valid_record(epoch: int, update: int, elapsed: float, metrics: dict[str, float], tgt_tokens: int) -> dict:
    """Every `train.valid_every_minutes`: the validation loss `elapsed` seconds into the run."""
    record = {"event": "valid", "epoch": epoch, "update": update, "elapsed": elapsed}
    return {**record, **metrics, "tgt_tokens_seen": tgt_tokens}


def epoch_record(
    epoch: int,
    update: int,
    stats: EpochStats,
    metrics: dict[str, float],
    valid_seconds: float,
    elapsed: float,
    device: torch.device,
) -> dict:
    """At each epoch's end: its statistics, the validation scores and how long they took, the
    run's seconds so far, this process's RSS now and at its peak (issue #21: where training
    memory goes), and on a GPU the epoch's peak allocation."""
    record = {"event": "epoch", "epoch": epoch, "update": update, **stats.summary(), **metrics}
    record["valid_seconds"] = valid_seconds
    record["elapsed"] = elapsed
    record |= memory_mb()
    if device.type == "cuda":
        record["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record
