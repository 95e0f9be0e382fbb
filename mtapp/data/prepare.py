"""From config to training-ready arrays: read splits, train/reuse the tokenizer, encode, filter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mtapp.config import Config
from mtapp.data.corpora import ParallelText, load_split
from mtapp.data.encoded import EncodedCorpus, encode, filter_for_training, train_tokenizer
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    tokenizer: Tokenizer
    train: EncodedCorpus  # filtered for training
    valid: EncodedCorpus  # validation pairs for the loss (filtered like the training pairs)
    valid_text: ParallelText  # raw validation text, for BLEU
    dropped: dict[str, int]  # training pairs dropped, by reason


def prepare(cfg: Config, tokenizer: Tokenizer | None = None) -> PreparedData:
    """Read and encode the training and validation splits (cached by content).

    `tokenizer`: reuse this one (resuming, fine-tuning) instead of training or loading the
    one for this training text.
    """
    cache = Path(cfg.data.cache_dir)
    train_text = load_split(cfg.data, cfg.data.train_split)
    valid_text = load_split(cfg.data, cfg.data.valid_split)
    log.info("data: %d training pairs (%s), %d validation pairs", len(train_text), train_text.origin, len(valid_text))
    tokenizer = tokenizer or train_tokenizer(train_text, cfg.tokenizer, cache)
    train, dropped = filter_for_training(encode(train_text, tokenizer, cache), cfg.data)
    if dropped["empty"] or dropped["too_long"]:
        log.warning(
            "data: dropped %d training pairs with an empty side and %d longer than data.max_len=%d subwords",
            dropped["empty"],
            dropped["too_long"],
            cfg.data.max_len,
        )
    valid, _ = filter_for_training(encode(valid_text, tokenizer, cache), cfg.data)
    return PreparedData(tokenizer, train, valid, valid_text, dropped)
