"""Token batches of 2,048 against 4,096 over every seed measured (issue #36, sessions 22-23).

    python results/default_levers/tokens_2048/pool.py BENCH_JSON [BENCH_JSON ...]

Each `bench train` JSON pairs its runs of 2,048 tokens with runs of 4,096 of the same seeds on the
same kind of CPU (its `paired` table: the variant's figures minus the first variant's, seed by seed).
A seed's difference is measured on one kind of CPU, so the pairs of several files (other seeds,
other CPUs) pool into one paired interval (mtapp.bench.intervals.mean_ci), which assumes one effect
on every CPU. Prints one markdown row per figure: each file's mean and the pooled interval.
"""

import json
import sys
from pathlib import Path

from mtapp.bench.intervals import mean_ci

FIGURES = ("valid_bleu_beam", "valid_chrf_beam", "valid_loss", "valid_bleu")


def pairs(path: Path) -> dict[str, list[float]]:
    """The per-seed differences of the file's paired table with max_tokens=2048 as the variant."""
    paired = [p for p in json.loads(path.read_text())["paired"] if p["variant"].endswith("max_tokens=2048")]
    if len(paired) != 1:
        sys.exit(f"{path}: no paired table of max_tokens=2048 (bench train --vary batching.max_tokens=...)")
    return {figure: paired[0][figure]["values"] for figure in FIGURES if figure in paired[0]}


def main(paths: list[Path]) -> None:
    tables = [pairs(p) for p in paths]
    print("| figure | " + " | ".join(p.parent.name for p in paths) + " | pooled (n) [95%] |")
    print("|---|" + "---|" * (len(paths) + 1))
    for figure in FIGURES:
        if not all(figure in t for t in tables):
            continue
        pooled = mean_ci([v for t in tables for v in t[figure]])
        each = " | ".join(f"{sum(t[figure]) / len(t[figure]):+.3f}" for t in tables)
        interval = f"[{pooled['low']:+.3f}, {pooled['high']:+.3f}]"
        print(f"| {figure} | {each} | {pooled['mean']:+.3f} ({pooled['n']}) {interval} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(a) for a in sys.argv[1:]])
