"""`python -m mtapp.evaluate`: translate and score with sacreBLEU (BLEU, chrF, TER, lowercased BLEU,
and BLEU as the Multi30k papers score it: lowercased and Moses-tokenized; see mtapp/scoring.py).

    python -m mtapp.evaluate --run DIR [--split test_2016_flickr] [--beam 5]    a split of the run's corpus
    python -m mtapp.evaluate --run DIR --split all                              every test split present
    python -m mtapp.evaluate --run DIR --src FILE --ref FILE                    any test set
    python -m mtapp.evaluate --hyp FILE --ref FILE [--json FILE]                score existing output, no model
    python -m mtapp.evaluate --run DIR --tune length_penalty [--grid 0.6,0.8,1.0,1.2,1.4] [--split val]

Prints the scores with their signatures; with a model, writes DIR/eval/<name>.json (name = the
split or the source file's name; <name>.<which>.json for --checkpoint DIR/checkpoint_<which>.pt
other than checkpoint_best.pt), or the file --json names, and the translations beside it (.hyp).
`--split all` scores every test split (test_*, and data.test_split) of the run's corpus for its
language pair whose files are present, each written as `--split SPLIT` writes it; it prints one
row per split, names on stderr the splits it could not score and how to get them, and writes
DIR/eval/all.json (or --json) with one entry per split.

`--tune SETTING` (length_penalty, min_len or max_len_a) translates the validation split
(data.valid_split, or --split) once per --grid value of decode.SETTING, every other decode
setting as it would be without --tune (the run's, or the flags'), and prints one row per value:
BLEU, its brevity penalty and length ratio, chrF; the best by BLEU (the first on a tie) marked,
with how to use it. It writes DIR/eval/tune_SETTING_SPLIT.json (or --json) with every row. It
refuses a test split (test_*, or data.test_split): a value tuned on a test set makes that test
set's scores optimistic.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from mtapp import inference, rundir
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError, DataConfig, DecodeConfig, decode_with
from mtapp.ct2 import ExportError
from mtapp.data import CorpusError, load_split
from mtapp.data.corpora import ALL_TESTS, find_test_splits, read_lines
from mtapp.inference import DECODE_FLAGS, LoadedModel
from mtapp.scoring import score

# decode.* settings --tune searches, each with the --grid it tries by default
TUNE_GRIDS = {"length_penalty": "0.6,0.8,1.0,1.2,1.4", "min_len": "0,1,2,3,4", "max_len_a": "1.0,1.2,1.5,2.0"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.evaluate", description="Translate and score with sacreBLEU.")
    inference.add_model_args(p, required=False)
    p.add_argument(
        "--split",
        help="split of the run's corpus (default: its data.test_split; with --tune, its data.valid_split), "
        "or `all`: each of its test splits present",
    )
    p.add_argument("--src", type=Path, help="source file to translate (with --ref) instead of a split")
    p.add_argument("--ref", type=Path, help="reference file (with --src or --hyp)")
    p.add_argument("--hyp", type=Path, help="score this existing output instead of translating")
    p.add_argument("--json", type=Path, help="write the scores here (default: <run>/eval/<name>.json)")
    p.add_argument(
        "--tune",
        choices=list(TUNE_GRIDS),
        help="translate the validation split once per --grid value of this decode setting and show which scores best",
    )
    p.add_argument(
        "--grid",
        help="--tune: comma-separated values to try (default: "
        + "; ".join(f"{setting} {grid}" for setting, grid in TUNE_GRIDS.items())
        + ")",
    )
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
    if args.tune and (args.src or args.ref or args.hyp):
        p.error("--tune translates a split of the run's corpus (default: its data.valid_split): drop --src/--ref/--hyp")
    if args.grid is not None and not args.tune:
        p.error("--grid goes with --tune SETTING (the decode setting whose values it lists)")
    try:
        return evaluate(args)
    except (CheckpointError, CorpusError, ConfigError, ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def scored_set(args: argparse.Namespace, model: LoadedModel | None) -> tuple[str, list[str], list[str]]:
    """(name, sources, references) of what is scored; sources are empty when only --hyp is given."""
    if args.ref:
        sources = read_lines(args.src) if args.src else []
        return (args.src or args.ref).name, sources, read_lines(args.ref)
    data = model.config.data if model else inference.load_config(args).data
    split = args.split or data.test_split
    text = load_split(data, split)
    return split, text.src, text.tgt


def evaluate(args: argparse.Namespace) -> int:
    rundir.check_output(args.json, "--json")
    model = None if args.hyp else inference.load(args)  # the model, read once
    if args.tune:
        return evaluate_tune(args, model)
    if args.split == ALL_TESTS:
        return evaluate_all(args, model)
    name, sources, references = scored_set(args, model)
    result, hyps = evaluate_set(args, model, name, sources, references)
    report(result)
    out = args.json or (None if args.hyp else eval_path(args, name))
    write(out, None if args.hyp else hyps, result)
    return 0


def evaluate_set(
    args: argparse.Namespace,
    model: LoadedModel | None,
    name: str,
    sources: list[str],
    references: list[str],
    decode: DecodeConfig | None = None,
) -> tuple[dict, list[str]]:
    """(scores and settings, hypotheses) of one set: translated by `model` (with `decode`, if
    given), or read from --hyp."""
    result: dict = {"name": name}
    if model is None:
        hyps = read_lines(args.hyp)
        result["hypotheses"] = str(args.hyp)
    else:
        translator = model.translator.with_decode(decode) if decode else model.translator
        if not args.src:  # a registered split is one sentence per line: translated as it is
            translator = translator.with_sentences(False)
        started = time.monotonic()
        hyps = translator.translate(sources, progress=True)
        seconds = time.monotonic() - started
        result |= {
            "checkpoint": str(args.run if model.engine == "ctranslate2" else inference.checkpoint_path(args)),
            "engine": model.engine,
            "quantize": args.quantize,
            "beam": translator.decode.beam,
            "length_penalty": translator.decode.length_penalty,
            "max_len_a": translator.decode.max_len_a,
            "max_len_b": translator.decode.max_len_b,
            "min_len": translator.decode.min_len,
            "split_sentences": translator.sentences is not None,
            "translate_seconds": round(seconds, 2),
            "sentences_per_second": round(len(hyps) / seconds, 1),
        }
    if len(hyps) != len(references):
        given = f"--hyp {args.hyp}" if args.hyp else f"--src {args.src}"
        raise ValueError(
            f"{given} has {len(hyps)} line(s) but {'--ref ' + str(args.ref) if args.ref else 'split ' + name} has "
            f"{len(references)}: the files must be line-aligned (one line per sentence)"
        )
    return result | score(hyps, references, target_lang(args, model)), hyps


def target_lang(args: argparse.Namespace, model: LoadedModel | None) -> str | None:
    """The language the references are in, for the papers' BLEU (Moses tokenizes per language):
    the model's; with --hyp, the run's config.yaml (its checkpoint only where that is missing);
    None without a run (that score is then left out)."""
    if model is not None:
        return model.config.data.tgt_lang
    if args.run and rundir.config_file(args.run).is_file():
        return rundir.read_config(args.run).data.tgt_lang
    return inference.load_config(args).data.tgt_lang if args.run or args.checkpoint else None


def evaluate_all(args: argparse.Namespace, model: LoadedModel) -> int:
    """Every test split of the run's corpus whose files are present, each as `--split SPLIT`
    would score it (and written where it would be); then one row per split, and DIR/eval/all.json
    (or --json) with one entry per split."""
    data = model.config.data
    found = find_test_splits(data)
    for line in found.notes(data):
        print(line, file=sys.stderr)
    if not found.present:
        raise CorpusError(f"no test split of {data.corpus} {data.src_lang}-{data.tgt_lang} can be read: {found.fetch}")
    results = []
    for split in found.present:
        text = load_split(data, split)
        result, hyps = evaluate_set(args, model, split, text.src, text.tgt)
        write(eval_path(args, split), hyps, result)
        results.append(result)
    report_splits(results)
    summary = {"splits": results, "missing": {s: [str(f) for f in files] for s, files in found.missing.items()}}
    write(args.json or eval_path(args, ALL_TESTS), None, summary | {"other_languages": found.other_languages})
    return 0


def evaluate_tune(args: argparse.Namespace, model: LoadedModel) -> int:
    """The validation split translated once per --grid value of decode.<--tune>, each scored as
    `--split SPLIT --<setting> VALUE` would score it; one row per value, the best by BLEU marked,
    and DIR/eval/tune_<setting>_<split>.json (or --json) with every row."""
    setting, data, translator = args.tune, model.config.data, model.translator
    split = tune_split(args.split or data.valid_split, data)
    text = load_split(data, split)
    if setting == "length_penalty" and translator.decode.beam == 1:
        raise ConfigError(
            "--tune length_penalty with beam 1: greedy search does not use the length penalty, every value would "
            "translate alike; tune it with the beam you translate with (--beam N, N > 1)"
        )
    decodes = grid_decodes(translator.decode, setting, args.grid or TUNE_GRIDS[setting])
    rows = [evaluate_set(args, model, split, text.src, text.tgt, d)[0] for d in decodes]
    best = max(rows, key=lambda r: r["bleu"])  # max keeps the first of equals: the grid's order breaks ties
    report_tune(setting, rows, best)
    signatures = {key: rows[0][key] for key in ("bleu_signature", "chrf_signature")}
    summary = {"setting": setting, "split": split, "grid": [r[setting] for r in rows], "best": best[setting]}
    write(args.json or eval_path(args, f"tune_{setting}_{split}"), None, summary | signatures | {"rows": rows})
    flag, value = DECODE_FLAGS[setting], best[setting]
    passed = {f: getattr(args, k, None) for k, f in DECODE_FLAGS.items() if k != setting}  # evaluate has no --nbest
    given = "".join(f" {f} {v}" for f, v in passed.items() if v is not None)
    model = f"--run {args.run}" if args.run else f"--checkpoint {args.checkpoint}"
    print(
        f"to use it: set decode.{setting}: {value} in the config, or pass {flag} {value} to translate and evaluate "
        f"(score the test split with it once: python -m mtapp.evaluate {model}{given} {flag} {value})"
    )
    return 0


def tune_split(split: str, data: DataConfig) -> str:
    """`split`, unless it is a test split (test_*, data.test_split, or `all` of them)."""
    if split == ALL_TESTS or split.startswith("test") or split == data.test_split:
        what = "`all` is every test split" if split == ALL_TESTS else f"{split} is a test split"
        raise ConfigError(
            f"--tune with --split {split}: {what}; never tune on a test split (the value would be fitted to the "
            f"sentences it is then scored on). Tune on the validation split: --split {data.valid_split} (the default)"
        )
    return split


def grid_decodes(decode: DecodeConfig, setting: str, grid: str) -> list[DecodeConfig]:
    """`decode` with decode.<setting> set to each value of `grid` ("0.6,0.8,..."), each checked
    as the decode.* key is; an error names --grid."""
    values = [v.strip() for v in grid.split(",")]
    if not all(values):
        raise ConfigError(f"--grid {grid!r}: give comma-separated values, e.g. --grid {TUNE_GRIDS[setting]}")
    return [decode_with(decode, {setting: grid_value(v)}, {setting: "--grid"}) for v in values]


def grid_value(text: str) -> int | float | str:
    """A --grid value as a number (int if it reads as one), or the text itself for the decode.*
    check to refuse by its type."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if not math.isfinite(value):
            raise ConfigError(f"--grid {text}: give finite numbers")
        return value
    return text


