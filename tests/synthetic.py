"""Small synthetic parallel corpora and tiny configs for tests."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from mtapp.config import ModelConfig

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
    """A raw config dict for a tiny model on a synthetic text corpus under tmp_path/corpus."""
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


TINY = ModelConfig(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=64, rnn_hidden=16, rnn_layers=2)

# Every model whose outputs must not depend on padding (the LSTM's "padded" mode is the exception).
EXACT_MODELS = {
    "transformer": TINY,
    "lstm-masked": replace(TINY, type="lstm", encoder_padding="masked"),
    "lstm-packed": replace(TINY, type="lstm", encoder_padding="packed"),
    "lstm-unrolled": replace(TINY, type="lstm", encoder_padding="unrolled"),
    "hybrid": replace(TINY, type="hybrid", encoder_padding="packed"),
}


def random_ids(seed: int, lengths, vocab: int = 40) -> list[np.ndarray]:
    """Random token ids (4 .. vocab-1, no specials), one array per length."""
    rng = np.random.default_rng(seed)
    return [rng.integers(4, vocab, n) for n in lengths]
