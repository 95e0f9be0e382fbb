"""Encoder-decoder models behind one interface (`Seq2Seq`), built from the `model` config."""

from mtapp.config import ModelConfig
from mtapp.models.base import DecoderState, Seq2Seq
from mtapp.models.hybrid import Hybrid
from mtapp.models.lstm import LSTMSeq2Seq
from mtapp.models.transformer import Transformer

__all__ = ["DecoderState", "Hybrid", "LSTMSeq2Seq", "MODELS", "Seq2Seq", "Transformer", "build_model"]


MODELS: dict[str, type[Seq2Seq]] = {"transformer": Transformer, "lstm": LSTMSeq2Seq, "hybrid": Hybrid}


def build_model(cfg: ModelConfig, vocab_size: int, pad_side: str = "post") -> Seq2Seq:
    """The model `cfg` describes; `pad_side`: the side its source batches are padded on
    (batching.pad_side), which it keeps for inference."""
    if cfg.type not in MODELS:
        raise ValueError(f"unknown model.type {cfg.type!r}")
    model = MODELS[cfg.type](cfg, vocab_size)
    model.source_pad_side = pad_side
    return model
