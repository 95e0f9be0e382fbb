import numpy as np
import pytest

from mtapp.config import DataConfig, TokenizerConfig
from mtapp.data import EncodedCorpus, encode, filter_for_training, train_tokenizer
from mtapp.data.corpora import ParallelText
from mtapp.tokenization import Tokenizer
from tests.synthetic import synthetic_pairs


@pytest.fixture
def text():
    pairs = synthetic_pairs(300, seed=5)
    return ParallelText([s for s, _ in pairs], [t for _, t in pairs], origin="test")


def test_tokenizer_round_trips_and_uses_fixed_special_ids(text, tmp_path):
    tok = train_tokenizer(text, TokenizerConfig(vocab_size=64), tmp_path)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    ids = tok.encode(text.src[:5])
    assert all(min(s) > 3 for s in ids)
    assert tok.decode(ids) == text.src[:5]
    assert Tokenizer(tok.model_bytes).encode(text.tgt[:3]) == tok.encode(text.tgt[:3])


def test_tokenizer_and_encoding_are_cached_by_content(text, tmp_path, monkeypatch):
    tok = train_tokenizer(text, TokenizerConfig(vocab_size=64), tmp_path)
    first = encode(text, tok, tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("re-tokenized although cached")

    monkeypatch.setattr(Tokenizer, "train", fail)
    monkeypatch.setattr(Tokenizer, "encode", fail)
    again = train_tokenizer(text, TokenizerConfig(vocab_size=64), tmp_path)
    second = encode(text, again, tmp_path)
    assert again.model_bytes == tok.model_bytes
    for name in EncodedCorpus.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    changed = ParallelText(text.src[:-1] + ["w01 w02"], text.tgt, origin="test")
    monkeypatch.undo()
    assert len(encode(changed, tok, tmp_path).src) != len(first.src)  # new text, new cache entry


def test_filter_drops_empty_and_too_long_pairs_and_counts_them():
    corpus = EncodedCorpus.from_ids(
        [[5, 6], [], [5] * 10, [7], [8, 9, 10]],
        [[5], [6], [7], [8] * 11, [9]],
    )
    kept, dropped = filter_for_training(corpus, DataConfig(max_len=9))
    assert dropped == {"empty": 1, "too_long": 2}
    assert kept.lines.tolist() == [0, 4]
    assert kept.src_ids(1).tolist() == [8, 9, 10]
    assert kept.tgt_lengths.tolist() == [1, 1]
