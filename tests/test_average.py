"""Checkpoint averaging: `mtapp.averaging`, `python -m mtapp.average` and `train.average_last`."""

import json

import pytest
import torch
import yaml

from mtapp import average, evaluate, train
from mtapp.averaging import average_last, keep_newest
from mtapp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mtapp.config import Config
from mtapp.rundir import epoch_checkpoints
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


def write_epoch(run, epoch: int, weight: torch.Tensor, steps: int, lr: float = 5e-4, d_model: int = 256):
    """An epoch checkpoint with one float parameter, one integer buffer and a config."""
    config = Config().to_dict()
    config["train"]["lr"], config["model"]["d_model"] = lr, d_model
    content = {
        "model": {"weight": weight, "steps": torch.tensor(steps, dtype=torch.int64)},
        "optimizer": {"state": {}, "epoch": epoch},
        "config": config,
        "tokenizer": torch.arange(8, dtype=torch.uint8),
    }
    run.mkdir(exist_ok=True)
    save_checkpoint(run / f"checkpoint_epoch{epoch:02d}.pt", content)


def test_averaging_identical_checkpoints_gives_that_checkpoint(tmp_path):
    weight = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)) * 1e3
    for epoch in (1, 2, 3):
        write_epoch(tmp_path, epoch, weight.clone(), steps=7)
    out, averaged = average_last(tmp_path, 3)
    content = load_checkpoint(out)
    assert out == tmp_path / "checkpoint_avg.pt"
    assert [p.name for p in averaged] == [f"checkpoint_epoch0{e}.pt" for e in (1, 2, 3)]
    assert torch.equal(content["model"]["weight"], weight)  # exactly: summed in float64
    assert content["model"]["weight"].dtype == torch.float32
    assert content["averaged"] == [p.name for p in averaged]


def test_averaging_two_checkpoints_means_the_parameters_and_carries_the_rest_from_the_newest(tmp_path):
    write_epoch(tmp_path, 1, torch.tensor([0.0, 2.0, 4.0]), steps=10, lr=1e-3)  # left out by --last 2
    write_epoch(tmp_path, 2, torch.tensor([1.0, 2.0, 3.0]), steps=20, lr=2e-3)
    write_epoch(tmp_path, 3, torch.tensor([3.0, 6.0, -1.0]), steps=30, lr=3e-3)
    assert average.main([str(tmp_path), "--last", "2", "--out", str(tmp_path / "two.pt")]) == 0
    content = load_checkpoint(tmp_path / "two.pt")
    assert content["model"]["weight"].tolist() == [2.0, 4.0, 1.0]
    assert content["model"]["steps"].item() == 30 and content["model"]["steps"].dtype == torch.int64
    assert content["config"]["train"]["lr"] == 3e-3 and content["optimizer"]["epoch"] == 3
    assert not (tmp_path / "checkpoint_avg.pt").exists()


def test_too_few_checkpoints_is_a_clear_error_naming_the_run(tmp_path, capsys):
    for epoch in (1, 2):
        write_epoch(tmp_path, epoch, torch.zeros(2), steps=0)
    assert average.main([str(tmp_path), "--last", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} holds 2 epoch checkpoint(s) (checkpoint_epoch01.pt, checkpoint_epoch02.pt)" in err
    assert "lower --last to at most 2, or train with train.average_last >= 3" in err
    assert not (tmp_path / "checkpoint_avg.pt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"no epoch checkpoints .* --set train.average_last=5"):
        average_last(empty, 1)


def test_without_last_the_run_config_decides_and_zero_asks_for_last(tmp_path, capsys):
    for epoch in (1, 2):
        write_epoch(tmp_path, epoch, torch.full((2,), float(epoch)), steps=0)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"average_last": 0}}))
    assert average.main([str(tmp_path)]) == 2
    assert "give --last N" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"average_last": 2}}))
    assert average.main([str(tmp_path)]) == 0
    assert load_checkpoint(tmp_path / "checkpoint_avg.pt")["model"]["weight"].tolist() == [1.5, 1.5]


def test_checkpoints_of_different_model_shapes_are_refused(tmp_path):
    write_epoch(tmp_path, 1, torch.zeros(2), steps=0, d_model=128)
    write_epoch(tmp_path, 2, torch.zeros(2), steps=0, d_model=256)
    with pytest.raises(CheckpointError, match=r"differ in their model settings \(model.d_model: 128 vs 256\)"):
        average_last(tmp_path, 2)
    write_epoch(tmp_path, 3, torch.zeros(3), steps=0)
    with pytest.raises(CheckpointError, match="different parameter shapes"):
        average_last(tmp_path, 2)


def test_epoch_checkpoints_sort_by_epoch_number_and_only_the_newest_are_kept(tmp_path):
    for name in ("checkpoint_epoch100.pt", "checkpoint_epoch09.pt", "checkpoint_epoch10.pt", "checkpoint_best.pt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in epoch_checkpoints(tmp_path)] == [
        "checkpoint_epoch09.pt",
        "checkpoint_epoch10.pt",
        "checkpoint_epoch100.pt",
    ]
    keep_newest(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_best.pt",
        "checkpoint_epoch10.pt",
        "checkpoint_epoch100.pt",
    ]


def test_training_with_average_last_keeps_the_last_epochs_and_writes_their_mean(tmp_path):
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", 200, 1), ("val", 10, 2), ("test", 12, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    raw = tiny_config(tmp_path, train={"max_epochs": 3, "average_last": 2}, model={"d_model": 32, "ffn_dim": 64})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert train.main(["--config", str(tmp_path / "tiny.yaml"), "--run-dir", str(run)]) == 0
    assert [p.name for p in epoch_checkpoints(run)] == ["checkpoint_epoch02.pt", "checkpoint_epoch03.pt"]
    kept = [load_checkpoint(p)["model"] for p in epoch_checkpoints(run)]
    averaged = load_checkpoint(run / "checkpoint_avg.pt")
    assert averaged["averaged"] == ["checkpoint_epoch02.pt", "checkpoint_epoch03.pt"]
    for key, value in averaged["model"].items():
        assert torch.allclose(value, (kept[0][key] + kept[1][key]) / 2, atol=1e-6), key
    assert not torch.equal(averaged["model"]["embed.weight"], kept[1]["embed.weight"])  # training moved them
    assert evaluate.main(["--checkpoint", str(run / "checkpoint_avg.pt"), "--split", "test", "--beam", "1"]) == 0
    result = json.loads((run / "eval" / "test.avg.json").read_text())
    assert result["checkpoint"] == str(run / "checkpoint_avg.pt") and result["num_sentences"] == 12
    assert not (run / "eval" / "test.json").exists()  # the best checkpoint's results are not overwritten
