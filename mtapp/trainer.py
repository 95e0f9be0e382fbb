"""The update loop: `Trainer.train_step` / `optimizer_step` / `fit` over a stream of batches.

One update = `train.accumulate` batches on each of the `world_size` processes (one, unless
started by torchrun). The loss of an update is the sum over its real target tokens — of every
batch on every process — divided once by their number; the learning rate warms up linearly, then
falls as `train.schedule` says: with the inverse square root of the update number (a pure function of
it), or in a line to 0 at the end of the budget (with `train.max_minutes`, a function of the clock, so
two runs of one seed step alike only as far as they run at one speed). Rank 0 alone evaluates and
writes logs and checkpoints.

`build_trainer` builds the parts (model, optimizer, gradient scaler,
batch stream, validation hook, checkpoints, log) and hands them in; `Trainer` runs the updates,
validates, stops, and says when a checkpoint is due. What a checkpoint holds is
`mtapp.checkpoint`'s, what a log record holds `mtapp.progress`'s.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import torch
import yaml
from tqdm import tqdm

from mtapp.averaging import average_newest, keep_newest
from mtapp.batching import Batch, EpochBatches, Strategy, build_strategy, collate
from mtapp.batching.inference import inference_batches
from mtapp.batching.sharded import shard
from mtapp.checkpoint import Checkpoints
from mtapp.config import Config, LossConfig, TrainConfig
from mtapp.data.encoded import EncodedCorpus
from mtapp.data.prepare import PreparedData
from mtapp.distributed import Distributed
from mtapp.loss import batch_loss
from mtapp.master import MasterAdam
from mtapp.models import Seq2Seq
from mtapp.progress import (
    EpochStats,
    Progress,
    RunLog,
    StopSignals,
    bar_settings,
    epoch_record,
    train_record,
    valid_record,
)
from mtapp.rundir import epoch_tag
from mtapp.runtime import amp_dtype, autocast, autocast_dtype, pure_bf16
from mtapp.scoring import score
from mtapp.translator import Translator

__all__ = [
    "BatchStream",
    "CorpusBatches",
    "SampledBatches",
    "Trainer",
    "TrainingError",
    "Validation",
    "build_trainer",
    "learning_rate",
]

log = logging.getLogger(__name__)


def learning_rate(update: int, cfg: TrainConfig, spent: float = 0.0) -> float:
    """Learning rate of update number `update` (0-based), `spent` of the budget gone (0 to 1,
    `budget_spent`; only train.schedule linear reads it)."""
    step = update + 1
    warmup = min(step / cfg.warmup_steps, 1.0) if cfg.warmup_steps else 1.0
    if cfg.schedule == "linear":
        return cfg.lr * warmup * max(0.0, 1.0 - spent)
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(warmup, math.sqrt(cfg.warmup_steps / step))


def budget_spent(updates: int, seconds: float, cfg: TrainConfig) -> float:
    """How much of the budget `updates` and `seconds` of training have used: of train.max_minutes
    or max_updates, whichever is nearer its end (0 when neither is set)."""
    spent = [seconds / (cfg.max_minutes * 60)] if cfg.max_minutes > 0 else []
    spent += [updates / cfg.max_updates] if cfg.max_updates > 0 else []
    return min(max(spent, default=0.0), 1.0)


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


def to_device(batch: Batch, device: torch.device, pin_memory: bool) -> Batch:
    """`batch` on `device`; with `pin_memory` page-locked first, so that the copy runs
    asynchronously with compute."""
    if device.type != "cuda":
        return batch
    if pin_memory:
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


# ---- what the loop is given ------------------------------------------------------------------
class BatchStream(Protocol):
    """Training batches epoch by epoch, resumable: `position` counts the batches of `epoch`
    already handed out, and `epoch_iter` hands out the rest, then advances the epoch."""

    epoch: int
    position: int

    def __len__(self) -> int: ...  # batches in the current epoch

    def epoch_iter(self) -> Iterator[Batch]: ...

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, int]) -> None: ...


class CorpusBatches:
    """The `BatchStream` of a corpus: a strategy's planned batches (`EpochBatches`), collated
    as they are handed out."""

    def __init__(self, strategy: Strategy, corpus: EncodedCorpus):
        self.strategy, self.corpus = strategy, corpus
        self.sampler = EpochBatches(strategy)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def position(self) -> int:
        return self.sampler.position

    def __len__(self) -> int:
        return len(self.sampler.batches())

    def epoch_iter(self) -> Iterator[Batch]:
        for indices in self.sampler.epoch_iter():
            yield self.strategy.collate(self.corpus, indices)

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class SampledBatches(CorpusBatches):
    """The `BatchStream` under subword regularization (`tokenizer.sampling_alpha`): at the start of
    each epoch the training pairs are segmented anew (`Tokenizer.sample`), seeded by `seed` and the
    epoch (`batching.seed`, which a resumed run may not change: it sees the same segmentations),
    and `make_strategy` plans that epoch over the new lengths. The seconds this takes count in the
    run's wall-clock budget, not in an epoch's training seconds. The pairs are those of
    `data.train` (already filtered); a sampled side longer than `max_len` keeps its one-best
    segmentation, with which the pair passed the filter."""

    def __init__(self, make_strategy, data: PreparedData, alpha: float, seed: int, max_len: int):
        if data.train_text is None:
            raise ValueError("subword sampling needs the training text: prepare() keeps it when sampling_alpha > 0")
        super().__init__(make_strategy(data.train.src_lengths, data.train.tgt_lengths), data.train)
        self.make_strategy, self.data = make_strategy, data
        self.alpha, self.seed, self.max_len = alpha, seed, max_len
        self._segmented = 0  # the epoch self.corpus holds the segmentations of (0: none yet)

    def segment(self) -> None:
        """Make `corpus` and `strategy` this epoch's, once per epoch."""
        if self._segmented == self.epoch:
            return
        started = time.monotonic()
        seeds = np.random.SeedSequence([self.seed, self.epoch]).generate_state(2) % 2**31  # one per side
        one_best, text = self.data.train, self.data.train_text.pairs
        sides = []
        for name, fallback, seed in (("src", one_best.src_ids, seeds[0]), ("tgt", one_best.tgt_ids, seeds[1])):
            lines = text.column(name).take(pa.array(one_best.lines)).to_pylist()
            ids = self.data.tokenizer.sample(lines, self.alpha, int(seed))
            sides.append([s if len(s) <= self.max_len else fallback(i) for i, s in enumerate(ids)])
        self.corpus = EncodedCorpus.from_ids(*sides)
        self.strategy = self.make_strategy(self.corpus.src_lengths, self.corpus.tgt_lengths)
        self.sampler.strategy = self.strategy
        self._segmented = self.epoch
        tokens = int(self.corpus.src_lengths.sum() + self.corpus.tgt_lengths.sum())
        one_best = int(one_best.src_lengths.sum() + one_best.tgt_lengths.sum())
        log.info(
            "data: epoch %d segmented anew (sampling_alpha %g) in %.1f s: %d subwords, %+.1f%% on the one-best",
            self.epoch,
            self.alpha,
            time.monotonic() - started,
            tokens,
            100 * (tokens / one_best - 1),
        )

    def __len__(self) -> int:
        self.segment()
        return super().__len__()

    def epoch_iter(self) -> Iterator[Batch]:
        self.segment()
        yield from super().epoch_iter()


