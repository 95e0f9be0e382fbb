"""`python -m mtapp.bench scale`: prepare a corpus of millions of pairs and plan its batches.

    python -m mtapp.bench scale [--pairs 5000000] [--out DIR] [--keep]

Builds a de-en corpus of `--pairs` pairs by resampling Multi30k train (uniformly, with
replacement, seed 0) into plain text files under DIR, then runs the steps `prepare` runs with
the default config, each timed: read the files, train the tokenizer (on a sample, as for any
corpus), encode into the Arrow cache with `datasets.map` (`data.num_proc` processes), filter; then
builds the default `tokens` strategy from the length arrays and plans epoch 1 (sampler
construction), and finally runs `prepare` itself, which finds everything in the cache. Prints
the wall time of each stage and the peak RSS (ru_maxrss) of this process and of its children
(the map processes), and writes them to DIR/scale.json. The corpus and the cache are deleted at
the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from mtapp.batching import build_strategy
from mtapp.config import DEFAULT_CONFIG, Config, load_config
from mtapp.data import CorpusError, encode, filter_for_training, load_split, train_tokenizer
from mtapp.data.prepare import prepare

CHUNK = 500_000  # pairs written at a time: the corpus is never held whole while it is built


def peak_rss_mb() -> dict[str, float]:
    """ru_maxrss of this process and of its largest finished child, in MiB (Linux counts KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"self": own / 1024, "children": children / 1024}


def rss_now_mb() -> float | None:
    """The resident set size right now (Linux /proc), in MiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Stages:
    """Runs named stages, recording the wall time of each and the peak RSS after it."""

    def __init__(self):
        self.records: list[dict] = []

    def run(self, name: str, fn: Callable):
        started = time.monotonic()
        result = fn()
        seconds = time.monotonic() - started
        peak, now = peak_rss_mb(), rss_now_mb()
        self.records.append({"stage": name, "seconds": round(seconds, 2), "peak_rss_mb": peak, "rss_after_mb": now})
        print(
            f"{name:32} {seconds:8.1f} s   peak RSS {peak['self']:6.0f} MiB (children {peak['children']:5.0f}), "
            f"after it {now or 0:6.0f} MiB",
            flush=True,
        )
        return result


def build_corpus(cfg: Config, pairs: int, folder: Path) -> dict[str, str]:
    """train.{de,en} (`pairs` resampled Multi30k training pairs) and val.{de,en} (Multi30k val)."""
    folder.mkdir(parents=True, exist_ok=True)
    src_lang, tgt_lang = cfg.data.src_lang, cfg.data.tgt_lang
    for split in ("train", "val"):
        text = load_split(cfg.data, split)
        rows = np.random.default_rng(0).integers(0, len(text), pairs) if split == "train" else np.arange(len(text))
        for lang, column in ((src_lang, "src"), (tgt_lang, "tgt")):
            with open(folder / f"{split}.{lang}", "wb") as f:
                for start in tqdm(range(0, len(rows), CHUNK), desc=f"writing {split}.{lang}", unit="chunk"):
                    f.write(_lines_bytes(text.pairs.column(column).take(rows[start : start + CHUNK])))
    return {"train": str(folder / "train"), "val": str(folder / "val")}


def _lines_bytes(strings: pa.ChunkedArray) -> memoryview:
    """The strings, each followed by \\n, as one buffer (Arrow joins them; no Python loop)."""
    empty, newline = pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    joined = pc.binary_join_element_wise(strings, empty, newline).combine_chunks()  # s + "\n" + ""
    _, offsets, data = joined.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_string(joined.type) else np.int32)
    first, last = offsets[joined.offset], offsets[joined.offset + len(joined)]
    return memoryview(data)[first:last]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=5_000_000)
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "mtapp-bench-scale")
    p.add_argument("--keep", action="store_true", help="keep the corpus and the cache in --out")
    args = p.parse_args(argv)
    base = load_config(DEFAULT_CONFIG)
    corpus_dir, cache_dir = args.out / "corpus", args.out / "cache"
    for folder in (corpus_dir, cache_dir):
        shutil.rmtree(folder, ignore_errors=True)  # always measured from scratch
    stages = Stages()
    try:
        paths = stages.run("build corpus (not prepare)", lambda: build_corpus(base, args.pairs, corpus_dir))
    except CorpusError as e:  # Multi30k is missing
        print(f"error: {e}", file=sys.stderr)
        return 1
    paths_yaml = "{" + ", ".join(f"{k}: {v}" for k, v in paths.items()) + "}"
    cfg = load_config(DEFAULT_CONFIG, ["data.corpus=text", f"data.paths={paths_yaml}", f"data.cache_dir={cache_dir}"])
    cache = Path(cfg.data.cache_dir)

    text = stages.run("read text files", lambda: load_split(cfg.data, cfg.data.train_split))
    tokenizer = stages.run("train tokenizer (sample)", lambda: train_tokenizer(text, cfg.tokenizer, cache))
    encoded = stages.run("encode into Arrow cache", lambda: encode(text, tokenizer, cache, cfg.data.num_proc))
    train, dropped = stages.run("filter (max_len, blank)", lambda: filter_for_training(encoded, cfg.data))
    text = None  # only the memory-mapped ids are needed from here on
    strategy = stages.run(
        "sampler: build tokens strategy",
        lambda: build_strategy(cfg.batching, train.src_lengths, train.tgt_lengths),
    )
    plan = stages.run("sampler: plan epoch 1", lambda: strategy.plan(1))
    kept, batches = len(train), len(plan)
    tokens = {"src_tokens": int(train.src_lengths.sum()), "tgt_tokens": int(train.tgt_lengths.sum())}
    encoded = train = strategy = plan = None  # a second run starts without them
    data = stages.run("prepare() again (all cached)", lambda: prepare(cfg))
    assert len(data.train) == kept

    sampler_seconds = sum(r["seconds"] for r in stages.records if r["stage"].startswith("sampler"))
    prepare_seconds = sum(r["seconds"] for r in stages.records[1:5])
    result = {
        "pairs": args.pairs,
        "kept_pairs": kept,
        "dropped": dropped,
        **tokens,
        "batches_epoch_1": batches,
        "num_proc": cfg.data.num_proc,
        "cache_bytes": sum(f.stat().st_size for f in (cache / "encoded").glob("*.arrow")),
        "stages": stages.records,
        "prepare_seconds": round(prepare_seconds, 2),
        "sampler_seconds": round(sampler_seconds, 2),
        "peak_rss_mb": peak_rss_mb(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    print(
        f"{args.pairs:,} pairs ({kept:,} kept), {batches:,} batches in epoch 1; "
        f"prepare {prepare_seconds:.1f} s, sampler construction {sampler_seconds:.1f} s; "
        f"peak RSS {result['peak_rss_mb']['self']:.0f} MiB (this process), "
        f"{result['peak_rss_mb']['children']:.0f} MiB (largest child)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'scale.json'}")
    if not args.keep:
        for folder in (corpus_dir, cache_dir):
            shutil.rmtree(folder, ignore_errors=True)
    return 0
