"""Interrupted training resumes exactly: a run stopped with SIGTERM or SIGINT mid-epoch and
resumed ends with the parameters of an uninterrupted run (CPU, same seed)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import torch
import yaml

from mtapp import train, trainer
from mtapp.checkpoint import load_checkpoint
from mtapp.data.synthetic import write_synthetic_corpus
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


def train_cmd(config, run_dir, *extra):
    return [sys.executable, "-m", "mtapp.train", "--config", str(config), "--run-dir", str(run_dir), *extra]


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", 1200, 1), ("val", 20, 2), ("test", 20, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    raw = tiny_config(tmp_path, train={"max_epochs": 2, "log_every": 2}, batching={"max_tokens": 128})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))

    whole = tmp_path / "whole"
    subprocess.run(train_cmd(config, whole), check=True, capture_output=True)

    cut = tmp_path / "cut"
    child = subprocess.Popen(train_cmd(config, cut), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a few updates of epoch 1 are done
        log = cut / "log.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        if any(r["event"] == "train" and r["update"] >= 6 for r in records):
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    state = load_checkpoint(cut / "checkpoint_last.pt")
    assert state["sampler"]["epoch"] == 1 and state["sampler"]["position"] > 0  # stopped mid-epoch
    assert "interrupted by SIGTERM" in err.decode()

    subprocess.run(train_cmd(config, cut, "--resume"), check=True, capture_output=True)
    assert_same_final_state(whole, cut)


def assert_same_final_state(whole, resumed):
    a = load_checkpoint(whole / "checkpoint_last.pt")
    b = load_checkpoint(resumed / "checkpoint_last.pt")
    assert a["progress"]["updates"] == b["progress"]["updates"]
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=0, atol=0, msg=name)


def test_sigint_mid_update_saves_where_it_stopped_and_resumes_exactly(tmp_path, monkeypatch, caplog):
    """Ctrl-C, in process: the update under way finishes, the checkpoint holds the position."""
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", 300, 1), ("val", 10, 2)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    raw = tiny_config(tmp_path, train={"max_epochs": 2}, batching={"max_tokens": 128})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert train.main(["--config", str(config), "--run-dir", str(tmp_path / "whole")]) == 0

    real_loss, calls = trainer.batch_loss, []

    def loss_then_ctrl_c(model, *args, **kwargs):
        if model.training:
            calls.append(len(calls))
            if len(calls) == 5:  # between the forward and the backward pass of update 5
                os.kill(os.getpid(), signal.SIGINT)
        return real_loss(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "batch_loss", loss_then_ctrl_c)
    cut = tmp_path / "cut"
    with caplog.at_level(logging.INFO):
        assert train.main(["--config", str(config), "--run-dir", str(cut)]) == 0
    monkeypatch.setattr(trainer, "batch_loss", real_loss)
    state = load_checkpoint(cut / "checkpoint_last.pt")
    assert state["sampler"] == {"epoch": 1, "position": 5}  # mid-epoch 1, after update 5
    assert state["progress"]["updates"] == 5
    assert "interrupted by SIGINT: state saved" in caplog.text

    assert train.main(["--run-dir", str(cut), "--resume"]) == 0
    assert_same_final_state(tmp_path / "whole", cut)


def test_a_bf16_or_float32_run_resumes_in_fp16(tmp_path):
    """A disabled gradient scaler saves an empty state; resuming with fp16 (scaler on) starts a
    fresh scaler instead of failing on it (amp auto is fp16 on GPUs without bf16)."""
    write_synthetic_corpus(tmp_path, train=300, valid=10, test=10)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, train={"max_epochs": 1}, batching={"max_tokens": 128})))
    run = tmp_path / "run"
    assert train.main(["--config", str(config), "--run-dir", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint_last.pt")["scaler"] == {}
    assert (
        train.main(["--run-dir", str(run), "--resume", "--set", "train.amp=fp16", "--set", "train.max_epochs=2"]) == 0
    )
    resumed = load_checkpoint(run / "checkpoint_last.pt")
    assert resumed["progress"]["updates"] > 0 and resumed["scaler"]["scale"] > 0
