"""The `Batch` every model consumes, and `collate`, which builds it from id sequences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from mtapp.tokenization import BOS, EOS, PAD


@dataclass(frozen=True)
class Batch:
    """One padded batch of B sentence pairs (B sentences for source-only batches).

    src:          int64 (B, S)  source ids followed by eos, padded with PAD before or after
    src_lengths:  int64 (B,)    real source tokens per row (eos included)
    src_pad_mask: bool  (B, S)  True where `src` is padding
    tgt_in:       int64 (B, T)  bos + target ids, post-padded         (None for source-only)
    tgt_out:      int64 (B, T)  target ids + eos, post-padded         (None for source-only)
    tgt_pad_mask: bool  (B, T)  True where `tgt_out` is padding       (None for source-only)
    indices:      int64 (B,)    position of each row in the corpus or input it came from
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    src_pad_mask: torch.Tensor
    tgt_in: torch.Tensor | None
    tgt_out: torch.Tensor | None
    tgt_pad_mask: torch.Tensor | None
    indices: torch.Tensor

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
) -> Batch:
    """Pad id sequences (without bos/eos) into a `Batch`; `pad_side` applies to the source."""
    src_ids, src_lengths, src_mask = _pad([_append(s, EOS) for s in src], pad_side)
    tgt_in = tgt_out = tgt_mask = None
    if tgt is not None:
        tgt_in, _, _ = _pad([_prepend(t, BOS) for t in tgt], "post")
        tgt_out, _, tgt_mask = _pad([_append(t, EOS) for t in tgt], "post")
    return Batch(
        src=src_ids,
        src_lengths=src_lengths,
        src_pad_mask=src_mask,
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        tgt_pad_mask=tgt_mask,
        indices=torch.as_tensor(np.asarray(indices, dtype=np.int64)),
    )


def _append(ids: np.ndarray, token: int) -> np.ndarray:
    return np.concatenate([np.asarray(ids, dtype=np.int64), [token]])


def _prepend(ids: np.ndarray, token: int) -> np.ndarray:
    return np.concatenate([[token], np.asarray(ids, dtype=np.int64)])


def _pad(seqs: list[np.ndarray], side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) ids, (B,) lengths and (B, L) pad mask for sequences padded on `side`."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    width = int(lengths.max())
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
