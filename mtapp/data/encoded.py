"""Encoded corpora: subword ids as flat arrays plus offsets, cached on disk as Arrow.

A corpus is tokenized once per (text, tokenizer) pair, by a batched, multi-process
`datasets.Dataset.map`, into an Arrow file of two list columns (`src_ids`, `tgt_ids`). Every
epoch and every later run with the same text and tokenizer memory-maps that file again:
`EncodedCorpus` holds numpy views of the columns' flat values and offsets, so nothing is copied
and the operating system pages ids in as batches need them. Samplers only ever see the length
arrays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from mtapp.config import DataConfig, TokenizerConfig
from mtapp.data.corpora import ParallelText, nonblank
from mtapp.tokenization import TRAIN_SENTENCES, Tokenizer

log = logging.getLogger(__name__)

COLUMNS = ("src_ids", "tgt_ids")
ROWS_PER_PROCESS = 20_000  # data.num_proc 0 starts no more processes than this many pairs each keep busy
MAP_BATCH = 2_000  # pairs per tokenizer call in the map
MODEL_KEYS = ("vocab_size", "model_type", "joint", "character_coverage")  # the tokenizer.* keys its model depends on


@dataclass(frozen=True)
class EncodedCorpus:
    """Token ids of n sentence pairs, without bos/eos: `n` rows of a table of encoded lines.

    src, tgt:   int32 (tokens,)  the ids of every row of the table, concatenated
    src_offsets, tgt_offsets: int64 (rows + 1,)  row r is src[src_offsets[r]:src_offsets[r + 1]]
    lines:      int64 (n,)  the row of each pair: its 0-based line in the original corpus

    Loaded from the cache, the four id arrays are read-only views of the memory-mapped Arrow
    file; `select` only narrows `lines`, so filtering copies no ids either.
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

    @classmethod
    def from_arrow(cls, table: pa.Table) -> EncodedCorpus:
        """Views of a table whose `src_ids` / `tgt_ids` are large_list<int32> columns in one chunk."""
        src, src_offsets = _list_views(table.column("src_ids"))
        tgt, tgt_offsets = _list_views(table.column("tgt_ids"))
        return cls(src, src_offsets, tgt, tgt_offsets, np.arange(table.num_rows, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lines)

    @cached_property
    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)[self.lines]

    @cached_property
    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)[self.lines]

    def src_ids(self, i: int) -> np.ndarray:
        row = self.lines[i]
        return self.src[self.src_offsets[row] : self.src_offsets[row + 1]]

    def tgt_ids(self, i: int) -> np.ndarray:
        row = self.lines[i]
        return self.tgt[self.tgt_offsets[row] : self.tgt_offsets[row + 1]]

    def select(self, keep: np.ndarray) -> EncodedCorpus:
        """The pairs where the boolean mask `keep` is True, original line numbers preserved."""
        return EncodedCorpus(self.src, self.src_offsets, self.tgt, self.tgt_offsets, self.lines[keep])


def _flatten(seqs) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs]) if seqs else np.zeros(0, np.int32)
    return flat.astype(np.int32, copy=False), offsets