def report_tune(setting: str, rows: list[dict], best: dict) -> None:
    """One row per grid value, the best marked, then the signatures (the same for every row)."""
    first = rows[0]
    fixed = ", ".join(f"{k} {first[k]}" for k in ("beam", *TUNE_GRIDS, "max_len_b") if k != setting)
    print(f"tune {setting} on {first['name']} ({first['num_sentences']} sentences; {fixed}):")
    width = max(len(setting), 5)
    print(f"{setting:>{width}}    BLEU     BP  ratio    chrF")
    for r in rows:
        mark = "  <- best" if r is best else ""
        print(
            f"{r[setting]!s:>{width}}  {r['bleu']:6.2f}  {r['bleu_bp']:5.3f}  {r['bleu_length_ratio']:5.3f}  "
            f"{r['chrf']:6.2f}{mark}"
        )
    print(f"  BLEU: {first['bleu_signature']}")
    print(f"  chrF: {first['chrf_signature']}")
    print(f"best {setting} on {first['name']}: {best[setting]} (BLEU {best['bleu']:.2f}, BP {best['bleu_bp']:.3f})")


def report(result: dict) -> None:
    how = f"beam {result['beam']}, {result['translate_seconds']:.1f} s" if "beam" in result else "given output"
    print(f"{result['name']} ({result['num_sentences']} sentences, {how}):")
    print(f"  BLEU = {result['bleu']:.2f}   {result['bleu_signature']}")
    print(f"  chrF = {result['chrf']:.2f}   {result['chrf_signature']}")
    print(f"  TER  = {result['ter']:.2f}   {result['ter_signature']}")
    print(f"  BLEU = {result['bleu_lowercase']:.2f} lowercased   {result['bleu_lowercase_signature']}")
    if "bleu_tok_lc" in result:
        papers = f"{result['bleu_tok_lc']:.2f} as the Multi30k papers score it"
        print(f"  BLEU = {papers}   {result['bleu_tok_lc_signature']}")
    print(f"  {result['bleu_detail']}")


