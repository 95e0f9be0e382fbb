"""scripts/gpu_check.sh at its tiny CPU size (what it runs on a GPU, in seconds): every stage goes
through Trainer and Translator, the summary holds each stage's figures, and the first stage that
fails ends the check with its error in the summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtapp.bench import gpu

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_every_stage_at_its_tiny_cpu_size(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", "scripts/gpu_check.sh", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    payload = json.loads((out / "gpu_check.json").read_text())
    stages = payload["stages"]
    assert {name: s["status"] for name, s in stages.items()} == {
        **{name: "ok" for name in gpu.STAGES},
        "torchrun": "skipped",  # no two GPUs here
    }
    plan = payload["plan"]

    transformer = stages["transformer"]["result"]
    assert set(transformer) == set(gpu.STRATEGIES)
    for run in transformer.values():
        assert run["updates"] > 0 and run["tgt_tokens_per_s"] > 0 and 0 < run["padding_efficiency"] <= 1
        assert run["peak_gpu_mb"] is None  # measured on CUDA only
    assert transformer["packed_rows"]["padding_efficiency"] > transformer["random"]["padding_efficiency"]
    lstm = stages["lstm"]["result"]
    assert set(lstm) == {f"{mode}-{side}" for mode in gpu.LSTM_MODES for side in gpu.PAD_SIDES}
    assert all(run["updates"] > 0 for run in lstm.values())

    fp16 = stages["fp16"]["result"]
    assert fp16["updates"] == plan["few_updates"] and fp16["grad_scale"] > 0
    compiled = stages["compile"]["result"]
    assert compiled["updates"] == plan["few_updates"] and compiled["backend"] == "eager"
    assert compiled["grad_scale"] is None  # bf16: no scaler

    decode = stages["decode"]["result"]
    assert [r["precision"] for r in decode["results"]] == ["float32", "bfloat16"]
    for r in decode["results"]:
        assert r["lines"] == 80 and r["beam"] == 5  # the synthetic test split, every line
        assert set(map(int, r["seconds"])) == set(plan["budgets"])
        assert 0 <= r["changed"] <= r["lines"]
    assert set(stages["nested"]["result"]["operations"]) and isinstance(stages["nested"]["result"]["all_work"], bool)

    summary = (out / "gpu_check.md").read_text()
    for name in gpu.STAGES:
        assert f"| {name} |" in summary
    assert "lines that change with the batch budget" in summary and "packed_rows" in summary


def test_the_first_failing_stage_ends_the_check_with_its_error_in_the_summary(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("the kernel said no")

    reached = []
    monkeypatch.setattr(gpu, "STAGES", {"nested": gpu.nested_stage, "fp16": broken, "later": reached.append})
    out = tmp_path / "check"
    assert gpu.main(["--device", "cpu", "--out", str(out)]) == 1
    stages = json.loads((out / "gpu_check.json").read_text())["stages"]
    assert [stages["nested"]["status"], stages["fp16"]["status"]] == ["ok", "FAILED"]
    assert "the kernel said no" in stages["fp16"]["error"] and "later" not in stages and not reached
    assert "| fp16 | FAILED |" in (out / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_fails_at_once_and_says_why(tmp_path, capsys):
    assert gpu.main(["--device", "cuda", "--out", str(tmp_path)]) == 1
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err
