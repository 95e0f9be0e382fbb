"""The averaging lever's table in docs/results.md: each seed's validation BLEU (beam 5) of the best
epoch, the last 5 averaged and the last epoch, and the paired 95% intervals of the differences.

    python results/default_levers/averaging/summarize.py [FOLDER]   # default: this script's folder

Reads FOLDER/eval/seed*/val.json (checkpoint_best.pt), val.avg.json and val.epochNN.json (the
last epoch), as `python -m mtapp.evaluate --checkpoint ... --split val` wrote them.
"""

import json
import sys
from pathlib import Path

from mtapp.bench.intervals import difference_ci, mean_ci

KINDS = ("best", "avg", "last")


def scores(seed: Path) -> dict[str, dict]:
    last = max(seed.glob("val.epoch*.json"), key=lambda p: int(p.stem.removeprefix("val.epoch")))
    files = {"best": seed / "val.json", "avg": seed / "val.avg.json", "last": last}
    return {kind: json.loads(path.read_text()) for kind, path in files.items()}


def text(interval: dict, spec: str = "+.2f") -> str:
    return f"{interval['mean']:{spec}} [{interval['low']:{spec}}, {interval['high']:{spec}}]"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    seeds = sorted((folder / "eval").glob("seed*"))
    runs = [scores(seed) for seed in seeds]
    print("| seed | best epoch | last 5 averaged | last epoch |\n|---|---|---|---|")
    for seed, run in zip(seeds, runs):
        print(f"| {seed.name.removeprefix('seed')} | " + " | ".join(f"{run[k]['bleu']:.2f}" for k in KINDS) + " |")
    for kind in KINDS:
        print(f"{kind}: {text(mean_ci([run[kind]['bleu'] for run in runs]), '.2f')}")
    for other in ("best", "last"):
        for metric in ("bleu", "chrf"):
            a, b = [run["avg"][metric] for run in runs], [run[other][metric] for run in runs]
            print(f"averaged - {other} epoch, {metric}: {text(difference_ci(a, b))}")


if __name__ == "__main__":
    main()
