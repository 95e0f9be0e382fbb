"""`python -m mtapp.evaluate`: translate a split and score it with sacreBLEU (BLEU, chrF).

    python -m mtapp.evaluate --run DIR [--split test_2016_flickr] [--beam 5]

Prints the scores with their signatures and writes DIR/eval/<split>.json and <split>.hyp.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from mtapp.checkpoint import CheckpointError, load_checkpoint
from mtapp.config import ConfigError, config_from_dict
from mtapp.data import CorpusError, load_split
from mtapp.evaluation import score
from mtapp.translate import add_model_args, load_translator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.evaluate", description="Score a model on a corpus split.")
    add_model_args(p)
    p.add_argument("--split", help="split of the run's corpus (default: its data.test_split)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.run is None and args.checkpoint is None:
        p.error("give --run or --checkpoint")
    try:
        return evaluate(args)
    except (CheckpointError, CorpusError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def evaluate(args: argparse.Namespace) -> int:
    path = args.checkpoint or args.run / "checkpoint_best.pt"
    cfg = config_from_dict(load_checkpoint(path)["config"])
    split = args.split or cfg.data.test_split
    text = load_split(cfg.data, split)
    translator = load_translator(args)
    started = time.monotonic()
    hyps = translator.translate(text.src, progress=True)
    seconds = time.monotonic() - started
    result = {
        "split": split,
        "pair": f"{cfg.data.src_lang}-{cfg.data.tgt_lang}",
        "checkpoint": str(path),
        "beam": translator.decode.beam,
        "length_penalty": translator.decode.length_penalty,
        **score(hyps, text.tgt),
        "translate_seconds": round(seconds, 2),
        "sentences_per_second": round(len(hyps) / seconds, 1),
    }
    out_dir = path.parent / "eval"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{split}.hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    (out_dir / f"{split}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['pair']} {split} ({len(hyps)} sentences, beam {result['beam']}, {seconds:.1f} s):")
    print(f"  BLEU = {result['bleu']:.2f}   {result['bleu_signature']}")
    print(f"  chrF = {result['chrf']:.2f}   {result['chrf_signature']}")
    print(f"  {result['bleu_detail']}")
    print(f"written: {out_dir / (split + '.json')}, {out_dir / (split + '.hyp')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
