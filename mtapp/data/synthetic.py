"""A synthetic parallel corpus for smoke runs and tests: random words, the target the source in
upper case (a task a tiny model learns in seconds)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [f"w{i:02d}" for i in range(24)]


def synthetic_pairs(n: int, seed: int, min_len: int = 2, max_len: int = 9) -> list[tuple[str, str]]:
    """`n` (source, target) pairs of random words; the target is the source in upper case."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(min_len, max_len)))
        pairs.append((words, words.upper()))
    return pairs


def write_text_corpus(folder: Path, split: str, pairs, src: str = "xx", tgt: str = "yy") -> Path:
    """Files `{folder}/{split}.{src}` and `.{tgt}`; returns the prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.{src}").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (folder / f"{split}.{tgt}").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return folder / split


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A raw config dict for a tiny model on the synthetic corpus under tmp_path/corpus, with
    `sections` (section -> {key: value}) merged in."""
    corpus = tmp_path / "corpus"
    raw = {
        "data": {
            "corpus": "text",
            "src_lang": "xx",
            "tgt_lang": "yy",
            "paths": {s: str(corpus / s) for s in ("train", "val", "test")},
            "test_split": "test",
            "cache_dir": str(tmp_path / "cache"),
            "max_len": 100,
        },
        "tokenizer": {"vocab_size": 64},
        "batching": {"max_tokens": 512},
        "model": {"d_model": 64, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "ffn_dim": 128},
        "train": {"lr": 0.003, "warmup_steps": 50, "max_epochs": 2, "patience": 0, "amp": "off", "log_every": 10},
        "decode": {"beam": 3, "max_tokens": 512, "amp": "off"},  # exact float32: tests compare outputs
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def write_synthetic_corpus(folder: Path, train: int = 2000, valid: int = 60, test: int = 80) -> Path:
    """Splits train, val and test of synthetic pairs under `folder`/corpus (as `tiny_config` reads them)."""
    corpus = folder / "corpus"
    for split, n, seed in (("train", train, 1), ("val", valid, 2), ("test", test, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    return corpus
