"""SentencePiece subword tokenizer: training, loading, encoding and decoding.

Special ids are fixed for every model mtapp trains (`mtapp.specials`): pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from mtapp.config import TokenizerConfig
from mtapp.specials import BOS, EOS, PAD, UNK

TRAIN_SENTENCES = 500_000  # at most this many sentences (both sides) train a model; larger corpora are sampled


class Tokenizer:
    """A trained SentencePiece model; `model_bytes` is what checkpoints store."""

    pad_id, unk_id, bos_id, eos_id = PAD, UNK, BOS, EOS

    def __init__(self, model_bytes: bytes):
        self.model_bytes = model_bytes
        self._sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        if self._sp.pad_id() != PAD or self._sp.eos_id() != EOS or self._sp.bos_id() != BOS:
            raise ValueError("tokenizer model does not use mtapp's special ids (pad 0, unk 1, bos 2, eos 3)")

    @classmethod
    def train(cls, sentences: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
        """Train on raw sentences (both languages for a joint vocabulary)."""
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=cfg.character_coverage,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
            input_sentence_size=TRAIN_SENTENCES,
            shuffle_input_sentence=True,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
        return cls(model.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        return cls(Path(path).read_bytes())

    def __getstate__(self) -> dict:
        return {"model_bytes": self.model_bytes}  # the SentencePiece processor itself does not pickle

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_bytes"])

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_bytes)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, sentences: list[str], threads: int = 0) -> list[list[int]]:
        """Subword ids without bos/eos; `threads` 0 = one per core."""
        return self._sp.encode(sentences, out_type=int, num_threads=threads or os.cpu_count() or 1)

    def sample(self, sentences: list[str], alpha: float, seed: int) -> list[list[int]]:
        """Subword ids like `encode`, each sentence's segmentation drawn at random (subword
        regularization: Kudo 2018 for unigram models, `alpha` the smoothing of the distribution;
        BPE-dropout, Provilkov et al. 2020, for bpe models, `alpha` the chance that a merge is
        skipped). The same seed gives the same ids: SentencePiece samples from one process-wide
        generator, reproducibly on one thread only, so this encodes on one."""
        spm.set_random_generator_seed(seed)
        return self._sp.encode(sentences, out_type=int, enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1)

    def piece(self, i: int) -> str:
        """The vocabulary entry of id `i` (as SentencePiece writes it)."""
        return self._sp.id_to_piece(i)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Detokenised text; special ids are ignored."""
        return [self._sp.decode([i for i in seq if i > EOS]) for seq in ids]
