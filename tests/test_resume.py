"""Interrupted training resumes exactly: a run killed with SIGTERM mid-epoch and resumed ends
with the parameters of an uninterrupted run (CPU, same seed)."""

import json
import signal
import subprocess
import sys
import time

import torch
import yaml

from mtapp.checkpoint import load_checkpoint
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
    a = load_checkpoint(whole / "checkpoint_last.pt")
    b = load_checkpoint(cut / "checkpoint_last.pt")
    assert a["progress"]["updates"] == b["progress"]["updates"]
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=0, atol=0, msg=name)
