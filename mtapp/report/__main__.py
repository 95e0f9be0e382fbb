"""`python -m mtapp.report RUN [RUN ...] --out DIR`: report on one run, or compare several.

    python -m mtapp.report runs/transformer runs/lstm --out reports/de_en [--split test_2016_flickr]
        [--names a,b] [--seed 12345] [--resamples 1000] [--buckets 10,15,20,25] [--samples 3]

With several runs the first is the baseline and a significance section tests the others against
it; one run gets every other section. --split takes one split, a comma-separated list or `all`
(every test split of the baseline's corpus whose files are present): with more than one, a table
gives every run's scores on every split and the other sections are on the first. Each run needs
`eval/<split>.hyp` for each split (`python -m mtapp.evaluate --run RUN --split SPLIT`, or
`--split all`, writes it). Writes DIR/report.md with PNG plots beside it, DIR/report.html (one
self-contained file) and DIR/report.json (every number of the report).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from mtapp.config import ConfigError
from mtapp.data import CorpusError
from mtapp.data.corpora import ALL_TESTS, find_test_splits
from mtapp.report.compare import Options, compare, document, split_scores
from mtapp.report.runs import RunError, load_splits, read_config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m mtapp.report", description="Report on runs' translations.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories; the first is the baseline")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, report.html and the plots")
    p.add_argument(
        "--split",
        help="test split, comma-separated splits, or `all` (its test splits present) (default: the baseline's "
        "data.test_split)",
    )
    p.add_argument("--names", help="comma-separated system names (default: the run folders' names)")
    p.add_argument("--seed", type=int, default=12345, help="bootstrap seed, a positive integer (default 12345)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--buckets", type=bounds, default="10,15,20,25", help="source-length bucket upper bounds, in words")
    p.add_argument("--samples", type=int, default=3, help="sentences shown for each of best / median / worst")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else [r.name for r in args.runs]
    if len(names) != len(args.runs) or len(set(names)) != len(names):
        p.error("--names needs one distinct name per run (and run folders with the same name need --names)")
    if args.seed < 1 or args.resamples < 1:
        p.error("--seed and --resamples must be positive (sacrebleu treats seed 0 as unseeded)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    options = Options(
        seed=args.seed,
        resamples=args.resamples,
        bounds=args.buckets,
        samples=args.samples,
        command=shlex.join(["python", "-m", "mtapp.report", *argv]),
    )
    try:
        return report(args.runs, names, args.split, args.out, options)
    except (RunError, CorpusError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def bounds(text: str) -> tuple[int, ...]:
    """`10,15,20` -> (10, 15, 20): increasing positive word counts."""
    try:
        values = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of word counts") from None
    if values[0] < 1 or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(f"{text!r}: the bounds must be positive and increasing")
    return values


def report(paths: list[Path], names: list[str], split: str | None, out: Path, options: Options) -> int:
    splits = chosen_splits(split, paths[0])
    loaded = load_splits(paths, names, splits)
    runs, text = loaded[splits[0]]
    result = compare(runs, splits[0], text.src, text.tgt, options)
    if len(splits) > 1:
        result["splits"] = split_scores({s: (r, t.tgt) for s, (r, t) in loaded.items()})
    out.mkdir(parents=True, exist_ok=True)
    md, page = document(result, out).write(out)
    (out / "report.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_scores(result)
    print(f"written: {md}, {page}")
    return 0


def chosen_splits(split: str | None, baseline: Path) -> list[str]:
    """--split as a list; `all` is every test split of the baseline's corpus whose files are
    present (those left out are named on stderr)."""
    data = read_config(baseline).data
    if split is None:
        return [data.test_split]
    if split != ALL_TESTS:
        return split.split(",")
    found = find_test_splits(data)
    for line in found.notes(data):
        print(line, file=sys.stderr)
    if not found.present:
        raise RunError(f"--split all: no test split of {baseline}'s corpus ({data.corpus}) can be read; {found.fetch}")
    return found.present


def print_scores(result: dict) -> None:
    """One line per run: its scores (with bootstrap intervals and p-values when runs are
    compared), and with several splits its BLEU on each."""
    if result["significance"]:
        for row in result["significance"]["rows"]:
            print(f"{row['name']}: " + ", ".join(_cell(key, row[key]) for key in ("bleu", "chrf", "ter")))
    else:
        for s in result["systems"]:
            print(f"{s['name']}: " + ", ".join(f"{key} {s['scores'][key]:.2f}" for key in ("bleu", "chrf", "ter")))
    for s in result.get("splits", {}).get("systems", []):
        print(f"{s['name']}: BLEU " + ", ".join(f"{split} {sc['bleu']:.2f}" for split, sc in s["scores"].items()))


def _cell(metric: str, r: dict) -> str:
    p = "" if r["p"] is None else f" (p = {r['p']:.4f})"
    return f"{metric} {r['score']:.2f} ± {r['ci']:.2f}{p}"


if __name__ == "__main__":
    sys.exit(main())
