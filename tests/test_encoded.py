import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mtapp.config import DataConfig, TokenizerConfig
from mtapp.data import EncodedCorpus, encode, filter_for_training, train_tokenizer
from mtapp.data.corpora import ParallelText
from mtapp.data.encoded import text_digest, training_sentences
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


def _mapped_file(address: int) -> str:
    """The file mapped at `address` in this process ("" for anonymous memory), from /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) == 6 else ""
    return ""


def test_encoded_arrays_are_memory_mapped_views_of_the_arrow_cache_and_filtering_copies_no_ids(text, tmp_path):
    tok = train_tokenizer(text, TokenizerConfig(vocab_size=64), tmp_path)
    corpus = encode(text, tok, tmp_path)
    (cache_file,) = (tmp_path / "encoded").glob("*.arrow")
    for name in ("src", "src_offsets", "tgt", "tgt_offsets"):
        array = getattr(corpus, name)
        assert not array.flags.writeable and not array.flags.owndata
        assert _mapped_file(array.ctypes.data) == str(cache_file.resolve()), name
    assert corpus.src_ids(7).tolist() == tok.encode([text.src[7]])[0]
    kept, _ = filter_for_training(corpus, DataConfig(max_len=4))
    assert 0 < len(kept) < len(corpus)
    assert kept.src is corpus.src and kept.tgt is corpus.tgt  # the same mapped buffers
    for i, line in enumerate(kept.lines.tolist()):
        assert kept.tgt_ids(i).tolist() == corpus.tgt_ids(line).tolist()


def test_the_map_with_two_processes_gives_the_ids_of_one_process(tmp_path, caplog):
    pairs = synthetic_pairs(3000, seed=9, min_len=1, max_len=12)
    pairs[17] = ("", "")  # blank lines stay, line for line
    pairs[2999] = ("w01", "")
    text = ParallelText([s for s, _ in pairs], [t for _, t in pairs], origin="test")
    tok = train_tokenizer(text, TokenizerConfig(vocab_size=64), tmp_path)
    with caplog.at_level(logging.INFO):
        one = encode(text, tok, tmp_path / "one", num_proc=1)
        two = encode(text, tok, tmp_path / "two", num_proc=2)
    assert "with 1 processes" in caplog.text and "with 2 processes" in caplog.text
    expected = EncodedCorpus.from_ids(tok.encode(text.src), tok.encode(text.tgt))
    for name in EncodedCorpus.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(one, name), getattr(expected, name))
        np.testing.assert_array_equal(getattr(two, name), getattr(expected, name))
    assert len(two) == 3000 and two.src_lengths[17] == 0 and two.tgt_lengths[2999] == 0


def test_text_digest_depends_on_content_only_not_on_arrow_chunks(text):
    chunked = ParallelText(
        pa.chunked_array([text.src[:100], text.src[100:]], pa.large_string()),
        pa.chunked_array([text.tgt[:7], text.tgt[7:]], pa.string()),
        origin="other",
    )
    assert text_digest(chunked) == text_digest(text)
    moved = ParallelText(text.src[:-1] + [text.src[-1] + text.tgt[0]], [""] + text.tgt[1:], origin="test")
    assert text_digest(moved) != text_digest(text)  # the same bytes split differently


def test_tokenizer_training_samples_non_blank_sentences_beyond_the_limit(text):
    small = ParallelText(["a", " ", "b c"], ["", "d", "e"], origin="test")
    assert training_sentences(small, limit=10) == ["a", "b c", "d", "e"]  # sources first, blanks out
    sample = training_sentences(text, limit=50)
    assert len(sample) == 50 and len(set(sample)) > 40
    assert sample == training_sentences(text, limit=50)  # a fixed sample
    assert set(sample) <= set(text.src + text.tgt)
