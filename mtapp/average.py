"""`python -m mtapp.average RUN [--last N] [--out FILE]`: average a run's last N epoch checkpoints.

Writes RUN/checkpoint_avg.pt (or --out): the mean of the parameters of the newest N
RUN/checkpoint_epochNN.pt, everything else taken from the newest (see `mtapp.averaging`). A run
keeps epoch checkpoints only when trained with `train.average_last: N`, which also writes
checkpoint_avg.pt when training ends. Score it with
`python -m mtapp.evaluate --checkpoint RUN/checkpoint_avg.pt` (results go to RUN/eval/<split>.avg.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtapp import rundir
from mtapp.averaging import average_last
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.average", description="Average a run's last epoch checkpoints.")
    p.add_argument("run", type=Path, metavar="RUN", help="run directory holding checkpoint_epochNN.pt files")
    p.add_argument(
        "--last", type=int, help="how many of the newest epoch checkpoints (default: the run's train.average_last)"
    )
    p.add_argument("--out", type=Path, help="the averaged checkpoint (default: RUN/checkpoint_avg.pt)")
    args = p.parse_args(argv)
    if args.last is not None and args.last < 1:
        p.error(f"--last {args.last}: average at least 1 checkpoint")
    if not args.run.is_dir():
        p.error(f"RUN {args.run} is not a directory: name a run directory written by python -m mtapp.train")
    try:
        rundir.check_output(args.out, "--out")
        out, averaged = average_last(args.run, args.last or configured_last(args.run), args.out)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"written: {out}, the mean of {', '.join(path.name for path in averaged)}")
    return 0


def configured_last(run: Path) -> int:
    """The run's train.average_last (from RUN/config.yaml); ConfigError when it is 0 or unknown."""
    path = rundir.config_file(run)
    last = rundir.read_config(run).train.average_last if path.is_file() else 0
    if last < 1:
        where = f"{path} has train.average_last: 0" if path.is_file() else f"{run} has no {path.name}"
        raise ConfigError(f"give --last N: {where}, so there is no default number of checkpoints to average")
    return last


if __name__ == "__main__":
    sys.exit(main())
