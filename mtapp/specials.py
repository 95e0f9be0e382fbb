"""The special tokens, stated once: their ids, the slots they take in a batch, and the longest
sentence a model's position table leaves room for.

Every model mtapp trains uses the same ids: pad 0, unk 1, bos 2, eos 3. `collate` puts
`SOURCE_END` after every source, `TARGET_START` before every target input and `TARGET_END` after
every target output, so a sentence of n ids takes n + 1 slots on each side. The strategies,
inference batching, the models and the config's rules all count lengths this way.

This module imports nothing from mtapp and no third-party package, so that `mtapp.config` can
use it without pulling in torch, pyarrow or sentencepiece.
"""

from __future__ import annotations

PAD, UNK, BOS, EOS = 0, 1, 2, 3

SOURCE_END = (EOS,)  # after the source ids
TARGET_START = (BOS,)  # before the target ids of tgt_in (the decoder's input)
TARGET_END = (EOS,)  # after the target ids of tgt_out (what the loss predicts)
SOURCE_SPECIALS = len(SOURCE_END)
TARGET_SPECIALS = len(TARGET_START)  # = len(TARGET_END): tgt_in and tgt_out are equally long


def with_specials(src_lengths, tgt_lengths):
    """Token slots of sentences of `src_lengths` / `tgt_lengths` ids (ints or arrays) in a batch."""
    return src_lengths + SOURCE_SPECIALS, tgt_lengths + TARGET_SPECIALS


def model_limits(model_type: str, max_positions: int) -> tuple[int | None, int | None]:
    """(longest source, longest output) in subwords, the end token excluded, of a model of
    `model_type` (model.type) with `max_positions` (model.max_positions); None: no limit.

    A Transformer's position table numbers a source and its end token, and bos and the outputs,
    from 0 to max_positions - 1. A hybrid's LSTM encodes any length (its Transformer layers get
    no positions) while its decoder has the table; the LSTM has no table at all.
    """
    table = max_positions - len(SOURCE_END)
    limits = {"transformer": (table, table), "hybrid": (None, table), "lstm": (None, None)}
    if model_type not in limits:
        raise ValueError(f"unknown model.type {model_type!r}")
    return limits[model_type]
