"""Encoded corpora: subword ids as flat arrays plus length arrays, cached on disk.

A corpus is tokenized once per (text, tokenizer) pair and stored as `.npz`; every epoch and
every later run with the same text and tokenizer reads the arrays back. Samplers only ever
see the length arrays.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtapp.config import DataConfig, TokenizerConfig
from mtapp.data.corpora import ParallelText
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedCorpus:
    """Token ids of n sentence pairs, without bos/eos.

    src, tgt:   int32 (total tokens,)  all sentences concatenated
    src_offsets, tgt_offsets: int64 (n + 1,)  sentence i is src[src_offsets[i]:src_offsets[i+1]]
    lines:      int64 (n,)  0-based line of each pair in the original corpus
    """

    src: np.ndarray
    src_offsets: np.ndarray
    tgt: np.ndarray
    tgt_offsets: np.ndarray
    lines: np.ndarray

    @classmethod
    def from_ids(cls, src: list[list[int]], tgt: list[list[int]]) -> EncodedCorpus:
        s_flat, s_off = _flatten(src)
        t_flat, t_off = _flatten(tgt)
        return cls(s_flat, s_off, t_flat, t_off, np.arange(len(src), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def src_ids(self, i: int) -> np.ndarray:
        return self.src[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt_ids(self, i: int) -> np.ndarray:
        return self.tgt[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def select(self, keep: np.ndarray) -> EncodedCorpus:
        """The pairs where the boolean mask `keep` is True, original line numbers preserved."""
        s_flat, s_off = _select(self.src, self.src_offsets, keep)
        t_flat, t_off = _select(self.tgt, self.tgt_offsets, keep)
        return EncodedCorpus(s_flat, s_off, t_flat, t_off, self.lines[keep])

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> EncodedCorpus:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


def _flatten(seqs) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs]) if seqs else np.zeros(0, np.int32)
    return flat.astype(np.int32, copy=False), offsets


def _select(flat: np.ndarray, offsets: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat ids and offsets of the sequences where `keep` is True (no loop over sequences)."""
    lengths = np.diff(offsets)
    new_offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[keep], out=new_offsets[1:])
    return flat[np.repeat(keep, lengths)], new_offsets


def _digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def text_digest(text: ParallelText) -> str:
    return _digest("\n".join(text.src), "\n".join(text.tgt))


def train_tokenizer(train: ParallelText, cfg: TokenizerConfig, cache_dir: Path) -> Tokenizer:
    """A joint SentencePiece model for this training text, trained once and cached."""
    key = _digest(text_digest(train), repr(sorted(vars(cfg).items())))
    path = cache_dir / "tokenizers" / f"{key}.model"
    if path.exists():
        log.info("tokenizer: cached %s", path)
        return Tokenizer.load(path)
    log.info("tokenizer: training a %d-piece %s model on %d pairs", cfg.vocab_size, cfg.model_type, len(train))
    sentences = [s for s in train.src + train.tgt if s.strip()]
    tokenizer = Tokenizer.train(sentences, cfg)
    if tokenizer.vocab_size < cfg.vocab_size:
        log.warning(
            "tokenizer: the training text supports only %d pieces; using that instead of tokenizer.vocab_size=%d",
            tokenizer.vocab_size,
            cfg.vocab_size,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tokenizer.save(tmp)
    tmp.replace(path)
    return tokenizer


def encode(text: ParallelText, tokenizer: Tokenizer, cache_dir: Path) -> EncodedCorpus:
    """Subword ids of every pair, read from the cache when this text was encoded before."""
    key = _digest(text_digest(text), tokenizer.model_bytes)
    path = cache_dir / "encoded" / f"{key}.npz"
    if path.exists():
        return EncodedCorpus.load(path)
    corpus = EncodedCorpus.from_ids(tokenizer.encode(text.src), tokenizer.encode(text.tgt))
    path.parent.mkdir(parents=True, exist_ok=True)
    corpus.save(path)
    return corpus


def filter_for_training(corpus: EncodedCorpus, cfg: DataConfig) -> tuple[EncodedCorpus, dict[str, int]]:
    """Drop pairs with an empty side or a side longer than `max_len`; return the counts dropped."""
    src_len, tgt_len = corpus.src_lengths, corpus.tgt_lengths
    empty = (src_len == 0) | (tgt_len == 0)
    too_long = ~empty & ((src_len > cfg.max_len) | (tgt_len > cfg.max_len))
    dropped = {"empty": int(empty.sum()), "too_long": int(too_long.sum())}
    if not (empty.any() or too_long.any()):
        return corpus, dropped
    return corpus.select(~(empty | too_long)), dropped
