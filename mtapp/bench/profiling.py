"""`python -m mtapp.bench profile`: where a training step's time goes, operator by operator.

    python -m mtapp.bench profile [--config FILE] [--set KEY=VALUE ...] [--warmup 60] [--steps 20]
        [--top 20] [--out DIR]

Trains the config through `Trainer.train_step` (the update `python -m mtapp.train` makes) for
--warmup updates, then records --steps steady-state updates with `torch.profiler` (CPU, and CUDA
where the run is on a GPU). Prints the operators that took the most self time, each with its
share of the profiled time, and the same time grouped into kinds (matrix multiplies, attention,
normalisation, element-wise, dtype copies, the loss, the optimizer). Writes OUT/profile.json and
OUT/profile.md (the tables, the machine, the precision, the command).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from mtapp.batching import Batch
from mtapp.bench.machine import cpu_name, matmul_peak, transformer_flops_per_token
from mtapp.config import DEFAULT_CONFIG, load_config
from mtapp.data.prepare import prepare
from mtapp.models import build_model
from mtapp.progress import EpochStats
from mtapp.report.document import markdown_table
from mtapp.runtime import (
    amp_dtype,
    cpu_has_native_bf16,
    memory_policy,
    seed_everything,
    select_device,
    set_threads,
)
from mtapp.trainer import Trainer, build_trainer

# An operator's kind, by the first pattern its name contains (aten names; order matters).
KINDS = [
    ("attention", ("attention", "softmax", "_efficient", "flash")),
    ("matrix multiply", ("mm", "linear", "matmul", "addmm", "bmm", "mkldnn", "baddbmm")),
    ("normalisation", ("layer_norm", "native_layer_norm")),
    ("dropout", ("dropout", "bernoulli", "random_")),
    ("loss", ("projectedsmoothednll", "exp_", "amax", "gather", "scatter_add", "reciprocal", "log_softmax")),
    ("optimizer", ("adam", "_foreach", "clip_grad", "norm")),
    ("dtype copies", ("_to_copy", "copy_", "to", "clone", "contiguous")),
    ("element-wise", ("add", "mul", "div", "sub", "relu", "threshold", "where", "masked_fill", "fill_", "sum")),
    ("indexing", ("index", "embedding", "cat", "stack", "narrow", "select", "slice")),
]


def kind(name: str) -> str:
    short = name.removeprefix("aten::").lower()
    for label, patterns in KINDS:
        if any(p in short for p in patterns):
            return label
    return "other"


def steps(trainer: Trainer, plan: Iterator[Batch], count: int) -> tuple[float, int]:
    """Run `count` updates, a batch each, of the batches `plan` yields; seconds and target tokens."""
    tokens, started = 0, time.perf_counter()
    for _ in range(count):
        batch = trainer.to_device(next(plan))
        trainer.train_step([batch], EpochStats())
        tokens += batch.tgt_tokens
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, tokens


def endless(trainer: Trainer) -> Iterator[Batch]:
    """The trainer's batches, epoch after epoch."""
    while True:
        yield from trainer.batches.epoch_iter()


def operators(prof) -> list:
    """The profile's per-operator totals, without the step markers."""
    return [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]


def self_us(event, cuda: bool) -> float:
    return event.self_device_time_total if cuda else event.self_cpu_time_total


def top_operators(events: list, total_us: float, top: int, cuda: bool) -> list[dict]:
    """The `top` operators by self time; matrix multiplies with their achieved GFLOP/s."""
    rows = sorted(events, key=lambda e: self_us(e, cuda), reverse=True)[:top]
    return [
        {
            "operator": e.key,
            "kind": kind(e.key),
            "calls": e.count,
            "self_ms": self_us(e, cuda) / 1e3,
            "share": self_us(e, cuda) / total_us,
            "gflop_per_s": e.flops / max(self_us(e, cuda), 1e-9) / 1e3 if e.flops else None,
        }
        for e in rows
    ]