class Validation:
    """The validation hook of a run: teacher-forced loss (`loss`) and, at epoch ends, BLEU with
    `train.valid_beam` too (`scores`), on the validation split."""

    def __init__(self, cfg: Config, data: PreparedData, device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device
        self.dtype = autocast_dtype(device, cfg.train.amp)

    def scores(self, model: Seq2Seq) -> dict[str, float]:
        metrics = self.loss(model)
        c = self.cfg
        translator = Translator.of_model(model, self.data.tokenizer, c.decode)
        hyps = translator.translate(self.data.valid_text.src, beam=c.train.valid_beam)
        return {**metrics, "valid_bleu": score(hyps, self.data.valid_text.tgt)["bleu"]}

    @torch.no_grad()
    def loss(self, model: Seq2Seq) -> dict[str, float]:
        """Loss and NLL per real target token."""
        model.eval()
        valid, loss_sum, nll_sum, tokens = self.data.valid, 0.0, 0.0, 0
        lengths = np.maximum(valid.src_lengths, valid.tgt_lengths)
        for indices in inference_batches(lengths, self.cfg.batching.max_tokens):
            src, tgt = [valid.src_ids(i) for i in indices], [valid.tgt_ids(i) for i in indices]
            batch = collate(src, tgt, indices, self.cfg.batching.pad_side)
            batch = to_device(batch, self.device, self.cfg.train.pin_memory)
            with autocast(self.device, self.dtype):
                loss, nll, n = batch_loss(model, batch, self.cfg.loss.label_smoothing)
            loss_sum, nll_sum, tokens = loss_sum + loss.item(), nll_sum + nll.item(), tokens + n
        return {"valid_loss": loss_sum / tokens, "valid_nll": nll_sum / tokens}


class Trainer:
    """Runs the updates of `model` over `batches` until a `train.*` limit, early stopping or a
    signal stops it; validates with `validation`, writes records to `run_log` and checkpoints
    through `checkpoints`. The model is on `device` already, the optimizer and scaler built on
    its parameters."""

    def __init__(
        self,
        cfg: Config,
        model: Seq2Seq,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        batches: BatchStream,
        validation: Validation,
        checkpoints: Checkpoints,
        run_log: RunLog,
        device: torch.device,
        group: Distributed | None = None,
    ):
        self.cfg, self.model, self.optimizer, self.scaler, self.batches = cfg, model, optimizer, scaler, batches
        self.validation, self.checkpoints, self.run_log, self.device = validation, checkpoints, run_log, device
        self.group = group or Distributed(device=device)
        self.loss = self.group.wrap(TrainingLoss(model, cfg.loss))
        self.dtype = autocast_dtype(device, cfg.train.amp)
        self.progress = Progress()
        self.signals = StopSignals()
        self.nonfinite_in_a_row = 0
        self.next_valid = cfg.train.valid_every_minutes * 60  # seconds into the run
        self.started = time.monotonic()  # when the run (resumed: its first part) started; fit sets it
        self.spent = 0.0  # of the budget, at the current update (`budget_spent`)

    # ---- one update -------------------------------------------------------------------------
    def to_device(self, batch: Batch) -> Batch:
        return to_device(batch, self.device, self.cfg.train.pin_memory)

    def train_step(self, batches: list[Batch], stats: EpochStats) -> None:
        """Forward and backward over the batches of one update, then `optimizer_step`.

        The update's loss is its summed loss divided once by the positions it covers: the real
        target tokens of all its batches, on every rank. DDP averages the ranks' gradients, so
        each rank divides by positions / world_size, and the update's gradient is that of one
        process summing the loss over every rank's batches and dividing by all their tokens."""
        self.model.train()
        mask = self.cfg.loss.mask_padding
        local = [sum(b.tgt_tokens if mask else b.tgt_out.numel() for b in batches), sum(b.tgt_tokens for b in batches)]
        local.append(time.monotonic() - self.started)  # averaged: every rank steps with the same learning rate
        positions, tgt_tokens, seconds = self.group.sum(local)  # one all-reduce per update, before any backward
        divisor = positions / self.group.world_size
        self.spent = budget_spent(self.progress.updates, seconds / self.group.world_size, self.cfg.train)
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
            group["lr"] = learning_rate(self.progress.updates, self.cfg.train, self.spent)
        if isinstance(self.optimizer, MasterAdam):
            self.optimizer.gather_grads()  # clipped in float32, on the master weights
        self.scaler.unscale_(self.optimizer)
        if self.cfg.train.clip_norm > 0:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.train.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.updates += 1

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> Progress:
        t, p = self.cfg.train, self.progress
        budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
        self.started = time.monotonic() - p.elapsed  # the one clock of the run: its budget and the schedule's
        try:
            with self.signals:
                while not p.stopped:
                    self._fit_epoch(budget)
        finally:
            self.run_log.close()  # TensorBoard's events written out
        self.save("last")
        if t.average_last and self.group.is_main and not p.stopped.startswith("interrupted"):
            average_newest(self.checkpoints.run_dir, t.average_last)
        return p

    def _stop_now(self, budget: float) -> bool:
        """Out of time or updates, or asked to stop, on any rank (so that every rank stops after the same update)."""
        return self.group.any(
            time.monotonic() - self.started >= budget or self._updates_done() or bool(self.signals.requested)
        )

    def _updates_done(self) -> bool:
        return 0 < self.cfg.train.max_updates <= self.progress.updates

    def _fit_epoch(self, budget: float) -> None:
        t, p = self.cfg.train, self.progress
        epoch = self.batches.epoch
        stats = self._train_epoch(budget)
        p.elapsed = time.monotonic() - self.started
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
        p.elapsed = time.monotonic() - self.started

    def _train_epoch(self, budget: float) -> EpochStats:
        """The rest of the current epoch, `train.accumulate` batches an update (fewer for its
        last), until it ends or `_stop_now`; the epoch's statistics."""
        stats, interval = EpochStats(), EpochStats()
        epoch, length = self.batches.epoch, len(self.batches)
        if self.device.type == "cuda":  # the epoch record's peak_gpu_mb is this epoch's (its validation included)
            torch.cuda.reset_peak_memory_stats(self.device)
        bar = tqdm(
            total=length,
            initial=self.batches.position,
            desc=f"epoch {epoch}",
            unit="batch",
            disable=not self.group.is_main,
            **bar_settings(),
        )
        pending: list[Batch] = []
        stream = self.batches.epoch_iter()
        while True:
            if not pending:
                tick = time.monotonic()  # an update starts (its seconds include making its batches)
            batch = next(stream, None)
            if batch is None:
                break
            pending.append(self.to_device(batch))
            if len(pending) == self.cfg.train.accumulate or self.batches.position == length:
                step = EpochStats()
                self.train_step(pending, step)
                pending = []
                step.seconds = time.monotonic() - tick
                stats.merge(step)
                interval = self._after_update(step, interval, epoch)
                bar.set_postfix(
                    loss=f"{step.loss / max(step.positions, 1):.3f}",
                    tok_s=f"{stats.tgt_tokens / max(stats.seconds, 1e-9):.0f}",
                    pad_eff=f"{(stats.src_tokens + stats.tgt_tokens) / max(stats.slots, 1):.3f}",
                    refresh=False,  # drawn by the update below at the bar's rate: a redraw per batch floods logs
                )
            bar.update(1)
            if not pending and self._stop_now(budget):
                break
        bar.close()
        return stats

    def _after_update(self, step: EpochStats, interval: EpochStats, epoch: int) -> EpochStats:
        """Add `step` to the log interval's sums; validate when due; every `train.log_every`
        updates, the interval's `train` record, and a fresh interval."""
        interval.merge(step)
        self._maybe_validate(epoch)
        if self.progress.updates % self.cfg.train.log_every:
            return interval
        record = train_record(epoch, self.progress.updates, interval.reduced(self.group))
        self.run_log.write(record | {"lr": self.optimizer.param_groups[0]["lr"]})
        return EpochStats()

    def _maybe_validate(self, epoch: int) -> None:
        """Every `train.valid_every_minutes` of training, a validation-loss record (for curves)."""
        every = self.cfg.train.valid_every_minutes * 60
        now = time.monotonic() - self.started
        if every <= 0 or now < self.next_valid or not self.group.is_main:  # the others go on meanwhile
            return
        self.next_valid = now + every
        metrics = self.validation.loss(self.model)
        self.run_log.write(valid_record(epoch, self.progress.updates, now, metrics, self.progress.tgt_tokens))

    def _end_epoch(self, epoch: int, stats: EpochStats) -> None:
        """Rank 0 evaluates; every rank takes its scores, so every rank decides alike what follows."""
        p = self.progress
        reduced = stats.reduced(self.group)
        tick = time.monotonic()
        metrics = self.group.broadcast(self.validation.scores(self.model) if self.group.is_main else None)
        record = epoch_record(epoch, p.updates, reduced, metrics, time.monotonic() - tick, p.elapsed, self.device)
        if metrics["valid_bleu"] > p.best_bleu:
            p.best_bleu, p.bad_epochs = metrics["valid_bleu"], 0
            self.save("best")
        else:
            p.bad_epochs += 1
            if self.cfg.train.patience and p.bad_epochs >= self.cfg.train.patience:
                p.stopped = f"no better validation BLEU for {p.bad_epochs} epochs"
        self.run_log.epoch(record, p.best_bleu)
        self.save("last")
        if self.cfg.train.average_last:  # this epoch's checkpoint, and the newest average_last of them
            self.save(epoch_tag(epoch))
            if self.group.is_main:
                keep_newest(self.checkpoints.run_dir, self.cfg.train.average_last)

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, which: str) -> Path | None:
        """RUN/checkpoint_<which>.pt of the training state now (every rank calls this)."""
        return self.checkpoints.save(which, self.model, self.optimizer, self.scaler, self.batches, self.progress)

    def resume(self, content: dict) -> None:
        """Go on from the training state of checkpoint `content`."""
        self.progress = self.checkpoints.restore(content, self.model, self.optimizer, self.scaler, self.batches)
        self.started = time.monotonic() - self.progress.elapsed  # the budget's clock goes on where it stopped


