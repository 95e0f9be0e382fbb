"""`Trainer` driven with synthetic batches, a tiny model and a scripted validation hook: no
corpus, no tokenizer training. Every run here is float32 (train.amp off), so the numbers it
compares are the same on CPUs with and without bf16."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from mtapp import rundir, trainer
from mtapp.batching import Batch, collate
from mtapp.checkpoint import Checkpoints, load_checkpoint
from mtapp.config import Config, TrainConfig, config_from_dict
from mtapp.data.prepare import prepare
from mtapp.loss import batch_loss
from mtapp.models import build_model
from mtapp.progress import EpochStats, RunLog
from mtapp.trainer import Trainer, TrainingError, learning_rate
from tests.synthetic import TINY, random_ids, synthetic_pairs, tiny_config, write_text_corpus

VOCAB = 40


def test_learning_rate_warms_up_linearly_then_decays_with_the_inverse_square_root():
    cfg = TrainConfig(lr=1e-3, warmup_steps=100)
    assert learning_rate(0, cfg) == pytest.approx(1e-5)
    assert learning_rate(49, cfg) == pytest.approx(5e-4)
    assert learning_rate(99, cfg) == pytest.approx(1e-3)
    assert learning_rate(399, cfg) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    assert learning_rate(5, TrainConfig(lr=2e-3, warmup_steps=0)) == 2e-3


def test_the_linear_schedule_warms_up_then_falls_to_zero_at_the_end_of_the_budget():
    cfg = TrainConfig(lr=1e-3, warmup_steps=100, schedule="linear")
    assert learning_rate(49, cfg, spent=0.01) == pytest.approx(5e-4 * 0.99)
    assert learning_rate(399, cfg, spent=0.25) == pytest.approx(7.5e-4)  # not the inverse square root's 5e-4
    assert learning_rate(399, cfg, spent=1.0) == 0.0
    assert learning_rate(399, replace(cfg, schedule="inverse_sqrt"), spent=0.9) == pytest.approx(5e-4)
    both = TrainConfig(max_minutes=10.0, max_updates=1000)  # whichever budget is nearer its end
    assert trainer.budget_spent(100, 300.0, both) == pytest.approx(0.5)
    assert trainer.budget_spent(800, 300.0, both) == pytest.approx(0.8)
    assert trainer.budget_spent(2000, 0.0, both) == 1.0
    assert trainer.budget_spent(500, 1e6, TrainConfig(max_minutes=0.0, max_updates=0)) == 0.0


def test_a_run_with_the_linear_schedule_steps_at_rates_falling_to_zero_over_its_updates(tmp_path):
    t = make_trainer(tmp_path, synthetic_batches(3), schedule="linear", max_updates=4, max_minutes=0.0)
    t.fit()
    rates = [r["lr"] for r in rundir.read_log(tmp_path) if r["event"] == "train"]
    assert rates == pytest.approx([3e-3, 3e-3 * 0.75, 3e-3 * 0.5, 3e-3 * 0.25])


def test_with_a_time_budget_the_linear_schedule_goes_on_from_the_minutes_a_resumed_run_has_trained(tmp_path):
    t = make_trainer(tmp_path, synthetic_batches(3), schedule="linear", max_minutes=1.0, max_updates=1)
    t.progress.elapsed = 30.0  # as `resume` leaves a run that trained half its minute before it stopped
    t.fit()
    (record,) = [r for r in rundir.read_log(tmp_path) if r["event"] == "train"]
    assert record["lr"] == pytest.approx(3e-3 * 0.5, rel=0.02)  # half the budget gone: half the peak rate


# ---- the parts a test hands in -------------------------------------------------------------------
class FixedBatches:
    """The same batches every epoch: a `BatchStream` without a corpus."""

    def __init__(self, batches: list[Batch]):
        self.items, self.epoch, self.position = batches, 1, 0

    def __len__(self) -> int:
        return len(self.items)

    def epoch_iter(self):
        while self.position < len(self.items):
            self.position += 1
            yield self.items[self.position - 1]
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


class ScriptedValidation:
    """Validation BLEU read off a script: epoch end n scores `bleus[n]` (the last one after that)."""

    def __init__(self, bleus=(1.0,)):
        self.bleus, self.epochs = list(bleus), 0

    def loss(self, model) -> dict[str, float]:
        return {"valid_loss": 2.0, "valid_nll": 1.5}

    def scores(self, model) -> dict[str, float]:
        bleu = self.bleus[min(self.epochs, len(self.bleus) - 1)]
        self.epochs += 1
        return {**self.loss(model), "valid_bleu": bleu}


def synthetic_batches(n: int, seed: int = 0, sentences: int = 4) -> list[Batch]:
    """`n` batches of random ids; batch i holds sentences i * sentences ... (their `indices`)."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n):
        src_lengths, tgt_lengths = rng.integers(2, 9, sentences), rng.integers(2, 9, sentences)
        src = random_ids(seed + 2 * i, src_lengths, VOCAB)
        tgt = random_ids(seed + 2 * i + 1, tgt_lengths, VOCAB)
        batches.append(collate(src, tgt, range(i * sentences, (i + 1) * sentences)))
    return batches


