"""The training loop: `train_step`, `optimizer_step`, `evaluate`, `fit`, checkpoints.

One update = `train.accumulate` batches on each of the `world_size` processes (one, unless
started by torchrun). The loss of an update is the sum over its real target tokens — of every
batch on every process — divided once by their number; the learning rate is a pure function
of the update number (linear warmup, then inverse square root decay). Rank 0 alone evaluates
and writes logs and checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mtapp.averaging import average_last, epoch_checkpoints, epoch_tag, keep_newest
from mtapp.batching import Batch, EpochBatches, build_strategy, collate
from mtapp.batching.inference import inference_batches
from mtapp.batching.sharded import shard
from mtapp.checkpoint import rng_state, save_checkpoint, set_rng_state, tokenizer_to_tensor
from mtapp.config import Config, LossConfig, TrainConfig
from mtapp.data.prepare import PreparedData
from mtapp.distributed import Distributed
from mtapp.loss import batch_loss
from mtapp.models import Seq2Seq
from mtapp.progress import EpochStats, Progress, StopSignals, bar_settings
from mtapp.runtime import amp_dtype, autocast, memory_mb
from mtapp.scoring import score
from mtapp.translator import Translator

__all__ = ["EpochStats", "Progress", "StopSignals", "Trainer", "TrainingError", "learning_rate"]

log = logging.getLogger(__name__)


def learning_rate(update: int, cfg: TrainConfig) -> float:
    """Learning rate of update number `update` (0-based)."""
    step = update + 1
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss keeps being NaN or infinite)."""


