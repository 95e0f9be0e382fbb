"""Small synthetic parallel corpora and tiny configs for tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mtapp.config import ModelConfig
from mtapp.data.synthetic import WORDS, synthetic_pairs, tiny_config, write_text_corpus

__all__ = ["EXACT_MODELS", "TINY", "WORDS", "random_ids", "synthetic_pairs", "tiny_config", "write_text_corpus"]


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