def _list_views(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, offsets) of a single-chunk large_list<int32> column, without copying."""
    if column.num_chunks != 1:
        raise ValueError(f"expected one chunk, got {column.num_chunks}")
    chunk = column.chunk(0)
    return chunk.values.to_numpy(), chunk.offsets.to_numpy()  # offsets index the whole child array


def _digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def text_digest(text: ParallelText) -> str:
    """A hash of the lines' bytes and lengths, the same however Arrow chunks them."""
    h = hashlib.blake2b(digest_size=16)
    for name in ("src", "tgt"):
        lengths = hashlib.blake2b(digest_size=16)
        for chunk in text.pairs.column(name).chunks:
            if not len(chunk):
                continue
            _, offsets, data = chunk.buffers()  # large_string: int64 offsets into the data buffer
            offsets = np.frombuffer(offsets, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
            lengths.update(np.diff(offsets).tobytes())
            h.update(memoryview(data)[offsets[0] : offsets[-1]])
        h.update(lengths.digest())
    return h.hexdigest()


def train_tokenizer(train: ParallelText, cfg: TokenizerConfig, cache_dir: Path) -> Tokenizer:
    """A joint SentencePiece model for this training text, trained once and cached.

    It trains on the non-blank sentences of both sides (sources first); beyond
    `TRAIN_SENTENCES` of them, on a fixed random sample of that many, so only the sample ever
    becomes Python strings."""
    key = _digest(text_digest(train), repr(sorted((k, v) for k, v in vars(cfg).items() if k in MODEL_KEYS)))
    path = cache_dir / "tokenizers" / f"{key}.model"
    if path.exists():
        log.info("tokenizer: cached %s", path)
        return Tokenizer.load(path)
    sentences = training_sentences(train, TRAIN_SENTENCES)
    log.info(
        "tokenizer: training a %d-piece %s model on %d sentences of %d pairs",
        cfg.vocab_size,
        cfg.model_type,
        len(sentences),
        len(train),
    )
    tokenizer = Tokenizer.train(sentences, cfg)
    del sentences
    if tokenizer.vocab_size < cfg.vocab_size:
        log.warning(
            "tokenizer: the training text supports only %d pieces; using that instead of tokenizer.vocab_size=%d",
            tokenizer.vocab_size,
            cfg.vocab_size,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tokenizer.save(tmp)
    tmp.replace(path)
    return tokenizer


def training_sentences(text: ParallelText, limit: int) -> list[str]:
    """The non-blank sentences of both sides (sources, then targets), or `limit` of them drawn
    at random (seed 0, kept in that order) when there are more."""
    chunks = text.pairs.column("src").chunks + text.pairs.column("tgt").chunks
    chosen = np.flatnonzero(np.concatenate([nonblank(chunk) for chunk in chunks]))
    if len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(0).choice(chosen, size=limit, replace=False))
    sentences, start = [], 0
    for chunk in chunks:  # chunk by chunk: a chunked take would first join all the text into one copy
        low, high = np.searchsorted(chosen, [start, start + len(chunk)])
        sentences += chunk.take(chosen[low:high] - start).to_pylist()
        start += len(chunk)
    return sentences


def encode(text: ParallelText, tokenizer: Tokenizer, cache_dir: Path, num_proc: int = 0) -> EncodedCorpus:
    """Subword ids of every pair, memory-mapped from the cache; encoded first (with `num_proc`
    processes, 0 = one per core) when this text and tokenizer were not encoded before."""
    key = _digest(text_digest(text), tokenizer.model_bytes)
    path = cache_dir / "encoded" / f"{key}.arrow"
    if path.exists():
        log.info("data: encoded %s: cached %s", text.origin, path)
    else:
        _encode_into(path, text, tokenizer, num_proc)
    return load(path)


def load(path: Path) -> EncodedCorpus:
    """The encoded corpus in an Arrow file of this cache, memory-mapped by `datasets`."""
    import datasets  # imported lazily: it is slow to import

    return EncodedCorpus.from_arrow(datasets.Dataset.from_file(str(path), in_memory=False).data.table)


def processes(num_proc: int, rows: int) -> int:
    """Map processes: `num_proc`, or for 0 one per core but none that would get < ROWS_PER_PROCESS pairs."""
    if num_proc:
        return num_proc
    return max(1, min(os.cpu_count() or 1, rows // ROWS_PER_PROCESS))


class EncodeBatch:
    """The map function: a batch of text pairs -> their ids (pickled into each map process)."""

    def __init__(self, tokenizer: Tokenizer, threads: int):
        self.tokenizer, self.threads = tokenizer, threads

    def __call__(self, batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        encode = self.tokenizer.encode
        return {"src_ids": encode(batch["src"], self.threads), "tgt_ids": encode(batch["tgt"], self.threads)}


def _encode_into(path: Path, text: ParallelText, tokenizer: Tokenizer, num_proc: int) -> None:
    """Tokenize `text` with `datasets.Dataset.map` and write the ids to `path` (atomically).

    The text goes to a temporary Arrow file first, so the map processes memory-map their shards
    instead of receiving pickled copies. The map writes its output in many record batches;
    they are joined into one per column, so that each column is one flat array on disk and
    `EncodedCorpus` can view it without a copy."""
    import datasets

    procs = processes(num_proc, len(text))
    threads = max(1, (os.cpu_count() or 1) // procs)
    log.info("data: encoding %d pairs of %s with %d processes into %s", len(text), text.origin, procs, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({name: datasets.LargeList(datasets.Value("int32")) for name in COLUMNS})
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".encoding-") as tmp:
        _write_arrow(text.pairs, Path(tmp) / "text.arrow")
        pairs = datasets.Dataset.from_file(str(Path(tmp) / "text.arrow"), in_memory=False)
        # The same lines, memory-mapped: the in-memory copy can go before the map processes fork
        # (they would inherit it). The file outlives this folder as long as it is mapped.
        text.pairs = pairs.data.table
        ids = pairs.map(
            EncodeBatch(tokenizer, threads),
            batched=True,
            batch_size=MAP_BATCH,
            num_proc=procs if procs > 1 else None,
            remove_columns=pairs.column_names,
            features=features,
            cache_file_name=str(Path(tmp) / "ids.arrow"),
            new_fingerprint=path.stem,
            desc="encoding",
        )
        joined = pa.table({name: pa.concat_arrays(ids.data.table.column(name).chunks) for name in COLUMNS})
        del ids, pairs
        _write_arrow(joined.cast(features.arrow_schema), Path(tmp) / "joined.arrow")
        os.replace(Path(tmp) / "joined.arrow", path)


def _write_arrow(table: pa.Table, path: Path) -> None:
    """`table` as an Arrow IPC stream file (the format `datasets` memory-maps), one record
    batch per chunk of the table."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))


def filter_for_training(corpus: EncodedCorpus, cfg: DataConfig) -> tuple[EncodedCorpus, dict[str, int]]:
    """Drop pairs with an empty side or a side longer than `max_len`; return the counts dropped."""
    src_len, tgt_len = corpus.src_lengths, corpus.tgt_lengths
    empty = (src_len == 0) | (tgt_len == 0)
    too_long = ~empty & ((src_len > cfg.max_len) | (tgt_len > cfg.max_len))
    dropped = {"empty": int(empty.sum()), "too_long": int(too_long.sum())}
    if not (empty.any() or too_long.any()):
        return corpus, dropped
    return corpus.select(~(empty | too_long)), dropped
