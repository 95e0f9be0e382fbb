"""`python -m mtapp.train`: train a model from a config; no arguments = the default config.

python -m mtapp.train [--config FILE] [--set section.key=value ...] [--run-dir DIR]
                      [--max-minutes N] [--resume]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from mtapp.checkpoint import CheckpointError, load_checkpoint, tokenizer_from_tensor
from mtapp.config import ConfigError, config_from_dict, load_config
from mtapp.data import CorpusError
from mtapp.data.prepare import prepare
from mtapp.models import build_model
from mtapp.runtime import seed_everything, select_device, set_threads
from mtapp.tokenization import Tokenizer
from mtapp.training import Trainer, TrainingError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "multi30k_de_en_transformer.yaml"
log = logging.getLogger("mtapp.train")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mtapp.train", description="Train an mtapp model.")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
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
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    run_dir = args.run_dir or Path("runs") / args.config.stem
    try:
        return run(args, run_dir, overrides)
    except (ConfigError, CorpusError, CheckpointError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, run_dir: Path, overrides: list[str]) -> int:
    last = run_dir / "checkpoint_last.pt"
    content = None
    if args.resume:
        content = load_checkpoint(last)
        cfg = config_from_dict(content["config"], overrides)
    else:
        cfg = load_config(args.config, overrides)
        if last.exists():
            raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")

    set_threads()
    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    tokenizer = Tokenizer(tokenizer_from_tensor(content["tokenizer"])) if content else None
    data = prepare(cfg, tokenizer)
    data.tokenizer.save(run_dir / "spm.model")
    model = build_model(cfg.model, data.tokenizer.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %.1fM parameters, device %s, run dir %s", cfg.model.type, n_params / 1e6, device, run_dir)
    trainer = Trainer(cfg, run_dir, model, data, device)
    if content:
        trainer.load_state_dict(content)
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
