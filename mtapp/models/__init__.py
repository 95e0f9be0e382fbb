"""Encoder-decoder models behind one interface (`Seq2Seq`), built from the `model` config."""

from mtapp.config import ModelConfig
from mtapp.models.base import DecoderState, Seq2Seq
from mtapp.models.hybrid import Hybrid
from mtapp.models.lstm import LSTMSeq2Seq
from mtapp.models.transformer import Transformer

__all__ = ["DecoderState", "Hybrid", "LSTMSeq2Seq", "Seq2Seq", "Transformer", "build_model"]


def build_model(cfg: ModelConfig, vocab_size: int) -> Seq2Seq:
    if cfg.type == "transformer":
        return Transformer(cfg, vocab_size)
    if cfg.type == "lstm":
        return LSTMSeq2Seq(cfg, vocab_size)
    if cfg.type == "hybrid":
        return Hybrid(cfg, vocab_size)
    raise ValueError(f"unknown model.type {cfg.type!r}")