def make_trainer(run_dir, batches: list[Batch], bleus=(1.0,), dropout: float = 0.1, **train) -> Trainer:
    """A Trainer of a tiny Transformer (seed 0) over `batches`, float32 on the CPU, constant
    learning rate 3e-3 unless `train` says otherwise."""
    settings = {"lr": 3e-3, "warmup_steps": 0, "amp": "off", "device": "cpu", "log_every": 1, **train}
    cfg = Config(model=replace(TINY, dropout=dropout), train=TrainConfig(**settings))
    torch.manual_seed(0)
    model = build_model(cfg.model, VOCAB)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    run_dir.mkdir(exist_ok=True)
    checkpoints = Checkpoints(run_dir, cfg, b"not a real tokenizer")
    return Trainer(
        cfg,
        model,
        optimizer,
        scaler,
        FixedBatches(batches),
        ScriptedValidation(bleus),
        checkpoints,
        RunLog(run_dir),
        torch.device("cpu"),
    )


def poison(monkeypatch, bad: set[int]):
    """From now on the loss of every batch that holds a sentence of `bad` is NaN."""

    def loss(model, batch, *args, **kwargs):
        total, nll, n = batch_loss(model, batch, *args, **kwargs)
        return (total * float("nan") if bad & set(batch.indices.tolist()) else total), nll, n

    monkeypatch.setattr(trainer, "batch_loss", loss)


# ---- one update ----------------------------------------------------------------------------------
def test_the_loss_falls_over_repeated_updates_on_one_batch(tmp_path):
    batch = synthetic_batches(1)[0]
    t = make_trainer(tmp_path, [batch], dropout=0.0)
    losses = []
    for _ in range(40):
        stats = EpochStats()
        t.train_step([batch], stats)
        losses.append(stats.loss / stats.positions)
    assert t.progress.updates == 40 and t.progress.tgt_tokens == 40 * batch.tgt_tokens
    assert losses[-1] < 0.5 * losses[0]  # it learns
    assert all(b < a for a, b in zip(losses[::10], losses[10::10]))  # and keeps learning


