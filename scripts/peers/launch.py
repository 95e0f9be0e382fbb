"""Train a peer toolkit for a wall-clock budget, inside the peer's own virtual environment.

    <peer venv>/bin/python launch.py {opennmt,joeynmt} SECONDS SUMMARY.json -- <toolkit arguments>

The clock starts when the first training batch is ready (start-up, vocabulary and data loading
are not counted, as mtapp's `train.max_minutes` counts from its first update), and training
stops the toolkit's own way when the budget is spent, so that it saves its checkpoint as usual:
OpenNMT-py's batch stream ends, as when its data runs out; JoeyNMT gets the KeyboardInterrupt
it handles by saving one. Nothing else of the toolkits is changed.

SUMMARY.json receives the toolkit's own count of real target tokens trained on (target side
after the shift: pieces + eos, pads excluded — what mtapp counts too), the updates made, the
seconds from the first batch to the stop and torch's intra-op thread count.

Runs with the peer's Python: standard library and the toolkit only, never mtapp.
"""

from __future__ import annotations

import json
import sys
import time


class Budget:
    """Wall-clock budget whose clock starts at the first `expired()` call (the first batch)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None
        self.stopped: float | None = None

    def expired(self) -> bool:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now - self.started >= self.seconds:
            self.stopped = self.stopped or now
            return True
        return False

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.stopped or time.monotonic()) - self.started


def run_opennmt(budget: Budget, argv: list[str], summary: dict) -> None:
    import onmt.trainer
    from onmt.bin.train import main

    accum_batches, train = onmt.trainer.Trainer._accum_batches, onmt.trainer.Trainer.train

    def budgeted_batches(self, iterator):
        for item in accum_batches(self, iterator):
            if budget.expired():
                return
            yield item

    def counted_train(self, *args, **kwargs):
        stats = train(self, *args, **kwargs)  # total statistics of the whole run
        summary.update(tgt_tokens=int(stats.n_words), updates=int(self.optim.training_step) - 1)
        return stats

    onmt.trainer.Trainer._accum_batches = budgeted_batches
    onmt.trainer.Trainer.train = counted_train
    sys.argv = ["onmt_train", *argv]
    main()


def run_joeynmt(budget: Budget, argv: list[str], summary: dict) -> None:
    import joeynmt.training
    from joeynmt.__main__ import main

    manager = joeynmt.training.TrainManager
    train_step, train_and_validate = manager._train_step, manager.train_and_validate

    def budgeted_step(self, batch):
        if budget.expired():
            raise KeyboardInterrupt  # JoeyNMT catches it, saves a checkpoint and returns
        return train_step(self, batch)

    def counted_training(self, *args, **kwargs):
        try:
            return train_and_validate(self, *args, **kwargs)
        finally:
            summary.update(tgt_tokens=int(self.stats.total_tokens), updates=int(self.stats.steps))

    manager._train_step = budgeted_step
    manager.train_and_validate = counted_training
    sys.argv = ["joeynmt", *argv]
    main()


def threads() -> int | None:
    """The intra-op threads torch computed with (it is imported by the toolkit by now)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


TOOLKITS = {"opennmt": run_opennmt, "joeynmt": run_joeynmt}


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[1] not in TOOLKITS or sys.argv[4] != "--":
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    budget, path, summary = Budget(float(sys.argv[2])), sys.argv[3], {}
    try:
        TOOLKITS[sys.argv[1]](budget, sys.argv[5:], summary)
    finally:
        summary["seconds"] = budget.elapsed()
        summary["threads"] = threads()
        with open(path, "w", encoding="utf-8") as f:
            json.dump(summary, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
