"""The training loop: `train_step`, `optimizer_step`, `evaluate`, `fit`, checkpoints.

One update = `train.accumulate` batches. The loss of an update is the sum over its real
target tokens divided once by their number; the learning rate is a pure function of the
update number (linear warmup, then inverse square root decay).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mtapp.batching import Batch, EpochBatches, build_strategy, collate
from mtapp.batching.inference import inference_batches
from mtapp.checkpoint import rng_state, save_checkpoint, set_rng_state, tokenizer_to_tensor
from mtapp.config import Config, TrainConfig
from mtapp.data.prepare import PreparedData
from mtapp.evaluation import score
from mtapp.loss import batch_loss
from mtapp.models import Seq2Seq
from mtapp.runtime import amp_dtype, autocast
from mtapp.translator import Translator

log = logging.getLogger(__name__)


def learning_rate(update: int, cfg: TrainConfig) -> float:
    """Learning rate of update number `update` (0-based)."""
    step = update + 1
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))


@dataclass
class Progress:
    updates: int = 0
    best_bleu: float = -1.0
    bad_epochs: int = 0  # epochs since the best validation BLEU
    elapsed: float = 0.0  # seconds spent in `fit`, over all sessions of this run
    tgt_tokens: int = 0  # real target tokens trained on
    skipped: int = 0  # updates skipped because the loss was not finite
    stopped: str = ""  # why training ended ("" while it has not)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss keeps being NaN or infinite)."""


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


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, model: Seq2Seq, data: PreparedData, device: torch.device):
        self.cfg, self.run_dir, self.model, self.data, self.device = cfg, Path(run_dir), model, data, device
        self.model.to(device)
        t = cfg.train
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay, fused=True
        )
        self.dtype = amp_dtype(device, t.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.strategy = build_strategy(cfg.batching, data.train.src_lengths, data.train.tgt_lengths)
        self.batches = EpochBatches(self.strategy)
        self.progress = Progress()
        self.log_path = self.run_dir / "log.jsonl"
        self.signals = StopSignals()
        self.nonfinite_in_a_row = 0
        self.next_valid = cfg.train.valid_every_minutes * 60  # seconds into the run

    # ---- one update -------------------------------------------------------------------------
    def to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    def train_step(self, batches: list[Batch], stats: EpochStats) -> None:
        """Forward and backward over the batches of one update, then `optimizer_step`.

        The update's loss is its summed loss divided once by the positions it covers (the real
        target tokens of all its batches)."""
        self.model.train()
        mask = self.cfg.loss.mask_padding
        total = sum(b.tgt_tokens if mask else b.tgt_out.numel() for b in batches)
        finite = True
        for batch in batches:
            with autocast(self.device, self.dtype):
                loss, nll, positions = batch_loss(self.model, batch, self.cfg.loss.label_smoothing, mask)
            finite = finite and bool(torch.isfinite(loss))
            self.scaler.scale(loss / total).backward()
            if finite:
                stats.add(batch, loss.item(), nll.item(), positions)
        if not finite:  # its statistics stay out of the epoch's, so the logged loss stays finite
            self.skip_update()
            return
        self.nonfinite_in_a_row = 0
        self.optimizer_step()
        self.progress.tgt_tokens += sum(b.tgt_tokens for b in batches)

    def skip_update(self) -> None:
        """Drop the gradients of an update whose loss was not finite; stop if it keeps happening."""
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.skipped += 1
        self.nonfinite_in_a_row += 1
        log.warning("non-finite loss: update skipped (%d skipped so far)", self.progress.skipped)
        if self.nonfinite_in_a_row >= self.cfg.train.max_nonfinite:
            raise TrainingError(
                f"the loss was NaN or infinite in {self.nonfinite_in_a_row} updates in a row "
                f"(train.max_nonfinite = {self.cfg.train.max_nonfinite}); training stopped without writing a "
                "checkpoint. Lower train.lr, raise train.warmup_steps, set train.amp: off, or check the data"
            )

    def optimizer_step(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.progress.updates, self.cfg.train)
        self.scaler.unscale_(self.optimizer)
        if self.cfg.train.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.updates += 1

    # ---- validation ---------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Validation loss (teacher forcing) and BLEU (`train.valid_beam`) on the validation split."""
        metrics = self.valid_loss()
        translator = Translator(self.model, self.data.tokenizer, self.cfg.decode, self.cfg.model.max_positions - 1)
        hyps = translator.translate(self.data.valid_text.src, beam=self.cfg.train.valid_beam)
        return {**metrics, "valid_bleu": score(hyps, self.data.valid_text.tgt)["bleu"]}

    @torch.no_grad()
    def valid_loss(self) -> dict[str, float]:
        """Teacher-forced loss and NLL per real target token on the validation split."""
        self.model.eval()
        valid, loss_sum, nll_sum, tokens = self.data.valid, 0.0, 0.0, 0
        lengths = np.maximum(valid.src_lengths, valid.tgt_lengths)
        for indices in inference_batches(lengths, self.cfg.batching.max_tokens):
            src, tgt = [valid.src_ids(i) for i in indices], [valid.tgt_ids(i) for i in indices]
            batch = self.to_device(collate(src, tgt, indices, self.cfg.batching.pad_side))
            with autocast(self.device, self.dtype):
                loss, nll, n = batch_loss(self.model, batch, self.cfg.loss.label_smoothing)
            loss_sum, nll_sum, tokens = loss_sum + loss.item(), nll_sum + nll.item(), tokens + n
        return {"valid_loss": loss_sum / tokens, "valid_nll": nll_sum / tokens}

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> Progress:
        t, p = self.cfg.train, self.progress
        budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
        started = time.monotonic() - p.elapsed
        with self.signals:
            while not p.stopped:
                self._fit_epoch(started, budget)
        self.save("last")
        return p

    def _fit_epoch(self, started: float, budget: float) -> None:
        t, p = self.cfg.train, self.progress
        epoch = self.batches.epoch
        stats = self._train_epoch(started, budget)
        p.elapsed = time.monotonic() - started
        if self.signals.requested:  # save where we are (mid-epoch) and leave; no validation
            p.stopped = f"interrupted by {self.signals.requested}"
            return
        if p.elapsed >= budget:
            p.stopped = f"time budget of {t.max_minutes:g} minutes reached"
        elif self.batches.epoch > t.max_epochs:
            p.stopped = f"max_epochs={t.max_epochs} reached"
        self._end_epoch(epoch, stats)
        p.elapsed = time.monotonic() - started

    def _train_epoch(self, started: float, budget: float) -> EpochStats:
        stats, interval = EpochStats(), EpochStats()
        epoch = self.batches.epoch
        plan_length = len(self.batches.batches())
        bar = tqdm(total=plan_length, initial=self.batches.position, desc=f"epoch {epoch}", unit="batch")
        pending: list[Batch] = []
        for indices in self.batches.epoch_iter():
            if not pending:
                tick = time.monotonic()  # an update starts
            batch = self.strategy.collate(self.data.train, indices, self.cfg.batching.pad_side)
            pending.append(self.to_device(batch))
            if len(pending) == self.cfg.train.accumulate or self.batches.position == plan_length:
                step = EpochStats()
                self.train_step(pending, step)
                pending = []
                step.seconds = time.monotonic() - tick
                stats.merge(step)
                interval.merge(step)
                self._maybe_validate(started, epoch)
                if self.progress.updates % self.cfg.train.log_every == 0:
                    self._log({"event": "train", "epoch": epoch, "update": self.progress.updates, **interval.summary()})
                    interval = EpochStats()
                bar.set_postfix(
                    loss=f"{step.loss / max(step.positions, 1):.3f}",
                    tok_s=f"{stats.tgt_tokens / max(stats.seconds, 1e-9):.0f}",
                    pad_eff=f"{(stats.src_tokens + stats.tgt_tokens) / max(stats.slots, 1):.3f}",
                )
            bar.update(1)
            if (time.monotonic() - started >= budget or self.signals.requested) and not pending:
                break
        bar.close()
        return stats

    def _maybe_validate(self, started: float, epoch: int) -> None:
        """Every `train.valid_every_minutes` of training, a validation-loss record (for curves)."""
        every = self.cfg.train.valid_every_minutes * 60
        now = time.monotonic() - started
        if every <= 0 or now < self.next_valid:
            return
        self.next_valid = now + every
        record = {"event": "valid", "epoch": epoch, "update": self.progress.updates, "elapsed": now}
        self._log({**record, **self.valid_loss(), "tgt_tokens_seen": self.progress.tgt_tokens})

    def _end_epoch(self, epoch: int, stats: EpochStats) -> None:
        p = self.progress
        tick = time.monotonic()
        metrics = self.evaluate()
        record = {"event": "epoch", "epoch": epoch, "update": p.updates, **stats.summary(), **metrics}
        record["valid_seconds"] = time.monotonic() - tick
        record["elapsed"] = p.elapsed
        if self.device.type == "cuda":
            record["peak_gpu_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        if metrics["valid_bleu"] > p.best_bleu:
            p.best_bleu, p.bad_epochs = metrics["valid_bleu"], 0
            self.save("best")
        else:
            p.bad_epochs += 1
            if self.cfg.train.patience and p.bad_epochs >= self.cfg.train.patience:
                p.stopped = f"no better validation BLEU for {p.bad_epochs} epochs"
        self._log(record)
        log.info(
            "epoch %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f (best %.2f), %.0f target tokens/s, "
            "padding efficiency %.3f",
            epoch,
            record["loss"],
            metrics["valid_loss"],
            metrics["valid_bleu"],
            p.best_bleu,
            record["tgt_tokens_per_s"],
            record["padding_efficiency"],
        )
        self.save("last")

    def _log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, which: str) -> Path:
        path = self.run_dir / f"checkpoint_{which}.pt"
        save_checkpoint(
            path,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "sampler": self.batches.state_dict(),
                "progress": asdict(self.progress),
                "rng": rng_state(),
                "config": self.cfg.to_dict(),
                "tokenizer": tokenizer_to_tensor(self.data.tokenizer.model_bytes),
                "tokenizer_path": str(self.run_dir / "spm.model"),
            },
        )
        return path

    def load_state_dict(self, content: dict) -> None:
        self.model.load_state_dict(content["model"])
        self.optimizer.load_state_dict(content["optimizer"])
        self.scaler.load_state_dict(content["scaler"])
        self.batches.load_state_dict(content["sampler"])
        self.progress = Progress(**content["progress"])
        self.progress.stopped = ""
        set_rng_state(content["rng"])
