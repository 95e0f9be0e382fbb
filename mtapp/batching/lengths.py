"""What one sentence costs in a batch, stated once: the special tokens each side gets, and the
check that a sentence fits a token budget.

`collate` puts `SOURCE_END` after every source, `TARGET_START` before every target input and
`TARGET_END` after every target output, so a sentence of n ids takes n + 1 slots on each side.
The strategies, inference batching and the config's budget rule all count lengths this way.
"""

from __future__ import annotations

from mtapp.config import ConfigError
from mtapp.tokenization import BOS, EOS

SOURCE_END = (EOS,)  # after the source ids
TARGET_START = (BOS,)  # before the target ids of tgt_in (the decoder's input)
TARGET_END = (EOS,)  # after the target ids of tgt_out (what the loss predicts)
SOURCE_SPECIALS = len(SOURCE_END)
TARGET_SPECIALS = len(TARGET_START)  # = len(TARGET_END): tgt_in and tgt_out are equally long


def with_specials(src_lengths, tgt_lengths):
    """Token slots of sentences of `src_lengths` / `tgt_lengths` ids (ints or arrays) in a batch."""
    return src_lengths + SOURCE_SPECIALS, tgt_lengths + TARGET_SPECIALS


def check_fits(longest: int, budget: int, setting: str) -> None:
    """Raise `ConfigError` unless a sentence of `longest` slots (specials included) fits `setting`,
    a budget of `budget` slots per batch or row and side."""
    if longest > budget:
        raise ConfigError(
            f"a sentence of {longest} tokens (eos or bos included) does not fit {setting}={budget}: "
            f"raise {setting} or lower data.max_len"
        )
