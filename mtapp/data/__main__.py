"""`python -m mtapp.data download|verify NAME [--dir DIR]`: fetch or check a registered corpus."""

from __future__ import annotations

import argparse
import sys

from mtapp.data.corpora import REGISTRY, CorpusError, data_dir
from mtapp.data.download import download, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtapp.data", description=__doc__)
    parser.add_argument("action", choices=["download", "verify"])
    parser.add_argument("corpus", choices=sorted(REGISTRY))
    parser.add_argument("--dir", default="", help="data directory (default: $MTAPP_DATA_DIR, else data/)")
    args = parser.parse_args(argv)
    corpus, root = REGISTRY[args.corpus], data_dir(args.dir)
    try:
        if args.action == "download":
            folder = download(corpus, root)
            print(f"{corpus.name}: all {len(corpus.files())} files present and verified in {folder}")
            return 0
        bad = verify(corpus, root / corpus.name)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if bad:
        print(f"{corpus.name}: missing or damaged in {root / corpus.name}: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"{corpus.name}: all {len(corpus.files())} files verified in {root / corpus.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
