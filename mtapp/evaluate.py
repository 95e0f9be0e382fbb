"""`python -m mtapp.evaluate`: translate and score with sacreBLEU (BLEU, chrF, TER, lowercased BLEU).

    python -m mtapp.evaluate --run DIR [--split test_2016_flickr] [--beam 5]    a split of the run's corpus
    python -m mtapp.evaluate --run DIR --src FILE --ref FILE                    any test set
    python -m mtapp.evaluate --hyp FILE --ref FILE [--json FILE]                score existing output, no model

Prints the scores with their signatures; with a model, writes DIR/eval/<name>.json (name = the
split or the source file's name), or the file --json names, and the translations beside it (.hyp).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.ct2 import ExportError
from mtapp.data import CorpusError, load_split
from mtapp.data.corpora import read_lines
from mtapp.evaluation import score
from mtapp.translate import add_model_args, check_output, checkpoint_path, engine_of, load_translator, run_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.evaluate", description="Translate and score with sacreBLEU.")
    add_model_args(p, required=False)
    p.add_argument("--split", help="split of the run's corpus (default: its data.test_split)")
    p.add_argument("--src", type=Path, help="source file to translate (with --ref) instead of a split")
    p.add_argument("--ref", type=Path, help="reference file (with --src or --hyp)")
    p.add_argument("--hyp", type=Path, help="score this existing output instead of translating")
    p.add_argument("--json", type=Path, help="write the scores here (default: <run>/eval/<name>.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    has_model = args.run is not None or args.checkpoint is not None
    if args.hyp and not (args.ref or has_model):
        p.error("--hyp needs --ref (or --run/--checkpoint to take the references of a split)")
    if not args.hyp and not has_model:
        p.error("give --run or --checkpoint (or --hyp with --ref to score existing output)")
    if bool(args.src) != bool(args.ref) and not args.hyp:
        p.error("--src and --ref go together")
    try:
        return evaluate(args)
    except (CheckpointError, CorpusError, ConfigError, ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def scored_set(args: argparse.Namespace) -> tuple[str, list[str], list[str]]:
    """(name, sources, references) of what is scored; sources are empty when only --hyp is given."""
    if args.ref:
        sources = read_lines(args.src) if args.src else []
        return (args.src or args.ref).name, sources, read_lines(args.ref)
    cfg = run_config(args)
    split = args.split or cfg.data.test_split
    text = load_split(cfg.data, split)
    return split, text.src, text.tgt


def evaluate(args: argparse.Namespace) -> int:
    check_output(args.json, "--json")
    name, sources, references = scored_set(args)
    result: dict = {"name": name}
    if args.hyp:
        hyps = read_lines(args.hyp)
        result["hypotheses"] = str(args.hyp)
    else:
        translator = load_translator(args)
        started = time.monotonic()
        hyps = translator.translate(sources, progress=True)
        seconds = time.monotonic() - started
        result |= {
            "checkpoint": str(args.run if engine_of(args) == "ctranslate2" else checkpoint_path(args)),
            "engine": engine_of(args),
            "quantize": args.quantize,
            "beam": translator.decode.beam,
            "length_penalty": translator.decode.length_penalty,
            "max_len_a": translator.decode.max_len_a,
            "max_len_b": translator.decode.max_len_b,
            "min_len": translator.decode.min_len,
            "translate_seconds": round(seconds, 2),
            "sentences_per_second": round(len(hyps) / seconds, 1),
        }
    if len(hyps) != len(references):
        given = f"--hyp {args.hyp}" if args.hyp else f"--src {args.src}"
        raise ValueError(
            f"{given} has {len(hyps)} line(s) but {'--ref ' + str(args.ref) if args.ref else 'split ' + name} has "
            f"{len(references)}: the files must be line-aligned (one line per sentence)"
        )
    result |= score(hyps, references)
    report(result)
    write(args, name, hyps, result)
    return 0


def report(result: dict) -> None:
    how = f"beam {result['beam']}, {result['translate_seconds']:.1f} s" if "beam" in result else "given output"
    print(f"{result['name']} ({result['num_sentences']} sentences, {how}):")
    print(f"  BLEU = {result['bleu']:.2f}   {result['bleu_signature']}")
    print(f"  chrF = {result['chrf']:.2f}   {result['chrf_signature']}")
    print(f"  TER  = {result['ter']:.2f}   {result['ter_signature']}")
    print(f"  BLEU = {result['bleu_lowercase']:.2f} lowercased   {result['bleu_lowercase_signature']}")
    print(f"  {result['bleu_detail']}")


def write(args: argparse.Namespace, name: str, hyps: list[str], result: dict) -> None:
    out = args.json
    if out is None and not args.hyp:
        out = checkpoint_path(args).parent / "eval" / f"{name}.json"
        out.parent.mkdir(exist_ok=True)
    if not args.hyp:  # translated here: the translations, beside their scores
        out.with_suffix(".hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {out}")


if __name__ == "__main__":
    sys.exit(main())
