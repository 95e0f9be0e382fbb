"""Checkpoint averaging: the mean of the parameters of a run's last N epoch checkpoints.

With `train.average_last: N` training keeps `RUN/checkpoint_epochNN.pt` for its newest N epochs
(deleting older ones) and writes `RUN/checkpoint_avg.pt` when it ends; `python -m mtapp.average`
does the same for any run that kept them. The floating-point tensors of the model's state_dict
are averaged (summed in float64, then cast back: identical checkpoints average to themselves);
integer buffers, the config, the tokenizer, the optimizer and everything else are the newest
checkpoint's, so the result loads wherever a checkpoint does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mtapp import rundir
from mtapp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def keep_newest(run_dir: Path, n: int) -> None:
    """Delete all but the newest `n` epoch checkpoints."""
    for path in rundir.epoch_checkpoints(run_dir)[:-n]:
        path.unlink()


def average_last(run_dir: Path, n: int, out: Path | None = None) -> tuple[Path, list[Path]]:
    """Average the newest `n` epoch checkpoints of `run_dir` into `out` (default
    RUN/checkpoint_avg.pt); returns (out, the checkpoints averaged)."""
    run_dir = Path(run_dir)
    paths = rundir.epoch_checkpoints(run_dir)
    if not paths:
        raise CheckpointError(
            f"{run_dir} has no epoch checkpoints (checkpoint_epochNN.pt): training keeps them only with "
            "train.average_last: N (e.g. python -m mtapp.train --set train.average_last=5)"
        )
    if len(paths) < n:
        raise CheckpointError(
            f"{run_dir} holds {len(paths)} epoch checkpoint(s) ({', '.join(p.name for p in paths)}), fewer than "
            f"the {n} asked for: lower --last to at most {len(paths)}, or train with train.average_last >= {n}"
        )
    chosen = paths[-n:]
    out = out or rundir.checkpoint_file(run_dir, rundir.AVERAGE)
    content = average(chosen)
    save_checkpoint(out, {k: v for k, v in content.items() if k != "format"})
    return out, chosen


def average_newest(run_dir: Path, wanted: int) -> Path:
    """At the end of training: RUN/checkpoint_avg.pt, the mean of the newest `wanted` epoch
    checkpoints (of fewer, when training ended sooner)."""
    n = min(wanted, len(rundir.epoch_checkpoints(run_dir)))
    if n < wanted:
        log.warning("train.average_last=%d but training kept %d epoch checkpoint(s): averaging those", wanted, n)
    path, _ = average_last(run_dir, n)
    log.info("%s: the mean of the last %d epoch checkpoint(s)", path, n)
    return path


def average(paths: list[Path]) -> dict[str, Any]:
    """The newest (last) checkpoint of `paths` with its model's floating-point tensors replaced
    by their mean over all of them; read one at a time, summed in float64."""
    sums: dict[str, torch.Tensor] = {}
    for i, path in enumerate(paths):
        content = load_checkpoint(path)
        if i == 0:
            reference = content["config"]["model"], shapes(content), content["tokenizer"]
        else:
            check_same_model(paths[0], reference, path, content)
        for key, value in content["model"].items():
            if value.is_floating_point():
                sums[key] = sums[key] + value.double() if key in sums else value.double()
    newest = content["model"]
    model = {key: (sums[key] / len(paths)).to(value.dtype) if key in sums else value for key, value in newest.items()}
    return {**content, "model": model, "averaged": [path.name for path in paths]}


def shapes(content: dict) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in content["model"].items()}


def check_same_model(first: Path, reference: tuple, path: Path, content: dict) -> None:
    """CheckpointError unless `content` has the model settings, parameter shapes and tokenizer
    of `reference` (those of checkpoint `first`)."""
    settings, first_shapes, tokenizer = reference
    other = content["config"]["model"]
    keys = sorted(settings.keys() | other.keys())
    differ = [f"model.{k}: {settings.get(k)!r} vs {other.get(k)!r}" for k in keys if settings.get(k) != other.get(k)]
    if differ:
        raise CheckpointError(
            f"{first} and {path} differ in their model settings ({'; '.join(differ)}): only checkpoints of one "
            "model can be averaged (lower --last to stay within one run's epochs)"
        )
    if shapes(content) != first_shapes or not torch.equal(tokenizer, content["tokenizer"]):
        raise CheckpointError(
            f"{first} and {path} hold different parameter shapes or tokenizers: only checkpoints of one run can "
            "be averaged (lower --last to stay within one run's epochs)"
        )
