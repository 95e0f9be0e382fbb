"""From config to training-ready arrays: read splits, train/reuse the tokenizer, encode, filter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mtapp.config import Config
from mtapp.data.corpora import CorpusError, ParallelText, load_split
from mtapp.data.encoded import EncodedCorpus, encode, filter_for_training, train_tokenizer
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    tokenizer: Tokenizer
    train: EncodedCorpus  # filtered for training
    train_text: ParallelText | None  # raw training text, kept only for tokenizer.sampling_alpha > 0 (re-segmented)
    valid: EncodedCorpus  # validation pairs for the loss (filtered like the training pairs)
    valid_text: ParallelText  # raw validation text, for BLEU
    dropped: dict[str, int]  # training pairs dropped, by reason


def prepare(cfg: Config, tokenizer: Tokenizer | None = None) -> PreparedData:
    """Read and encode the training and validation splits (cached by content).

    `tokenizer`: reuse this one (resuming, fine-tuning) instead of training or loading the
    one for this training text. A split left without a single pair after filtering is a
    `CorpusError` naming the setting and the counts.
    """
    d, cache = cfg.data, Path(cfg.data.cache_dir)
    train_text = load_split(d, d.train_split)
    valid_text = load_split(d, d.valid_split)
    log.info("data: %d training pairs (%s), %d validation pairs", len(train_text), train_text.origin, len(valid_text))
    tokenizer = tokenizer or train_tokenizer(train_text, cfg.tokenizer, cache)
    train, dropped = filter_for_training(encode(train_text, tokenizer, cache, d.num_proc), d)
    if dropped["empty"] or dropped["too_long"]:
        log.warning(
            "data: dropped %d training pairs with an empty side and %d longer than data.max_len=%d subwords",
            dropped["empty"],
            dropped["too_long"],
            d.max_len,
        )
    if not len(train):
        raise CorpusError(
            f"no training pair is left in {train_text.origin}: {_counts(len(train_text), dropped, d.max_len)}"
        )
    valid, valid_dropped = filter_for_training(encode(valid_text, tokenizer, cache, d.num_proc), d)
    if not len(valid):
        raise CorpusError(
            f"the validation split {d.valid_split!r} ({valid_text.origin}) has no usable pair: "
            f"{_counts(len(valid_text), valid_dropped, d.max_len)}"
        )
    kept = train_text if cfg.tokenizer.sampling_alpha else None  # a large corpus's text is not held for nothing
    return PreparedData(tokenizer, train, kept, valid, valid_text, dropped)


def _counts(pairs: int, dropped: dict[str, int], max_len: int) -> str:
    return (
        f"of its {pairs} pairs, {dropped['empty']} have an empty side and {dropped['too_long']} a side longer "
        f"than data.max_len={max_len} subwords; raise data.max_len or check the corpus"
    )