def test_accumulated_batches_give_the_gradient_of_one_update_over_all_their_tokens(tmp_path):
    two = synthetic_batches(2)
    assert two[0].tgt_tokens != two[1].tgt_tokens  # else averaging per-batch means would pass too
    t = make_trainer(tmp_path, two, dropout=0.0)
    t.optimizer_step = lambda: None  # keep the gradients for inspection
    t.train_step(two, EpochStats())
    accumulated = [p.grad.clone() for p in t.model.parameters()]
    t.model.zero_grad()
    total = sum(b.tgt_tokens for b in two)
    loss = sum(batch_loss(t.model, b, t.cfg.loss.label_smoothing)[0] for b in two) / total
    loss.backward()
    for got, want in zip(accumulated, (p.grad for p in t.model.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_accumulate_2_makes_one_optimizer_step_per_two_batches(tmp_path):
    t = make_trainer(tmp_path, synthetic_batches(5), accumulate=2, max_epochs=1)
    steps = []
    real_step = t.optimizer.step
    t.optimizer.step = lambda *a, **k: steps.append(t.batches.position) or real_step(*a, **k)
    progress = t.fit()
    assert steps == [2, 4, 5]  # after batches 2 and 4, and the epoch's odd last batch alone
    assert progress.updates == 3 and progress.stopped == "max_epochs=1 reached"
    assert {int(state["step"]) for state in t.optimizer.state.values()} == {3}


def test_a_non_finite_loss_skips_the_update_and_many_in_a_row_stop_training(tmp_path, monkeypatch):
    batches = synthetic_batches(3)
    t = make_trainer(tmp_path, batches, max_nonfinite=3)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    poison(monkeypatch, set(range(100)))
    stats = EpochStats()
    for batch in batches[:2]:
        t.train_step([batch], stats)
    assert t.progress.skipped == 2 and t.progress.updates == 0
    assert stats.positions == 0 and stats.loss == 0.0  # skipped updates leave no NaN in the statistics
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # no update reached the parameters
    with pytest.raises(TrainingError, match=r"NaN or infinite in 3 updates in a row .*max_nonfinite = 3"):
        t.train_step(batches[2:], EpochStats())
    poison(monkeypatch, set())
    t.nonfinite_in_a_row = 0
    t.train_step(batches[:1], EpochStats())
    assert t.progress.updates == 1 and t.nonfinite_in_a_row == 0


def test_a_non_finite_update_in_an_epoch_is_skipped_counted_and_kept_out_of_its_record(tmp_path, monkeypatch):
    batches = synthetic_batches(4)
    t = make_trainer(tmp_path, batches, max_epochs=1)
    poison(monkeypatch, set(batches[1].indices.tolist()))
    progress = t.fit()
    assert progress.updates == 3 and progress.skipped == 1
    epoch = [r for r in rundir.read_log(tmp_path) if r["event"] == "epoch"][0]
    assert math.isfinite(epoch["loss"])
    assert epoch["tgt_tokens"] == sum(b.tgt_tokens for i, b in enumerate(batches) if i != 1)
    assert load_checkpoint(rundir.checkpoint_file(tmp_path, "last"))["progress"]["skipped"] == 1


# ---- the loop ------------------------------------------------------------------------------------
def test_max_updates_stops_training_after_exactly_that_many_updates_mid_epoch(tmp_path):
    t = make_trainer(tmp_path, synthetic_batches(10), max_updates=3, max_epochs=50)
    progress = t.fit()
    assert progress.updates == 3 and progress.stopped == "max_updates=3 reached"
    last = load_checkpoint(rundir.checkpoint_file(tmp_path, "last"))
    assert last["sampler"] == {"epoch": 1, "position": 3} and last["progress"]["updates"] == 3
    records = rundir.read_log(tmp_path)
    assert [(r["event"], r["update"]) for r in records] == [("train", 1), ("train", 2), ("train", 3), ("epoch", 3)]


def test_the_log_holds_a_train_record_every_log_every_updates_and_an_epoch_record_per_epoch(tmp_path):
    batches = synthetic_batches(6)
    t = make_trainer(tmp_path, batches, log_every=2, max_epochs=2, bleus=[3.0, 5.0])
    t.fit()
    records = rundir.read_log(tmp_path)
    train = [r for r in records if r["event"] == "train"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [(r["epoch"], r["update"]) for r in train] == [(1, 2), (1, 4), (1, 6), (2, 8), (2, 10), (2, 12)]
    assert [r["tgt_tokens"] for r in train[:3]] == [
        batches[i].tgt_tokens + batches[i + 1].tgt_tokens for i in (0, 2, 4)
    ]
    assert [(r["epoch"], r["update"], r["valid_bleu"]) for r in epochs] == [(1, 6, 3.0), (2, 12, 5.0)]
    epoch = epochs[0]
    assert epoch["tgt_tokens"] == sum(b.tgt_tokens for b in batches)
    assert epoch["sentences"] == 6 * 4 and epoch["valid_loss"] == 2.0
    slots = sum(b.slots for b in batches)
    assert epoch["padding_efficiency"] == pytest.approx(sum(b.src_tokens + b.tgt_tokens for b in batches) / slots)
    assert 0 < epoch["rss_mb"] <= epoch["peak_rss_mb"] and epoch["valid_seconds"] >= 0
    assert records.index(epochs[0]) == 3 and records[-1] is epochs[1]  # each after its epoch's train records


def test_no_better_bleu_for_patience_epochs_stops_training_and_the_best_checkpoint_is_the_best_epochs(tmp_path):
    t = make_trainer(tmp_path, synthetic_batches(2), log_every=100, max_epochs=20, patience=2, bleus=[1.0, 4.0, 3.0])
    progress = t.fit()
    assert progress.stopped == "no better validation BLEU for 2 epochs"
    assert t.validation.epochs == 4 and progress.best_bleu == 4.0 and progress.updates == 8
    best = load_checkpoint(rundir.checkpoint_file(tmp_path, "best"))
    assert best["progress"]["updates"] == 4 and best["progress"]["best_bleu"] == 4.0
    assert best["sampler"] == {"epoch": 3, "position": 0}
    assert load_checkpoint(rundir.checkpoint_file(tmp_path, "last"))["progress"]["bad_epochs"] == 2


def test_resuming_from_the_last_checkpoint_ends_where_an_uninterrupted_run_ends(tmp_path):
    """Dropout on: the RNG state saved with the checkpoint matters too."""
    batches = synthetic_batches(3)
    whole = make_trainer(tmp_path / "whole", batches, max_epochs=2)
    whole.fit()
    first = make_trainer(tmp_path / "cut", batches, max_epochs=1)
    first.fit()
    resumed = make_trainer(tmp_path / "cut", batches, max_epochs=2)
    resumed.resume(load_checkpoint(rundir.checkpoint_file(tmp_path / "cut", "last")))
    assert resumed.batches.state_dict() == {"epoch": 2, "position": 0} and resumed.progress.updates == 3
    progress = resumed.fit()
    assert progress.updates == 6 and progress.stopped == "max_epochs=2 reached"
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert [r["update"] for r in rundir.read_log(tmp_path / "cut")] == [
        r["update"] for r in rundir.read_log(tmp_path / "whole")
    ]


@pytest.mark.parametrize(("shapes", "dynamic"), [("auto", None), ("dynamic", True)])
def test_train_compile_shapes_reaches_torch_compile(tmp_path, monkeypatch, shapes, dynamic):
    write_text_corpus(tmp_path / "corpus", "train", synthetic_pairs(50, seed=1))
    write_text_corpus(tmp_path / "corpus", "val", synthetic_pairs(5, seed=2))
    train = {"compile": True, "compile_backend": "eager", "compile_shapes": shapes, "tensorboard": False}
    cfg = config_from_dict(tiny_config(tmp_path, train=train))
    data = prepare(cfg)
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    calls = []
    monkeypatch.setattr(type(model), "compile", lambda self, **kwargs: calls.append(kwargs), raising=False)
    trainer.build_trainer(cfg, tmp_path / "run", model, data, torch.device("cpu"))
    assert calls == [{"backend": "eager", "dynamic": dynamic}]
