"""Data-parallel training: sharded samplers, the gradient of two ranks against one process, and
`torchrun --nproc_per_node=2` on the CPU (gloo) through the real command line.

Run as a module (`-m tests.test_distributed CONFIG OUT` under torchrun), this file is also the
worker of the gradient test.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtapp.batching import build_strategy
from mtapp.batching.sharded import ShardedStrategy
from mtapp.checkpoint import load_checkpoint
from mtapp.config import BatchingConfig, load_config
from mtapp.data.prepare import prepare
from mtapp.distributed import Distributed
from mtapp.loss import batch_loss
from mtapp.models import build_model
from mtapp.progress import EpochStats
from mtapp.trainer import build_trainer
from tests.synthetic import EXACT_MODELS, random_ids, synthetic_pairs, tiny_config, write_text_corpus

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ["global", "random", "sorted", "tokens", "packed_rows"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)


def tiny_run(tmp_path: Path, n_train: int = 300, **sections) -> Path:
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", n_train, 1), ("val", 12, 2), ("test", 12, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, **sections)))
    return config


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_distinct_batches_the_same_number_of_them_and_together_the_whole_plan(strategy, world):
    rng = np.random.default_rng(0)
    src = rng.integers(2, 40, 1500)
    tgt = np.clip(src + rng.integers(-3, 4, 1500), 1, None)
    cfg = BatchingConfig(strategy=strategy, max_tokens=512, batch_size=37, row_tokens=128, pool_batches=4)
    base = build_strategy(cfg, src, tgt)
    plan = base.plan(2)
    shards = [ShardedStrategy(base, rank, world).plan(2) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    dealt = [b.tobytes() for step in zip(*shards) for b in step]  # rank order within each step
    assert dealt[: len(plan)] == [b.tobytes() for b in plan]  # the one-process plan, dealt round-robin
    assert len(dealt) - len(plan) == -len(plan) % world  # padded by repeating at most world-1 batches
    assert all(len(set(step)) == world for step in zip(*[[b.tobytes() for b in s] for s in shards]))
    assert ShardedStrategy(base, 1, world).efficiency(2) == base.efficiency(2)


@pytest.mark.parametrize("name", sorted(EXACT_MODELS))
def test_every_parameter_gets_a_gradient_in_one_step(name):
    """DDP (find_unused_parameters off) needs every parameter in every backward."""
    from mtapp.batching import collate

    torch.manual_seed(0)
    model = build_model(EXACT_MODELS[name], 40)
    batch = collate(random_ids(1, [5, 3, 7]), random_ids(2, [4, 6, 2]), [0, 1, 2])
    batch_loss(model, batch, 0.1)[0].backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def grads_worker(config: str, out: str) -> None:
    """One rank of the gradient test: rank r trains on batch r of the one-process plan."""
    group = Distributed.from_env("cpu")
    cfg = load_config(config)
    data = prepare(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.tokenizer.vocab_size)
    trainer = build_trainer(cfg, Path(out), model, data, torch.device("cpu"), group)
    trainer.optimizer_step = lambda: None  # keep the gradients of the update
    strategy = trainer.batches.strategy
    item = strategy.base.plan(1)[group.rank]
    trainer.train_step([strategy.collate(data.train, item)], EpochStats())
    torch.save({n: p.grad for n, p in model.named_parameters()}, Path(out) / f"grads{group.rank}.pt")
    group.close()


def test_two_ranks_give_the_gradients_of_one_process_over_both_batches(tmp_path):
    config = tiny_run(tmp_path, model={"dropout": 0.0}, batching={"max_tokens": 128})
    cfg = load_config(config)
    data = prepare(cfg)  # fills the caches the ranks read
    done = torchrun("-m", "tests.test_distributed", str(config), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]

    torch.manual_seed(0)
    model = build_model(cfg.model, data.tokenizer.vocab_size)
    strategy = build_strategy(cfg.batching, data.train.src_lengths, data.train.tgt_lengths)
    a, b = (strategy.collate(data.train, item) for item in strategy.plan(1)[:2])
    assert a.tgt_tokens != b.tgt_tokens  # else averaging per-rank means would pass too

    def gradients(combine) -> dict[str, torch.Tensor]:
        model.zero_grad()
        (sum_a, _, n_a), (sum_b, _, n_b) = batch_loss(model, a, 0.1), batch_loss(model, b, 0.1)
        combine(sum_a, n_a, sum_b, n_b).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    want = gradients(lambda sa, na, sb, nb: (sa + sb) / (na + nb))  # one process, both batches
    naive = gradients(lambda sa, na, sb, nb: (sa / na + sb / nb) / 2)  # normalising per rank, then averaging

    for rank in (0, 1):
        got = torch.load(tmp_path / f"grads{rank}.pt")
        for name, grad in want.items():
            torch.testing.assert_close(got[name], grad, rtol=0, atol=1e-5, msg=f"rank {rank}: {name}")
    assert max((naive[n] - g).abs().max().item() for n, g in want.items()) > 1e-4


def test_torchrun_on_two_cpu_ranks_trains_logs_once_and_resumes(tmp_path):
    config = tiny_run(tmp_path, train={"max_epochs": 1, "log_every": 2}, batching={"max_tokens": 128})
    run = tmp_path / "run"
    done = torchrun("-m", "mtapp.train", "--config", str(config), "--run-dir", str(run))
    assert done.returncode == 0, done.stderr[-3000:]

    cfg = load_config(config)
    data = prepare(cfg)
    plan = build_strategy(cfg.batching, data.train.src_lengths, data.train.tgt_lengths).plan(1)
    padded = plan + plan[: len(plan) % 2]
    state = load_checkpoint(run / "checkpoint_last.pt")
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert state["progress"]["updates"] == len(padded) // 2  # one update per step of both ranks
    assert state["progress"]["tgt_tokens"] == sum(int((data.train.tgt_lengths[i] + 1).sum()) for i in padded)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1]  # rank 0 alone writes the log
    assert epochs[0]["tgt_tokens"] == state["progress"]["tgt_tokens"]  # statistics summed over ranks
    updates = [r["update"] for r in records if r["event"] == "train"]
    assert updates == sorted(set(updates))

    done = torchrun("-m", "mtapp.train", "--run-dir", str(run), "--resume", "--set", "train.max_epochs=2")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = load_checkpoint(run / "checkpoint_last.pt")
    assert resumed["sampler"] == {"epoch": 3, "position": 0}
    assert resumed["progress"]["updates"] == 2 * state["progress"]["updates"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]


if __name__ == "__main__":
    grads_worker(*sys.argv[1:])
