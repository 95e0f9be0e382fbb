"""Corpora: registry, readers, download, and encoded (cached) id arrays."""

from mtapp.data.corpora import REGISTRY, CorpusError, ParallelText, data_dir, load_split
from mtapp.data.encoded import EncodedCorpus, encode, filter_for_training, train_tokenizer

__all__ = [
    "REGISTRY",
    "CorpusError",
    "EncodedCorpus",
    "ParallelText",
    "data_dir",
    "encode",
    "filter_for_training",
    "load_split",
    "train_tokenizer",
]
