"""prepare: every kind of corpus goes through one Arrow encoding path, cached by content; a
split that filtering leaves empty is an error naming the setting and the counts."""

import json

import datasets
import numpy as np
import pytest

from mtapp.config import config_from_dict
from mtapp.data import CorpusError, EncodedCorpus
from mtapp.data.encoded import EncodeBatch
from mtapp.data.prepare import prepare
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


def _text_corpus(tmp_path, train_pairs, val_pairs):
    write_text_corpus(tmp_path / "corpus", "train", train_pairs)
    write_text_corpus(tmp_path / "corpus", "val", val_pairs)


def test_a_second_prepare_reads_the_arrow_cache_without_encoding_again(tmp_path, monkeypatch):
    _text_corpus(tmp_path, synthetic_pairs(200, seed=2), synthetic_pairs(20, seed=3))
    cfg = config_from_dict(tiny_config(tmp_path))
    first = prepare(cfg)
    cached = sorted((tmp_path / "cache" / "encoded").glob("*.arrow"))
    assert len(cached) == 2  # train and val, nothing else left behind
    stamps = [p.stat().st_mtime_ns for p in cached]

    def fail(*args, **kwargs):
        raise AssertionError("encoded again although cached")

    monkeypatch.setattr(datasets.Dataset, "map", fail)
    monkeypatch.setattr(EncodeBatch, "__call__", fail)
    second = prepare(cfg)
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    for name in EncodedCorpus.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(first.train, name), getattr(second.train, name))
    assert first.tokenizer.model_bytes == second.tokenizer.model_bytes


def test_an_hf_json_corpus_goes_through_the_same_path_as_text_files(tmp_path):
    train, val = synthetic_pairs(200, seed=2), synthetic_pairs(20, seed=3)
    train[5] = ("w01 w02", "")  # a blank side: dropped from training, counted
    _text_corpus(tmp_path, train, val)
    text_data = prepare(config_from_dict(tiny_config(tmp_path)))
    for split, pairs in (("train", train), ("val", val)):
        rows = [{"translation": {"xx": s, "yy": t}} for s, t in pairs]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "val")}
    hf = tiny_config(
        tmp_path, data={"corpus": "hf", "hf_path": "json", "paths": paths, "cache_dir": str(tmp_path / "hf")}
    )
    hf_data = prepare(config_from_dict(hf))
    assert hf_data.tokenizer.model_bytes == text_data.tokenizer.model_bytes  # the same text, the same model
    assert hf_data.dropped == text_data.dropped == {"empty": 1, "too_long": 0}
    assert 5 not in hf_data.train.lines
    for name in EncodedCorpus.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(hf_data.train, name), getattr(text_data.train, name))
    assert len(list((tmp_path / "hf" / "encoded").glob("*.arrow"))) == 2
    assert hf_data.valid_text.src == [s for s, _ in val]


def test_a_training_split_filtered_to_nothing_is_an_error_naming_max_len_and_the_counts(tmp_path):
    train = synthetic_pairs(30, seed=2, min_len=4, max_len=9)
    train[0] = ("", "W01")
    _text_corpus(tmp_path, train, synthetic_pairs(5, seed=3))
    cfg = config_from_dict(tiny_config(tmp_path, data={"max_len": 1}))
    message = (
        r"no training pair is left .*of its 30 pairs, 1 have an empty side and 29 a side longer than data\.max_len=1 "
    )
    with pytest.raises(CorpusError, match=message):
        prepare(cfg)


def test_a_validation_split_without_a_usable_pair_is_an_error(tmp_path):
    val = [(" ".join(["w03"] * 40), "W03"), ("", "W04"), ("w05", "  ")]
    _text_corpus(tmp_path, synthetic_pairs(100, seed=2, max_len=5), val)
    cfg = config_from_dict(tiny_config(tmp_path, data={"max_len": 12}))
    message = (
        r"the validation split 'val' \(\S*val\.xx \+ \S*val\.yy\) has no usable pair: of its 3 pairs, "
        r"2 have an empty side and 1 a side longer than data\.max_len=12 subwords"
    )
    with pytest.raises(CorpusError, match=message):
        prepare(cfg)
    assert prepare(config_from_dict(tiny_config(tmp_path, data={"max_len": 100}))).valid.lines.tolist() == [0]
