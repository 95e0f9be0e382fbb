"""The `Batch` every model consumes, and `collate`, which builds it from id sequences.

What one padded batch looks like: two pairs, ids without specials (PAD 0, BOS 2, EOS 3),

    a: src [5 6 7]   tgt [9]
    b: src [8]       tgt [10 11 12 13]

    collate([a.src, b.src], [a.tgt, b.tgt], indices=[4, 9], pad_side="post")

    src      [[5 6 7 3]           src_pad_mask  [[F F F F]      src_lengths [4 2]
              [8 3 0 0]]                         [F F T T]]
    tgt_in   [[2  9  0  0  0]     tgt_pad_mask  [[F F T T T]    indices     [4 9]
              [2 10 11 12 13]]                   [F F F F F]]
    tgt_out  [[9  3  0  0  0]
              [10 11 12 13 3]]

pad_side="pre" moves the source pads to the front; the target is always post-padded:

    src      [[5 6 7 3]           src_pad_mask  [[F F F F]
              [0 0 8 3]]                         [T T F F]]

Where each step happens:
- the specials (eos after the source, bos / eos around the target): `lengths.SOURCE_END`,
  `TARGET_START`, `TARGET_END`; every length count and budget adds them (`lengths.with_specials`)
- which sentences share a batch: a strategy's `plan` (`base.Strategy`, one module per strategy)
- how wide each side is padded: `Strategy.widths` (the batch's longest by default, the corpus
  maximum for `global`, rounded up to `batching.multiple_of` for `tokens`)
- the pad side: `batching.pad_side`, which `build_strategy` gives the strategy (`Strategy.pad_side`)
  and the translator gives its source batches; `collate` applies it to the source only
- that a sentence fits the budget: `lengths.check_fits`, for the config and the strategies
- packed rows (`collate_packed`): several sentences per row, each with its specials, the row
  post-padded, `src_segments` / `tgt_segments` telling the sentences apart
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from mtapp.specials import PAD, SOURCE_END, TARGET_END, TARGET_START


@dataclass(frozen=True)
class Batch:
    """One padded batch of B sentence pairs (B sentences for source-only batches).

    src:          int64 (B, S)  source ids followed by eos, padded with PAD before or after
    src_lengths:  int64 (B,)    real source tokens per row (eos included)
    src_pad_mask: bool  (B, S)  True where `src` is padding
    tgt_in:       int64 (B, T)  bos + target ids, post-padded         (None for source-only)
    tgt_out:      int64 (B, T)  target ids + eos, post-padded         (None for source-only)
    tgt_pad_mask: bool  (B, T)  True where `tgt_out` is padding       (None for source-only)
    indices:      int64 (N,)    corpus / input position of each sentence (N = B unless packed)
    src_segments: int64 (B, S)  packed rows only: 1, 2, ... = which sentence of the row, 0 = pad
    tgt_segments: int64 (B, T)  packed rows only, likewise for the target
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    src_pad_mask: torch.Tensor
    tgt_in: torch.Tensor | None
    tgt_out: torch.Tensor | None
    tgt_pad_mask: torch.Tensor | None
    indices: torch.Tensor
    src_segments: torch.Tensor | None = None
    tgt_segments: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.src.shape[0]

    @property
    def src_tokens(self) -> int:
        """Real source tokens (eos included)."""
        return int(self.src_lengths.sum())

    @property
    def tgt_tokens(self) -> int:
        """Real target tokens the loss is computed on (eos included, pads excluded)."""
        return 0 if self.tgt_pad_mask is None else int((~self.tgt_pad_mask).sum())

    @property
    def slots(self) -> int:
        """Token slots processed, padding included (source + target)."""
        tgt = 0 if self.tgt_in is None else self.tgt_in.numel()
        return self.src.numel() + tgt

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        return self._map(lambda t: t.pin_memory())

    def _map(self, fn) -> Batch:
        changes = {f.name: fn(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(self, **changes)


def collate(
    src: Sequence[np.ndarray],
    tgt: Sequence[np.ndarray] | None,
    indices: Sequence[int],
    pad_side: str = "post",
    widths: tuple[int, int] | None = None,
) -> Batch:
    """Pad id sequences (without bos/eos) into a `Batch`; `pad_side` applies to the source.

    `widths`: padded (source, target) lengths; default the longest row of each side."""
    src_width, tgt_width = widths or (0, 0)
    src_ids, src_lengths, src_mask = _pad([_with(s, after=SOURCE_END) for s in src], pad_side, src_width)
    tgt_in = tgt_out = tgt_mask = None
    if tgt is not None:
        tgt_in, _, _ = _pad([_with(t, before=TARGET_START) for t in tgt], "post", tgt_width)
        tgt_out, _, tgt_mask = _pad([_with(t, after=TARGET_END) for t in tgt], "post", tgt_width)
    return Batch(
        src=src_ids,
        src_lengths=src_lengths,
        src_pad_mask=src_mask,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        tgt_pad_mask=tgt_mask,
        indices=torch.as_tensor(np.asarray(indices, dtype=np.int64)),
    )


def _with(ids: np.ndarray, before: tuple[int, ...] = (), after: tuple[int, ...] = ()) -> np.ndarray:
    """int64 `ids` with the special tokens `before` and `after` them."""
    return np.concatenate([np.asarray(part, dtype=np.int64) for part in (before, ids, after)])


def collate_packed(corpus, sentences: np.ndarray, rows: np.ndarray) -> Batch:
    """Several sentence pairs per row: row r holds, in order, the sentences whose `rows` entry is r.

    Each sentence keeps its own eos / bos; `src_segments` / `tgt_segments` number the sentences
    of a row from 1 (0 = padding), so the model can mask attention block by block."""
    src = [_with(corpus.src_ids(i), after=SOURCE_END) for i in sentences]
    tgt_in = [_with(corpus.tgt_ids(i), before=TARGET_START) for i in sentences]
    tgt_out = [_with(corpus.tgt_ids(i), after=TARGET_END) for i in sentences]
    first = np.r_[True, rows[1:] != rows[:-1]]
    segment = np.arange(len(rows)) - np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0)) + 1
    by_row = [np.flatnonzero(rows == r) for r in range(int(rows.max()) + 1)]

    def join(seqs):
        ids = [np.concatenate([seqs[i] for i in members]) for members in by_row]
        seg = [np.concatenate([np.full(len(seqs[i]), segment[i]) for i in members]) for members in by_row]
        padded, lengths, mask = _pad(ids, "post")
        return padded, lengths, mask, _pad(seg, "post")[0]

    src_ids, src_lengths, src_mask, src_seg = join(src)
    tgt_in_ids, _, _, _ = join(tgt_in)
    tgt_out_ids, _, tgt_mask, tgt_seg = join(tgt_out)
    return Batch(
        src=src_ids,
        src_lengths=src_lengths,
        src_pad_mask=src_mask,
        tgt_in=tgt_in_ids,
        tgt_out=tgt_out_ids,
        tgt_pad_mask=tgt_mask,
        indices=torch.as_tensor(np.asarray(sentences, dtype=np.int64)),
        src_segments=src_seg,
        tgt_segments=tgt_seg,
    )


def _pad(seqs: list[np.ndarray], side: str, width: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) ids, (B,) lengths and (B, L) pad mask for sequences padded on `side`, L >= width."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    width = max(int(lengths.max()), width)
    ids = np.full((len(seqs), width), PAD, dtype=np.int64)
    cols = np.arange(width)
    if side == "post":
        mask = cols[None, :] >= lengths[:, None]
    elif side == "pre":
        mask = cols[None, :] < (width - lengths)[:, None]
    else:
        raise ValueError(f"pad side must be 'pre' or 'post', got {side!r}")
    ids[~mask] = np.concatenate(seqs)
    return torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(mask)