class TrainingLoss(torch.nn.Module):
    """The model and its loss as one module, so that DDP sees the whole forward pass (the
    vocabulary projection, outside `model.forward`, included). Returns `batch_loss`'s sums."""

    def __init__(self, model: Seq2Seq, cfg: LossConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        return batch_loss(self.model, batch, self.cfg.label_smoothing, self.cfg.mask_padding)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        model: Seq2Seq,
        data: PreparedData,
        device: torch.device,
        group: Distributed | None = None,
    ):
        self.cfg, self.run_dir, self.model, self.data, self.device = cfg, Path(run_dir), model, data, device
        self.group = group or Distributed(device=device)
        self.model.to(device)
        t = cfg.train
        if t.compile:
            self.model.compile(
                backend=t.compile_backend
            )  # in place: parameter names, and so checkpoints, stay the same
        self.loss = self.group.wrap(TrainingLoss(model, cfg.loss))
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay, fused=True
        )
        self.dtype = amp_dtype(device, t.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        strategy = build_strategy(cfg.batching, data.train.src_lengths, data.train.tgt_lengths)
        self.strategy = shard(strategy, self.group.rank, self.group.world_size)
        self.batches = EpochBatches(self.strategy)
        self.progress = Progress()
        self.log_path = self.run_dir / "log.jsonl"
        self.signals = StopSignals()
        self.nonfinite_in_a_row = 0
        self.next_valid = cfg.train.valid_every_minutes * 60  # seconds into the run

    # ---- one update -------------------------------------------------------------------------
    def to_device(self, batch: Batch) -> Batch:
        if self.device.type != "cuda":
            return batch
        if self.cfg.train.pin_memory:  # page-locked: the copy runs asynchronously with compute
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def train_step(self, batches: list[Batch], stats: EpochStats) -> None:
        """Forward and backward over the batches of one update, then `optimizer_step`.

        The update's loss is its summed loss divided once by the positions it covers: the real
        target tokens of all its batches, on every rank. DDP averages the ranks' gradients, so
        each rank divides by positions / world_size, and the update's gradient is that of one
        process summing the loss over every rank's batches and dividing by all their tokens."""
        self.model.train()
        mask = self.cfg.loss.mask_padding
        local = [sum(b.tgt_tokens if mask else b.tgt_out.numel() for b in batches), sum(b.tgt_tokens for b in batches)]
        positions, tgt_tokens = self.group.sum(local)  # one all-reduce per update, before any backward
        divisor = positions / self.group.world_size
        finite = True
        for i, batch in enumerate(batches):
            with self.group.sync_gradients(self.loss, sync=i == len(batches) - 1):
                with autocast(self.device, self.dtype):
                    loss, nll, n = self.loss(batch)
                finite = finite and bool(torch.isfinite(loss))
                self.scaler.scale(loss / divisor).backward()
            if finite:
                stats.add(batch, loss.item(), nll.item(), n)
        if self.group.any(not finite):  # its statistics stay out of the epoch's, so the logged loss stays finite
            self.skip_update()
            return
        self.nonfinite_in_a_row = 0
        self.optimizer_step()
        self.progress.tgt_tokens += int(tgt_tokens)

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
        translator = Translator(
            self.model,
            self.data.tokenizer,
            self.cfg.decode,
            self.cfg.model.max_positions - 1,
            pad_side=self.cfg.batching.pad_side,
        )
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
        if t.average_last and self.group.is_main and not p.stopped.startswith("interrupted"):
            self._write_average()
        return p

    def _stop_now(self, started: float, budget: float) -> bool:
        """Out of time or updates, or asked to stop, on any rank (so that every rank stops after the same update)."""
        return self.group.any(
            time.monotonic() - started >= budget or self._updates_done() or bool(self.signals.requested)
        )

    def _updates_done(self) -> bool:
        return 0 < self.cfg.train.max_updates <= self.progress.updates

    def _fit_epoch(self, started: float, budget: float) -> None:
        t, p = self.cfg.train, self.progress
        epoch = self.batches.epoch
        stats = self._train_epoch(started, budget)
        p.elapsed = time.monotonic() - started
        if self.group.any(bool(self.signals.requested)):  # save where we are (mid-epoch) and leave
            p.stopped = f"interrupted by {self.signals.requested or 'a signal to another rank'}"
            return
        if self.group.any(p.elapsed >= budget):
            p.stopped = f"time budget of {t.max_minutes:g} minutes reached"
        elif self._updates_done():
            p.stopped = f"max_updates={t.max_updates} reached"
        elif self.batches.epoch > t.max_epochs:
            p.stopped = f"max_epochs={t.max_epochs} reached"
        self._end_epoch(epoch, stats)
        p.elapsed = time.monotonic() - started

    def _train_epoch(self, started: float, budget: float) -> EpochStats:
        stats, interval = EpochStats(), EpochStats()
        epoch = self.batches.epoch
        if self.device.type == "cuda":  # the epoch record's peak_gpu_mb is this epoch's (its validation included)
            torch.cuda.reset_peak_memory_stats(self.device)
        plan_length = len(self.batches.batches())
        bar = tqdm(
            total=plan_length,
            initial=self.batches.position,
            desc=f"epoch {epoch}",
            unit="batch",
            disable=not self.group.is_main,
            **bar_settings(),
        )
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
                    summary = interval.reduced(self.group).summary()
                    self._log(
                        {"event": "train", "epoch": epoch, "update": self.progress.updates, **summary, **memory_mb()}
                    )
                    interval = EpochStats()
                bar.set_postfix(
                    loss=f"{step.loss / max(step.positions, 1):.3f}",
                    tok_s=f"{stats.tgt_tokens / max(stats.seconds, 1e-9):.0f}",
                    pad_eff=f"{(stats.src_tokens + stats.tgt_tokens) / max(stats.slots, 1):.3f}",
                    refresh=False,  # drawn by the update below at the bar's rate: a redraw per batch floods logs
                )
            bar.update(1)
            if not pending and self._stop_now(started, budget):
                break
        bar.close()
        return stats

    def _maybe_validate(self, started: float, epoch: int) -> None:
        """Every `train.valid_every_minutes` of training, a validation-loss record (for curves)."""
        every = self.cfg.train.valid_every_minutes * 60
        now = time.monotonic() - started
        if every <= 0 or now < self.next_valid or not self.group.is_main:  # the others go on meanwhile
            return
        self.next_valid = now + every
        record = {"event": "valid", "epoch": epoch, "update": self.progress.updates, "elapsed": now}
        self._log({**record, **self.valid_loss(), "tgt_tokens_seen": self.progress.tgt_tokens})

    def _end_epoch(self, epoch: int, stats: EpochStats) -> None:
        """Rank 0 evaluates; every rank takes its scores, so every rank decides alike what follows."""
        p = self.progress
        summary = stats.reduced(self.group).summary()
        tick = time.monotonic()
        metrics = self.group.broadcast(self.evaluate() if self.group.is_main else None)
        record = {"event": "epoch", "epoch": epoch, "update": p.updates, **summary, **metrics}
        record["valid_seconds"] = time.monotonic() - tick
        record["elapsed"] = p.elapsed
        record |= memory_mb()  # this process's RSS now and at its peak (issue #21: where training memory goes)
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
        if self.group.is_main:
            self._log_epoch(epoch, record)
        self.save("last")
        if self.cfg.train.average_last:  # this epoch's checkpoint, and the newest average_last of them
            self.save(epoch_tag(epoch))
            if self.group.is_main:
                keep_newest(self.run_dir, self.cfg.train.average_last)

    def _log_epoch(self, epoch: int, record: dict) -> None:
        log.info(
            "epoch %d: train loss %.3f, valid loss %.3f, valid BLEU %.2f (best %.2f), %.0f target tokens/s, "
            "padding efficiency %.3f",
            epoch,
            record["loss"],
            record["valid_loss"],
            record["valid_bleu"],
            self.progress.best_bleu,
            record["tgt_tokens_per_s"],
            record["padding_efficiency"],
        )

    def _log(self, record: dict) -> None:
        if not self.group.is_main:
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---- checkpoints --------------------------------------------------------------------------
    def _write_average(self) -> None:
        """checkpoint_avg.pt: the mean of the newest `train.average_last` epoch checkpoints (of
        fewer, when training ended sooner)."""
        wanted = self.cfg.train.average_last
        n = min(wanted, len(epoch_checkpoints(self.run_dir)))
        if n < wanted:
            log.warning("train.average_last=%d but training kept %d epoch checkpoint(s): averaging those", wanted, n)
        path, _ = average_last(self.run_dir, n)
        log.info("%s: the mean of the last %d epoch checkpoint(s)", path, n)

    def save(self, which: str) -> Path | None:
        """Every rank calls this (their RNG states are gathered); rank 0 writes the file."""
        rngs = self.group.gather(rng_state())
        if not self.group.is_main:
            return None
        path = self.run_dir / f"checkpoint_{which}.pt"
        content = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.batches.state_dict(),
            "progress": asdict(self.progress),
            "rng": rngs[0],
            "config": self.cfg.to_dict(),
            "tokenizer": tokenizer_to_tensor(self.data.tokenizer.model_bytes),
            "tokenizer_path": str(self.run_dir / "spm.model"),
        }
        if self.group.active:
            content.update(world_size=self.group.world_size, rng_ranks=rngs)
        save_checkpoint(path, content)
        return path

    def load_state_dict(self, content: dict) -> None:
        self.model.load_state_dict(content["model"])
        self.optimizer.load_state_dict(content["optimizer"])
        if content["scaler"]:  # empty when saved by a disabled scaler (bf16 or float32 training)
            self.scaler.load_state_dict(content["scaler"])
        self.batches.load_state_dict(resharded(content["sampler"], content.get("world_size", 1), self.group))
        self.progress = Progress(**content["progress"])
        self.progress.stopped = ""
        rngs = content.get("rng_ranks", [content["rng"]])
        if len(rngs) == self.group.world_size:
            set_rng_state(rngs[self.group.rank])  # each rank goes on with its own stream
        else:  # another number of ranks: rank 0's stream, made distinct per rank
            set_rng_state(content["rng"])
            torch.manual_seed(self.cfg.train.seed + 1000 * self.progress.updates + self.group.rank)


def resharded(state: dict[str, int], saved_world: int, group: Distributed) -> dict[str, int]:
    """A sampler position saved with `saved_world` ranks, for this group. Each rank had taken
    `position` batches of the epoch, `position * saved_world` together; with another number of
    ranks training resumes after the largest whole step within those (a few batches repeat)."""
    if saved_world == group.world_size:
        return state
    if group.is_main:
        log.warning(
            "resuming %d-rank training on %d ranks: the epoch resumes at its nearest step",
            saved_world,
            group.world_size,
        )
    return {**state, "position": state["position"] * saved_world // group.world_size}
