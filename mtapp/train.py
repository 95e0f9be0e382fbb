"""`python -m mtapp.train`: train a model from a config; no arguments = the default config.

python -m mtapp.train [--config NAME|FILE] [--set section.key=value ...] [--run-dir DIR]
                      [--max-minutes N] [--resume]
python -m mtapp.train --print-config [--config NAME|FILE] [--set ...]   (every key, its value and meaning)

Data-parallel on N processes (gloo on the CPU, NCCL with one GPU each):
python -m torch.distributed.run --nproc_per_node=N -m mtapp.train [same arguments]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mtapp import rundir
from mtapp.checkpoint import CheckpointError, load_checkpoint, tokenizer_from_tensor
from mtapp.config import (
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    config_from_dict,
    describe,
    load_config,
    shipped_configs,
)
from mtapp.data import CorpusError
from mtapp.data.prepare import prepare
from mtapp.distributed import Distributed
from mtapp.models import build_model
from mtapp.runtime import memory_policy, seed_everything, set_threads
from mtapp.tokenization import Tokenizer
from mtapp.trainer import TrainingError, build_trainer

log = logging.getLogger("mtapp.train")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mtapp.train", description="Train an mtapp model.")
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"a shipped config ({', '.join(shipped_configs())}; default {DEFAULT_CONFIG.stem}) or a YAML file",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=0.001 (repeatable)",
    )
    p.add_argument("--run-dir", type=Path, help="where checkpoints, logs and results go (default: runs/<config name>)")
    p.add_argument("--max-minutes", type=float, help="wall-clock training budget (sets train.max_minutes)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (--config with --set) as YAML, every key with its meaning, and exit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports progress
    logging.basicConfig(
        level=logging.INFO if main_rank else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    run_dir = args.run_dir or Path("runs") / args.config.stem
    try:
        if args.print_config:
            if args.resume:
                raise ConfigError("--print-config prints a config file's settings; a run's are in RUN/config.yaml")
            source = f"config {args.config}" + "".join(f" --set {item}" for item in overrides)
            print(describe(load_config(args.config, overrides), source), end="")
            return 0
        return run(args, run_dir, overrides)
    except (ConfigError, CorpusError, CheckpointError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# What a resumed run may not change: the model, its vocabulary, the data and the batches it was
# trained on (the saved sampler position points into the saved batching plan), and the shape of its
# learning rate (another schedule would make the rate jump mid-run).
FIXED_ON_RESUME = ("model", "tokenizer", "data", "batching", "train.schedule")


def refuse_overrides_that_change_the_run(overrides: list[str]) -> None:
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        fixed = next((f for f in FIXED_ON_RESUME if key == f or key.split(".", 1)[0] == f), None)
        if fixed:
            what = f"the {fixed} settings of a run are" if "." not in fixed else f"{fixed} of a run is"
            raise ConfigError(
                f"--set {key} with --resume: {what} fixed by its checkpoint; start a new run (another --run-dir) "
                "to change it"
            )


def run(args: argparse.Namespace, run_dir: Path, overrides: list[str]) -> int:
    last = rundir.checkpoint_file(run_dir, rundir.LAST)
    content = None
    if args.resume:
        refuse_overrides_that_change_the_run(overrides)
        content = load_checkpoint(last)
        cfg = config_from_dict(content["config"], overrides)
    else:
        cfg = load_config(args.config, overrides)
        if last.exists():
            raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
    group = Distributed.from_env(cfg.train.device)
    finished = False
    try:
        code = train(cfg, content, run_dir, group)
        finished = True
        return code
    finally:
        group.close(finished)


def train(cfg: Config, content: dict | None, run_dir: Path, group: Distributed) -> int:
    """Train on this process's share (all of it, for one process); rank 0 writes the run's files."""
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_config(run_dir, cfg)
    set_threads()
    memory_policy()
    seed_everything(cfg.train.seed)  # the same initial parameters on every rank
    tokenizer = Tokenizer(tokenizer_from_tensor(content["tokenizer"])) if content else None
    data = group.main_first(lambda: prepare(cfg, tokenizer))  # rank 0 fills the caches the others read
    if group.is_main:
        data.tokenizer.save(rundir.tokenizer_file(run_dir))
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    if group.active:
        seed_everything(cfg.train.seed + group.rank)  # ... and different dropout
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "model: %s, %.1fM parameters, device %s, %d process(es), run dir %s",
        cfg.model.type,
        n_params / 1e6,
        group.device,
        group.world_size,
        run_dir,
    )
    trainer = build_trainer(cfg, run_dir, model, data, group.device, group)
    if content:
        trainer.resume(content)
        log.info(
            "resumed at epoch %d, batch %d, update %d",
            trainer.batches.epoch,
            trainer.batches.position,
            trainer.progress.updates,
        )
    progress = trainer.fit()
    if progress.stopped.startswith("interrupted"):
        log.info("%s: state saved in %s; continue with --run-dir %s --resume", progress.stopped, run_dir, run_dir)
        return 0
    log.info(
        "stopped: %s; best validation BLEU %.2f after %d updates in %.1f minutes; checkpoints in %s",
        progress.stopped,
        progress.best_bleu,
        progress.updates,
        progress.elapsed / 60,
        run_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
