"""What a report reads from a run directory, and the training figures derived from its log.

A run directory (`mtapp.rundir`) holds `config.yaml` (the resolved config), `log.jsonl` (one JSON
record per line: `train` every `train.log_every` updates, `valid` every `train.valid_every_minutes`,
`epoch` at each epoch's end) and `eval/<split>.json` + `eval/<split>.hyp` written by
`python -m mtapp.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtapp import rundir
from mtapp.config import Config
from mtapp.data.corpora import ParallelText, load_split


class RunError(ValueError):
    """A run directory lacks what the report needs."""


@dataclass(frozen=True)
class Run:
    path: Path
    name: str
    config: Config
    records: list[dict]  # log.jsonl, in order
    evaluation: dict  # eval/<split>.json ({} when absent)
    hypotheses: list[str]  # eval/<split>.hyp, one line per test sentence


@dataclass(frozen=True)
class Point:
    seconds: float  # wall-clock seconds since training started
    tokens: int  # real target tokens trained on so far
    loss: float  # label-smoothed cross-entropy per real target token
    bleu: float | None = None  # validation BLEU, at epoch ends only


def evaluate_command(path: Path, split: str) -> str:
    return f"python -m mtapp.evaluate --run {path} --split {split}"


def read_config(path: Path) -> Config:
    if not rundir.config_file(path).is_file():
        raise RunError(f"{path} is not a run directory: it has no {rundir.CONFIG_FILE}")
    return rundir.read_config(path)


def load_run(path: Path, split: str, name: str | None = None) -> Run:
    """Everything the report needs from `path`; RunError names the command that would produce
    a missing translation."""
    config = read_config(path)
    if not rundir.log_file(path).is_file():
        raise RunError(f"{path} is not a run directory: it has no {rundir.LOG_FILE}")
    scores = rundir.eval_file(path, split)
    hyp = rundir.hyp_file(scores)
    if not hyp.is_file():
        raise RunError(f"{path} has no translation of {split} ({hyp}); run: {evaluate_command(path, split)}")
    return Run(
        path=path,
        name=name or path.name,
        config=config,
        records=rundir.read_log(path),
        evaluation=rundir.read_eval(scores) if scores.is_file() else {},
        hypotheses=rundir.read_hyps(scores),
    )


def load_runs(paths: list[Path], names: list[str], split: str) -> tuple[list[Run], ParallelText]:
    """The runs and the test set they share (read with the baseline's config). Every missing
    translation is reported at once, each with the command that makes it."""
    runs, missing = [], []
    for path, name in zip(paths, names):
        try:
            runs.append(load_run(path, split, name))
        except RunError as e:
            missing.append(str(e))
    if missing:
        raise RunError("\n".join(missing))
    text = load_split(runs[0].config.data, split)
    for run in runs:
        if len(run.hypotheses) != len(text):
            raise RunError(f"{run.path}: {len(run.hypotheses)} translations for the {len(text)} sentences of {split}")
        if run is not runs[0] and load_split(run.config.data, split).tgt != text.tgt:
            raise RunError(f"{run.path}'s {split} is not the baseline's test set ({text.origin})")
    return runs, text


def load_splits(paths: list[Path], names: list[str], splits: list[str]) -> dict[str, tuple[list[Run], ParallelText]]:
    """`load_runs` for each split, in order; what is missing for any split is reported at once."""
    loaded, problems = {}, []
    for split in splits:
        try:
            loaded[split] = load_runs(paths, names, split)
        except RunError as e:
            problems.append(str(e))
    if problems:
        raise RunError("\n".join(problems))
    return loaded


def training_summary(records: list[dict]) -> dict[str, float]:
    """Totals over the logged epochs: wall-clock minutes, updates, target tokens per second of
    training (validation excluded) and padding efficiency weighted by each epoch's target tokens."""
    epochs = [r for r in records if r["event"] == "epoch"]
    if not epochs:
        return {"epochs": 0}
    tokens = sum(r["tgt_tokens"] for r in epochs)

    def weighted(key: str) -> float:
        return sum(r[key] * r["tgt_tokens"] for r in epochs) / max(tokens, 1)

    return {
        "epochs": len(epochs),
        "updates": epochs[-1]["update"],
        "minutes": epochs[-1]["elapsed"] / 60,
        "tgt_tokens": tokens,
        "tgt_tokens_per_s": tokens / max(sum(r["seconds"] for r in epochs), 1e-9),
        "padding_efficiency": weighted("padding_efficiency"),
        "src_padding_efficiency": weighted("src_padding_efficiency"),
        "tgt_padding_efficiency": weighted("tgt_padding_efficiency"),
        "best_valid_bleu": max(r["valid_bleu"] for r in epochs),
    }


def training_curves(records: list[dict]) -> tuple[list[Point], list[Point]]:
    """(training-loss points, validation points) against wall-clock time and target tokens.

    `train` records give the loss over the last `log_every` updates with their training seconds
    and target tokens, but no clock. Their wall-clock time is interpolated within the epoch: from
    when it began (the previous epoch's end plus its validation) to its end, in proportion to the
    training seconds spent so far. Tokens are exact: earlier epochs' totals plus this epoch's so far.
    """
    ends = {r["epoch"]: r for r in records if r["event"] == "epoch"}
    train: list[Point] = []
    valid: list[Point] = []
    began, seen = 0.0, 0  # wall clock and target tokens when the current epoch began
    epoch, spent, tokens = None, 0.0, 0  # training seconds and target tokens into the current epoch
    for r in records:
        if r["epoch"] != epoch:
            epoch, spent, tokens = r["epoch"], 0.0, 0
        if r["event"] == "train":
            spent, tokens = spent + r["seconds"], tokens + r["tgt_tokens"]
            clock = r.get("elapsed", _interpolate(began, spent, ends.get(epoch)))
            train.append(Point(clock, r.get("tgt_tokens_seen", seen + tokens), r["loss"]))
        elif r["event"] == "valid":
            valid.append(Point(r["elapsed"], r.get("tgt_tokens_seen", seen + tokens), r["valid_loss"]))
        elif r["event"] == "epoch":
            seen += r["tgt_tokens"]
            valid.append(Point(r["elapsed"], seen, r["valid_loss"], r["valid_bleu"]))
            began = r["elapsed"] + r.get("valid_seconds", 0.0)
    return train, valid


def _interpolate(began: float, spent: float, end: dict | None) -> float:
    if end is None or end["seconds"] <= 0:  # an epoch cut short before its record was written
        return began + spent
    return began + (end["elapsed"] - began) * min(spent / end["seconds"], 1.0)