def report_splits(results: list[dict]) -> None:
    """One row per split, then the signatures (the same for every split)."""
    width = max(len("split"), *(len(r["name"]) for r in results))
    print(f"{len(results)} test split(s), beam {results[0]['beam']}:")
    print(f"{'split':<{width}}  sentences   BLEU   chrF    TER  BLEU lowercased  BLEU papers  seconds")
    for r in results:
        scores = f"{r['bleu']:6.2f} {r['chrf']:6.2f} {r['ter']:6.2f}  {r['bleu_lowercase']:15.2f}"
        scores += f"  {r['bleu_tok_lc']:11.2f}"
        print(f"{r['name']:<{width}}  {r['num_sentences']:9d} {scores}  {r['translate_seconds']:7.1f}")
    labels = (("BLEU", "bleu"), ("chrF", "chrf"), ("TER", "ter"), ("BLEU lowercased", "bleu_lowercase"))
    for label, key in (*labels, ("BLEU papers (lowercased, Moses-tokenized)", "bleu_tok_lc")):
        print(f"  {label}: {results[0][f'{key}_signature']}")


def eval_path(args: argparse.Namespace, name: str) -> Path:
    """Where results go by default: <run>/eval/<name>.json for the run's checkpoint_best.pt,
    <name>.<which>.json for another checkpoint (checkpoint_<which>.pt), so they never overwrite it."""
    checkpoint = inference.checkpoint_path(args)
    out = rundir.eval_file(checkpoint.parent, name, rundir.checkpoint_which(checkpoint))
    out.parent.mkdir(exist_ok=True)
    return out


def write(out: Path | None, hyps: list[str] | None, result: dict) -> None:
    """The scores to `out` (if any), and the translations made here beside them (.hyp)."""
    if out is None:
        return
    rundir.write_eval(out, result, hyps)
    print(f"written: {out}")


if __name__ == "__main__":
    sys.exit(main())
