"""Where a training step's dtype copies come from (issue #35, session 17).

    MTAPP_DATA_DIR=../shared/data python results/precision/copies_by_caller.py --amp bf16-pure [--config NAME]

Trains the config through `Trainer.train_step` for 30 updates, then profiles 5 more and groups the
self time of `aten::copy_` by the operators above it (up to 3 levels), which `bench profile`'s
per-operator table cannot show. Prints the total and the 14 largest callers. Kept as the command
behind docs/training_memory_speed.md ("What the copies are").
"""

import argparse
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
from torch.profiler import ProfilerActivity, profile

from mtapp.bench.profiling import endless, steps
from mtapp.config import BASE_CONFIG, load_config
from mtapp.data.prepare import prepare
from mtapp.models import build_model
from mtapp.runtime import memory_policy, seed_everything, set_threads
from mtapp.trainer import build_trainer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--amp", default="bf16-pure")
    p.add_argument("--config", default=str(BASE_CONFIG))
    args = p.parse_args()
    set_threads()
    memory_policy()
    cfg = load_config(args.config, [f"train.amp={args.amp}", "train.tensorboard=false"])
    data = prepare(cfg)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    with TemporaryDirectory() as scratch:
        trainer = build_trainer(cfg, Path(scratch), model, data, torch.device("cpu"))
        plan = endless(trainer)
        steps(trainer, plan, 30)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            steps(trainer, plan, 5)
    calls, micros = Counter(), Counter()
    for event in prof.events():
        if event.name != "aten::copy_":
            continue
        chain, parent = [], event.cpu_parent
        while parent is not None and len(chain) < 3:
            chain.append(parent.name)
            parent = parent.cpu_parent
        caller = " < ".join(chain)
        calls[caller] += 1
        micros[caller] += event.self_cpu_time_total
    print(f"{args.amp}: copy_ {sum(micros.values()) / 1e3:.0f} ms in {sum(calls.values())} calls over 5 updates")
    for caller, us in micros.most_common(14):
        print(f"{us / 1e3:8.1f} ms {calls[caller]:5d}  {caller}")


if __name__ == "__main__":
    main()
