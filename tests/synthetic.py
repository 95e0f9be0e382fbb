"""Small synthetic parallel corpora and tiny configs for tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mtapp.checkpoint import save_checkpoint, tokenizer_to_tensor
from mtapp.config import ModelConfig, config_from_dict
from mtapp.data.synthetic import WORDS, synthetic_pairs, tiny_config, write_text_corpus
from mtapp.models import build_model
from mtapp.tokenization import Tokenizer

__all__ = [
    "EXACT_MODELS",
    "TINY",
    "WORDS",
    "random_ids",
    "synthetic_pairs",
    "tiny_config",
    "untrained_checkpoint",
    "write_text_corpus",
]


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


def untrained_checkpoint(path: Path, raw_config: dict, seed: int = 0) -> Path:
    """A checkpoint of a freshly initialised model (no training: translating with it is fast and
    its output is noise) with a tokenizer trained on the synthetic words; the config `raw_config`."""
    cfg = config_from_dict(raw_config)
    sentences = [s for pair in synthetic_pairs(200, seed=seed) for s in pair]
    tokenizer = Tokenizer.train(sentences, replace(cfg.tokenizer, vocab_size=60))
    torch.manual_seed(seed)
    model = build_model(cfg.model, tokenizer.vocab_size)
    content = {
        "model": model.state_dict(),
        "config": cfg.to_dict(),
        "tokenizer": tokenizer_to_tensor(tokenizer.model_bytes),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, content)
    return path
