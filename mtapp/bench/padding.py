"""`python -m mtapp.bench padding`: how much of each strategy's batches is padding (no model).

    python -m mtapp.bench padding --corpus multi30k --pair de-en [--max-tokens 4096]
        [--batch-size 128] [--json FILE]

The training split is tokenized with the default config's joint SentencePiece model (cached),
then every strategy plans epoch 1 from the length arrays. Efficiency = real tokens / padded
token slots (eos / bos included), per side and together.
"""

from __future__ import annotations

import argparse
import json
import time
import typing
from dataclasses import replace
from pathlib import Path

from mtapp.batching import build_strategy
from mtapp.config import DEFAULT_CONFIG, BatchingConfig, load_config
from mtapp.data import encode, filter_for_training, load_split, train_tokenizer

STRATEGIES = typing.get_args(typing.get_type_hints(BatchingConfig)["strategy"])


def measure(cfg: BatchingConfig, src_lengths, tgt_lengths) -> dict[str, dict[str, float]]:
    results = {}
    for name in STRATEGIES:
        started = time.monotonic()
        results[name] = build_strategy(replace(cfg, strategy=name), src_lengths, tgt_lengths).efficiency(1)
        results[name]["plan_seconds"] = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench padding", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="multi30k")
    p.add_argument("--pair", default="de-en", help="source-target languages")
    p.add_argument("--max-tokens", type=int, default=4096, help="budget of tokens and packed_rows")
    p.add_argument("--batch-size", type=int, default=128, help="sentences per batch of global, random, sorted")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    src_lang, _, tgt_lang = args.pair.partition("-")
    started = time.monotonic()
    cfg = load_config(
        DEFAULT_CONFIG,
        [
            f"data.corpus={args.corpus}",
            f"data.src_lang={src_lang}",
            f"data.tgt_lang={tgt_lang}",
            f"batching.max_tokens={args.max_tokens}",
            f"batching.batch_size={args.batch_size}",
        ],
    )
    text = load_split(cfg.data, cfg.data.train_split)
    tokenizer = train_tokenizer(text, cfg.tokenizer, Path(cfg.data.cache_dir))
    corpus, _ = filter_for_training(encode(text, tokenizer, Path(cfg.data.cache_dir)), cfg.data)
    results = measure(cfg.batching, corpus.src_lengths, corpus.tgt_lengths)
    print(
        f"{args.corpus} {args.pair} train: {len(corpus)} pairs; max_tokens {args.max_tokens}, "
        f"batch_size {args.batch_size}, row_tokens {cfg.batching.row_tokens}"
    )
    print(f"{'strategy':12} {'efficiency':>10} {'source':>8} {'target':>8} {'batches':>8} {'sentences/batch':>16}")
    for name, r in results.items():
        print(
            f"{name:12} {r['efficiency']:10.3f} {r['src_efficiency']:8.3f} {r['tgt_efficiency']:8.3f} "
            f"{r['batches']:8d} {r['mean_sentences']:16.1f}"
        )
    seconds = time.monotonic() - started
    print(f"({seconds:.1f} s)")
    if args.json:
        payload = {
            "corpus": args.corpus,
            "pair": args.pair,
            "pairs": len(corpus),
            "max_tokens": args.max_tokens,
            "batch_size": args.batch_size,
            "row_tokens": cfg.batching.row_tokens,
            "strategies": results,
            "seconds": seconds,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0
