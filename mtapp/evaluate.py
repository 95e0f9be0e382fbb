"""`python -m mtapp.evaluate`: translate and score with sacreBLEU (BLEU, chrF, TER, lowercased BLEU).

    python -m mtapp.evaluate --run DIR [--split test_2016_flickr] [--beam 5]    a split of the run's corpus
    python -m mtapp.evaluate --run DIR --split all                              every test split present
    python -m mtapp.evaluate --run DIR --src FILE --ref FILE                    any test set
    python -m mtapp.evaluate --hyp FILE --ref FILE [--json FILE]                score existing output, no model

Prints the scores with their signatures; with a model, writes DIR/eval/<name>.json (name = the
split or the source file's name; <name>.<which>.json for --checkpoint DIR/checkpoint_<which>.pt
other than checkpoint_best.pt), or the file --json names, and the translations beside it (.hyp).
`--split all` scores every test split (test_*, and data.test_split) of the run's corpus for its
language pair whose files are present, each written as `--split SPLIT` writes it; it prints one
row per split, names on stderr the splits it could not score and how to get them, and writes
DIR/eval/all.json (or --json) with one entry per split.
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
from mtapp.data.corpora import ALL_TESTS, find_test_splits, read_lines
from mtapp.evaluation import score
from mtapp.translate import add_model_args, check_output, checkpoint_path, engine_of, load_translator, run_config
from mtapp.translator import Translator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.evaluate", description="Translate and score with sacreBLEU.")
    add_model_args(p, required=False)
    p.add_argument(
        "--split",
        help="split of the run's corpus (default: its data.test_split), or `all`: each of its test splits present",
    )
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
    if args.split == ALL_TESTS and (args.src or args.ref or args.hyp):
        p.error("--split all translates every test split of the run's corpus: drop --src/--ref/--hyp")
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
    if args.split == ALL_TESTS:
        return evaluate_all(args)
    name, sources, references = scored_set(args)
    translator = None if args.hyp else load_translator(args)
    result, hyps = evaluate_set(args, translator, name, sources, references)
    report(result)
    out = args.json or (None if args.hyp else eval_path(args, name))
    write(out, None if args.hyp else hyps, result)
    return 0


def evaluate_set(
    args: argparse.Namespace, translator: Translator | None, name: str, sources: list[str], references: list[str]
) -> tuple[dict, list[str]]:
    """(scores and settings, hypotheses) of one set: translated by `translator`, or read from --hyp."""
    result: dict = {"name": name}
    if translator is None:
        hyps = read_lines(args.hyp)
        result["hypotheses"] = str(args.hyp)
    else:
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
    return result | score(hyps, references), hyps


def evaluate_all(args: argparse.Namespace) -> int:
    """Every test split of the run's corpus whose files are present, each as `--split SPLIT`
    would score it (and written where it would be); then one row per split, and DIR/eval/all.json
    (or --json) with one entry per split."""
    data = run_config(args).data
    found = find_test_splits(data)
    for line in found.notes(data):
        print(line, file=sys.stderr)
    if not found.present:
        raise CorpusError(f"no test split of {data.corpus} {data.src_lang}-{data.tgt_lang} can be read: {found.fetch}")
    translator = load_translator(args)
    results = []
    for split in found.present:
        text = load_split(data, split)
        result, hyps = evaluate_set(args, translator, split, text.src, text.tgt)
        write(eval_path(args, split), hyps, result)
        results.append(result)
    report_splits(results)
    summary = {"splits": results, "missing": {s: [str(f) for f in files] for s, files in found.missing.items()}}
    write(args.json or eval_path(args, ALL_TESTS), None, summary | {"other_languages": found.other_languages})
    return 0


def report(result: dict) -> None:
    how = f"beam {result['beam']}, {result['translate_seconds']:.1f} s" if "beam" in result else "given output"
    print(f"{result['name']} ({result['num_sentences']} sentences, {how}):")
    print(f"  BLEU = {result['bleu']:.2f}   {result['bleu_signature']}")
    print(f"  chrF = {result['chrf']:.2f}   {result['chrf_signature']}")
    print(f"  TER  = {result['ter']:.2f}   {result['ter_signature']}")
    print(f"  BLEU = {result['bleu_lowercase']:.2f} lowercased   {result['bleu_lowercase_signature']}")
    print(f"  {result['bleu_detail']}")


def report_splits(results: list[dict]) -> None:
    """One row per split, then the signatures (the same for every split)."""
    width = max(len("split"), *(len(r["name"]) for r in results))
    print(f"{len(results)} test split(s), beam {results[0]['beam']}:")
    print(f"{'split':<{width}}  sentences   BLEU   chrF    TER  BLEU lowercased  seconds")
    for r in results:
        scores = f"{r['bleu']:6.2f} {r['chrf']:6.2f} {r['ter']:6.2f}  {r['bleu_lowercase']:15.2f}"
        print(f"{r['name']:<{width}}  {r['num_sentences']:9d} {scores}  {r['translate_seconds']:7.1f}")
    for label, key in (("BLEU", "bleu"), ("chrF", "chrf"), ("TER", "ter"), ("BLEU lowercased", "bleu_lowercase")):
        print(f"  {label}: {results[0][f'{key}_signature']}")


def eval_path(args: argparse.Namespace, name: str) -> Path:
    """Where results go by default: <run>/eval/<name>.json for the run's checkpoint_best.pt,
    <name>.<which>.json for another checkpoint (checkpoint_<which>.pt), so they never overwrite it."""
    checkpoint = checkpoint_path(args)
    which = checkpoint.stem.removeprefix("checkpoint_")
    out = checkpoint.parent / "eval" / (f"{name}.json" if which == "best" else f"{name}.{which}.json")
    out.parent.mkdir(exist_ok=True)
    return out


def write(out: Path | None, hyps: list[str] | None, result: dict) -> None:
    """The scores to `out` (if any), and the translations made here beside them (.hyp)."""
    if out is None:
        return
    if hyps is not None:
        out.with_suffix(".hyp").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    sys.exit(main())
