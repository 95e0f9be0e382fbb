"""What `train.patience: 5` would have done to runs trained without it (issue #36, session 22).

    python results/default_levers/patience/summarize.py LOG.jsonl [LOG.jsonl ...]

Patience only decides when a run stops: up to that epoch a run with patience 5 trains exactly the
updates of the same run without it (same seeds, same batches), so each log of a run without
patience also holds what patience 5 would have given: the epoch it would have stopped after (the
5th in a row without a better greedy validation BLEU than the best so far, as mtapp.trainer counts
them), its best greedy validation BLEU up to there, and the minutes it would have left unused.
Prints one markdown row per log and the mean loss of greedy validation BLEU.
"""

import json
import sys
from pathlib import Path

PATIENCE = 5


def epochs(log: Path) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == "epoch"]


def stop_epoch(bleus: list[float], patience: int = PATIENCE) -> int | None:
    """The 1-based epoch after which patience would stop the run, or None if it never would."""
    best, bad = float("-inf"), 0
    for epoch, bleu in enumerate(bleus, 1):
        best, bad = (bleu, 0) if bleu > best else (best, bad + 1)
        if bad >= patience:
            return epoch
    return None


def main() -> None:
    print("| run | epochs in the budget | best greedy val BLEU (epoch) | patience 5 stops after | its best |", end="")
    print(" minutes left unused |\n|---|---|---|---|---|---|")
    losses = []
    for log in map(Path, sys.argv[1:]):
        rows = epochs(log)
        bleus = [r["valid_bleu"] for r in rows]
        best = max(range(len(bleus)), key=bleus.__getitem__)
        stop = stop_epoch(bleus)
        kept = max(bleus[:stop]) if stop else bleus[best]
        unused = (rows[-1]["elapsed"] - rows[stop - 1]["elapsed"]) / 60 if stop else 0.0
        losses.append(bleus[best] - kept)
        where = f"epoch {stop}" if stop else "never"
        name = log.parent.name if log.name == "log.jsonl" else log.name.removesuffix(".log.jsonl")
        row = [name, len(rows), f"{bleus[best]:.2f} ({best + 1})", where, f"{kept:.2f}", f"{unused:.1f}"]
        print("| " + " | ".join(map(str, row)) + " |")
    print(f"\nmean greedy validation BLEU lost to patience 5: {sum(losses) / len(losses):.2f} over {len(losses)} runs")


if __name__ == "__main__":
    main()