def by_kind(events: list, total_us: float, cuda: bool) -> list[dict]:
    sums: dict[str, float] = {}
    for e in events:
        sums[kind(e.key)] = sums.get(kind(e.key), 0.0) + self_us(e, cuda)
    ranked = sorted(sums.items(), key=lambda kv: -kv[1])
    return [{"kind": k, "self_ms": v / 1e3, "share": v / total_us} for k, v in ranked]


def mfu(cfg, data, tgt_tokens_per_s: float, dtype: torch.dtype) -> dict:
    """Useful training FLOP/s (`machine`'s count over the training corpus, eos included) over
    this machine's matrix-multiply peak in the precision that trained (CPU only: the peak is
    measured with torch.matmul on the CPU)."""
    per_token = transformer_flops_per_token(cfg, data)
    peak = matmul_peak(dtype)
    return {"flops_per_target_token": per_token, "peak_flops": peak, "mfu": tgt_tokens_per_s * per_token / peak}


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"# Training profile: {payload['config']} ({payload['precision']})",
        "",
        f"`{payload['command']}`",
        "",
        f"{m['cpu']} (native bf16: {m['native_bf16']}), {m['threads']} threads, torch {m['torch']}; "
        f"{payload['steps']} updates after {payload['warmup']} warmup updates: "
        f"{payload['tgt_tokens_per_s']:.0f} real target tokens/s unprofiled"
        + (
            f" = {payload['mfu']:.1%} of the measured {payload['precision'].removesuffix('-pure')} matmul peak "
            f"({payload['peak_flops'] / 1e9:.0f} GFLOP/s)"
            if "mfu" in payload
            else ""
        )
        + f", {payload['profiled_seconds']:.2f} s profiled.",
        "",
        markdown_table(
            ["kind", "self ms", "share"],
            [[r["kind"], f"{r['self_ms']:.0f}", f"{r['share']:.1%}"] for r in payload["kinds"]],
        ),
        "",
        markdown_table(
            ["operator", "kind", "calls", "self ms", "share", "GFLOP/s"],
            [
                [f"`{r['operator']}`", r["kind"], r["calls"], f"{r['self_ms']:.0f}", f"{r['share']:.1%}"]
                + [f"{r['gflop_per_s']:.0f}" if r["gflop_per_s"] else ""]
                for r in payload["top"]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="a shipped config's name, or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--warmup", type=int, default=60, help="updates before the profiled ones (default 60)")
    p.add_argument("--steps", type=int, default=20, help="profiled updates (default 20)")
    p.add_argument("--top", type=int, default=20, help="operators listed (default 20)")
    p.add_argument("--out", type=Path, default=Path("runs/profile"))
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    set_threads()
    memory_policy()
    seed_everything(cfg.train.seed)
    data = prepare(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.train.device)
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    trainer = build_trainer(cfg, args.out, model, data, device)
    plan = endless(trainer)
    steps(trainer, plan, args.warmup)
    seconds, tokens = steps(trainer, plan, args.steps)  # unprofiled: the speed the profile explains
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, with_flops=True) as prof:
        profiled, _ = steps(trainer, plan, args.steps)
    events = operators(prof)
    total_us = sum(self_us(e, cuda) for e in events)
    dtype = amp_dtype(device, cfg.train.amp)
    speed = tokens / seconds
    utilisation = mfu(cfg, data, speed, dtype or torch.float32) if cfg.model.type == "transformer" else {}
    precision = str(dtype).removeprefix("torch.") if dtype else "float32"
    precision = "bf16-pure" if cfg.train.amp == "bf16-pure" else precision
    payload = {
        "command": "python -m mtapp.bench profile " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "config": str(args.config),
        "precision": precision,
        "machine": {
            "cpu": cpu_name(),
            "native_bf16": cpu_has_native_bf16(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "warmup": args.warmup,
        "steps": args.steps,
        "tgt_tokens_per_s": speed,
        **utilisation,
        "profiled_seconds": profiled,
        "kinds": by_kind(events, total_us, cuda),
        "top": top_operators(events, total_us, args.top, cuda),
    }
    (args.out / "profile.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(payload)
    (args.out / "profile.md").write_text(text)
    print(text)
    return 0
