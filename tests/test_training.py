import json
import math

import pytest
import torch

from mtapp import training
from mtapp.config import TrainConfig, config_from_dict
from mtapp.data.prepare import prepare
from mtapp.data.synthetic import write_synthetic_corpus
from mtapp.models import build_model
from mtapp.training import Trainer, TrainingError, learning_rate
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


def test_learning_rate_warms_up_linearly_then_decays_with_the_inverse_square_root():
    cfg = TrainConfig(lr=1e-3, warmup_steps=100)
    assert learning_rate(0, cfg) == pytest.approx(1e-5)
    assert learning_rate(49, cfg) == pytest.approx(5e-4)
    assert learning_rate(99, cfg) == pytest.approx(1e-3)
    assert learning_rate(399, cfg) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    assert learning_rate(5, TrainConfig(lr=2e-3, warmup_steps=0)) == 2e-3


@pytest.fixture
def trainer(tmp_path):
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", 200, 1), ("val", 10, 2), ("test", 10, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    cfg = config_from_dict(tiny_config(tmp_path, train={"max_nonfinite": 3}, batching={"max_tokens": 128}))
    torch.manual_seed(0)
    data = prepare(cfg)
    model = build_model(cfg.model, data.tokenizer.vocab_size)
    (tmp_path / "run").mkdir()
    return Trainer(cfg, tmp_path / "run", model, data, torch.device("cpu"))


def batches(trainer, n):
    plan = trainer.strategy.plan(1)
    return [trainer.strategy.collate(trainer.data.train, plan[i], "post") for i in range(n)]


def test_a_non_finite_loss_skips_the_update_and_many_in_a_row_stop_training(trainer, monkeypatch):
    real_loss = training.batch_loss
    poisoned = {"calls": 0}

    def nan_loss(*args, **kwargs):
        loss, nll, n = real_loss(*args, **kwargs)
        poisoned["calls"] += 1
        return loss * float("nan"), nll, n

    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    monkeypatch.setattr(training, "batch_loss", nan_loss)
    stats = training.EpochStats()
    for batch in batches(trainer, 2):
        trainer.train_step([batch], stats)
    assert trainer.progress.skipped == 2 and trainer.progress.updates == 0
    assert stats.positions == 0 and stats.loss == 0.0  # skipped updates leave no NaN in the statistics
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # no update reached the parameters
    with pytest.raises(TrainingError, match=r"NaN or infinite in 3 updates in a row .*max_nonfinite = 3"):
        trainer.train_step(batches(trainer, 1), training.EpochStats())
    monkeypatch.setattr(training, "batch_loss", real_loss)
    trainer.nonfinite_in_a_row = 0
    trainer.train_step(batches(trainer, 1), training.EpochStats())
    assert trainer.progress.updates == 1 and trainer.nonfinite_in_a_row == 0


def test_accumulated_batches_give_the_gradient_of_one_update_over_all_their_tokens(trainer):
    two = batches(trainer, 2)
    trainer.model.eval()  # no dropout: the same function both times
    trainer.model.train = lambda mode=True: trainer.model  # keep eval mode inside train_step
    trainer.optimizer_step = lambda: None  # keep the gradients for inspection
    trainer.train_step(two, training.EpochStats())
    accumulated = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()
    total = sum(b.tgt_tokens for b in two)
    loss = sum(training.batch_loss(trainer.model, b, trainer.cfg.loss.label_smoothing)[0] for b in two) / total
    loss.backward()
    for got, want in zip(accumulated, (p.grad for p in trainer.model.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_training_stops_after_max_updates(tmp_path):
    cfg = config_from_dict(
        tiny_config(tmp_path, train={"max_updates": 3, "max_epochs": 50}, batching={"max_tokens": 128})
    )
    write_synthetic_corpus(tmp_path, train=200, valid=10, test=10)
    data = prepare(cfg)
    (tmp_path / "run").mkdir()
    trainer = Trainer(
        cfg, tmp_path / "run", build_model(cfg.model, data.tokenizer.vocab_size), data, torch.device("cpu")
    )
    assert len(trainer.batches.batches()) > 3  # the first epoch alone has more
    progress = trainer.fit()
    assert progress.updates == 3 and progress.stopped == "max_updates=3 reached"
    epoch = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]
    assert epoch["event"] == "epoch" and 0 < epoch["rss_mb"] <= epoch["peak_rss_mb"]  # memory, per epoch
