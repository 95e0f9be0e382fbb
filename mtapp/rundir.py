"""The run-directory format: what `python -m mtapp.train` and `python -m mtapp.evaluate` write in
a run folder, and how it is read back. Every other module asks here for these names.

    RUN/config.yaml               the resolved config, written when training starts
    RUN/spm.model                 the SentencePiece model (also inside every checkpoint)
    RUN/log.jsonl                 one JSON record per line: `train` every train.log_every updates,
                                  `valid` every train.valid_every_minutes, `epoch` at each epoch's end
    RUN/checkpoint_best.pt        the best validation BLEU so far
    RUN/checkpoint_last.pt        the newest state (resume from here)
    RUN/checkpoint_epochNN.pt     the newest train.average_last epochs, and their mean,
    RUN/checkpoint_avg.pt         (`mtapp.averaging`)
    RUN/eval/<name>.json          scores of checkpoint_best.pt on <name> (a split, a file's name,
                                  `all`, tune_SETTING_SPLIT); <name>.<which>.json for checkpoint_<which>.pt
    RUN/eval/<name>.hyp           the translations scored, one line per sentence, beside their scores
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from mtapp.config import Config, ConfigError, config_from_dict
from mtapp.data.corpora import read_lines

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
TOKENIZER_FILE = "spm.model"
EVAL_DIR = "eval"
HYP_SUFFIX = ".hyp"
BEST, LAST, AVERAGE = "best", "last", "avg"  # the `which` of checkpoint_<which>.pt
EPOCH_FILE = re.compile(r"checkpoint_epoch(\d+)\.pt")


# ---- names ------------------------------------------------------------------------------------
def config_file(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG_FILE


def log_file(run_dir: Path) -> Path:
    return Path(run_dir) / LOG_FILE


def tokenizer_file(run_dir: Path) -> Path:
    return Path(run_dir) / TOKENIZER_FILE


def tensorboard_dir(run_dir: Path) -> Path:
    """TensorBoard's event files of a run (`train.tensorboard`)."""
    return run_dir / "tensorboard"


def checkpoint_file(run_dir: Path, which: str = BEST) -> Path:
    """RUN/checkpoint_<which>.pt (best, last, avg, epochNN)."""
    return Path(run_dir) / f"checkpoint_{which}.pt"


def checkpoint_which(path: Path) -> str:
    """The `which` of checkpoint_<which>.pt (of another file name, its stem)."""
    return Path(path).stem.removeprefix("checkpoint_")


def epoch_tag(epoch: int) -> str:
    """The `which` of epoch `epoch`'s checkpoint, checkpoint_<which>.pt."""
    return f"epoch{epoch:02d}"


def epoch_checkpoints(run_dir: Path) -> list[Path]:
    """The run's epoch checkpoints, oldest first."""
    found = [
        (int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint_epoch*.pt") if (m := EPOCH_FILE.fullmatch(p.name))
    ]
    return [path for _, path in sorted(found)]


def eval_file(run_dir: Path, name: str, which: str = BEST) -> Path:
    """Where the scores of checkpoint_<which>.pt on `name` go: RUN/eval/<name>.json for the best
    checkpoint, RUN/eval/<name>.<which>.json for another, so that they never overwrite it."""
    return Path(run_dir) / EVAL_DIR / (f"{name}.json" if which == BEST else f"{name}.{which}.json")


def hyp_file(scores: Path) -> Path:
    """The translations beside the scores file `scores` (eval/test.json: eval/test.hyp)."""
    return Path(scores).with_suffix(HYP_SUFFIX)


# ---- reading and writing ------------------------------------------------------------------------
def write_config(run_dir: Path, cfg: Config) -> None:
    config_file(run_dir).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def read_config(run_dir: Path) -> Config:
    """RUN/config.yaml, validated (FileNotFoundError when the run has none)."""
    return config_from_dict(yaml.safe_load(config_file(run_dir).read_text(encoding="utf-8")))


def append_log(run_dir: Path, record: dict) -> None:
    with open(log_file(run_dir), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_log(run_dir: Path) -> list[dict]:
    """The records of RUN/log.jsonl, in order."""
    return [json.loads(line) for line in log_file(run_dir).read_text(encoding="utf-8").splitlines() if line]


def write_eval(scores: Path, result: dict, hyps: list[str] | None = None) -> None:
    """The scores to `scores`, and (when given) the translations beside them."""
    if hyps is not None:
        hyp_file(scores).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    Path(scores).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def read_eval(scores: Path) -> dict:
    return json.loads(Path(scores).read_text(encoding="utf-8"))


def read_hyps(scores: Path) -> list[str]:
    """The translations beside the scores file `scores`."""
    return read_lines(hyp_file(scores))


def check_output(path: Path | None, flag: str = "--output") -> None:
    """Refuse an output path that cannot be written, before any work."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder: name a file to write")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag} {path} cannot be written (permission denied)")