def build_trainer(
    cfg: Config,
    run_dir: Path,
    model: Seq2Seq,
    data: PreparedData,
    device: torch.device,
    group: Distributed | None = None,
) -> Trainer:
    """A `Trainer` of `model` on `data`, as `python -m mtapp.train` trains: the model on `device` (compiled
    when train.compile asks; in bf16 with train.amp: bf16-pure), Adam (over float32 master weights with
    bf16-pure), a gradient scaler (on for fp16 only), this rank's share of
    the configured batching strategy, validation on `data`, checkpoints and log in `run_dir`."""
    group = group or Distributed(device=device)
    t = cfg.train
    model.to(device)
    pure = pure_bf16(device, t.amp)
    if pure:
        model.to(torch.bfloat16)
    if t.compile:
        dynamic = True if t.compile_shapes == "dynamic" else None
        model.compile(
            backend=t.compile_backend, dynamic=dynamic
        )  # in place: parameter names, and so checkpoints, stay the same
    adam = {"lr": t.lr, "betas": t.betas, "weight_decay": t.weight_decay, "fused": True}
    optimizer = MasterAdam(model, **adam) if pure else torch.optim.Adam(model.parameters(), **adam)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device, t.amp) == torch.float16)

    def make_strategy(src_lengths: np.ndarray, tgt_lengths: np.ndarray) -> Strategy:
        return shard(build_strategy(cfg.batching, src_lengths, tgt_lengths), group.rank, group.world_size)

    if cfg.tokenizer.sampling_alpha:
        alpha, seed = cfg.tokenizer.sampling_alpha, cfg.batching.seed  # fixed on resume, like the plan it shapes
        batches = SampledBatches(make_strategy, data, alpha, seed, cfg.data.max_len)
    else:
        batches = CorpusBatches(make_strategy(data.train.src_lengths, data.train.tgt_lengths), data.train)
    checkpoints = Checkpoints(run_dir, cfg, data.tokenizer.model_bytes, group)
    config_text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    run_log = RunLog(run_dir, group.is_main, cfg.train.tensorboard, config_text)
    validation = Validation(cfg, data, device)
    return Trainer(cfg, model, optimizer, scaler, batches, validation, checkpoints, run_log, device, group)
