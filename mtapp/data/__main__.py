"""`python -m mtapp.data download|verify NAME [--split A,B] [--dir DIR]`: fetch or check a registered corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtapp.data.corpora import REGISTRY, CorpusError, RegisteredCorpus, data_dir, download_command
from mtapp.data.download import download, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtapp.data", description=__doc__)
    parser.add_argument("action", choices=["download", "verify"])
    parser.add_argument("corpus", choices=sorted(REGISTRY))
    parser.add_argument("--split", help="comma-separated splits (default: every split of the corpus)")
    parser.add_argument("--dir", default="", help="data directory (default: $MTAPP_DATA_DIR, else data/)")
    args = parser.parse_args(argv)
    corpus, root = REGISTRY[args.corpus], data_dir(args.dir)
    splits = args.split.split(",") if args.split else None
    unknown = [s for s in splits or [] if s not in corpus.splits]
    if unknown:
        parser.error(f"--split: {corpus.name} has no split {', '.join(unknown)} (splits: {', '.join(corpus.splits)})")
    try:
        if args.action == "download":
            folder = download(corpus, root, splits)
            print(f"{corpus.name}: all {len(corpus.files(splits))} files present and verified in {folder}")
            return 0
        bad = verify(corpus, root / corpus.name, splits)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if bad:
        report_bad(corpus, root, bad, args.dir)
        return 1
    print(f"{corpus.name}: all {len(corpus.files(splits))} files verified in {root / corpus.name}")
    return 0


def report_bad(corpus: RegisteredCorpus, root: Path, bad: list[str], dir_setting: str) -> None:
    """Name the missing and the damaged files apart, and the command that fetches them."""
    folder = root / corpus.name
    missing = [name for name in bad if not (folder / name).is_file()]
    damaged = [name for name in bad if name not in missing]
    if missing:
        print(f"{corpus.name}: missing in {folder}: {', '.join(missing)}", file=sys.stderr)
    if damaged:
        print(f"{corpus.name}: damaged (size or SHA-256 differ) in {folder}: {', '.join(damaged)}", file=sys.stderr)
    splits = list(dict.fromkeys(name.split(".")[0] for name in bad))
    print(f"fetch them with `{download_command(corpus.name, splits, dir_setting)}`", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
