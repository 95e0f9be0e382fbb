"""Subword regularization (`tokenizer.sampling_alpha`): the training pairs are segmented anew each
epoch, reproducibly by seed and epoch, into pieces that still spell the same text; validation and the
tokenizer itself are untouched, and a resumed stream continues with the same batches."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from mtapp import rundir, train
from mtapp.batching import build_strategy
from mtapp.batching.sharded import shard
from mtapp.config import ConfigError, TokenizerConfig, config_from_dict
from mtapp.data.encoded import MODEL_KEYS
from mtapp.data.prepare import prepare
from mtapp.trainer import CorpusBatches, SampledBatches
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sampling")
    write_text_corpus(tmp / "corpus", "train", synthetic_pairs(300, seed=1))
    write_text_corpus(tmp / "corpus", "val", synthetic_pairs(20, seed=2))
    cfg = config_from_dict(tiny_config(tmp, tokenizer={"sampling_alpha": 0.1}))
    return tmp, cfg, prepare(cfg)


def stream(cfg, data, alpha=0.1, seed=1, max_len=100):
    def make_strategy(src, tgt):
        return build_strategy(cfg.batching, src, tgt)

    return SampledBatches(make_strategy, data, alpha, seed, max_len)


def epoch_rows(batches) -> dict[int, tuple[list[int], list[int]]]:
    """Pair (its position in the filtered training corpus) -> (source ids, target ids), for every pair
    the stream hands out in its current epoch."""
    rows = {}
    for batch in batches.epoch_iter():
        for row, index in enumerate(batch.indices):
            src = [i for i in batch.src[row].tolist() if i > 3]
            tgt = [i for i in batch.tgt_out[row].tolist() if i > 3]
            rows[int(index)] = (src, tgt)
    return rows


def test_sampled_segmentations_change_by_epoch_spell_the_same_text_and_repeat_by_seed(data):
    _, cfg, prepared = data
    tok = prepared.tokenizer
    first, again = stream(cfg, prepared), stream(cfg, prepared)
    epoch1, epoch1_again = epoch_rows(first), epoch_rows(again)
    assert epoch1 == epoch1_again  # the same seed and epoch: the same segmentations
    epoch2 = epoch_rows(first)
    assert len(epoch1) == len(epoch2) == len(prepared.train)  # every training pair, every epoch
    changed = sum(epoch1[line] != epoch2[line] for line in epoch1)
    assert changed > len(epoch1) // 4
    one_best = prepared.train.src_ids
    assert sum(epoch1[i][0] != one_best(i).tolist() for i in epoch1) > len(epoch1) // 4
    for i, (src, tgt) in epoch2.items():
        line = prepared.train.lines[i]
        assert tok.decode([src]) == [prepared.train_text.src[line]]
        assert tok.decode([tgt]) == [prepared.train_text.tgt[line]]
    other_seed = epoch_rows(stream(cfg, prepared, seed=2))
    assert other_seed != epoch1


def test_a_stream_resumed_mid_epoch_hands_out_the_batches_the_whole_one_does(data):
    _, cfg, prepared = data
    whole = stream(cfg, prepared)
    list(whole.epoch_iter())
    expected = [b.src.tolist() for b in whole.epoch_iter()]  # epoch 2
    cut = stream(cfg, prepared)
    list(cut.epoch_iter())
    it = cut.epoch_iter()
    handed = [next(it).src.tolist() for _ in range(2)]
    state = cut.state_dict()
    resumed = stream(cfg, prepared)
    resumed.load_state_dict(state)
    assert state == {"epoch": 2, "position": 2}
    assert handed + [b.src.tolist() for b in resumed.epoch_iter()] == expected


def test_a_sampled_side_longer_than_max_len_keeps_its_one_best_segmentation(data):
    _, cfg, prepared = data
    longest = int(max(prepared.train.src_lengths.max(), prepared.train.tgt_lengths.max()))
    capped = stream(cfg, prepared, alpha=0.01, max_len=longest)  # noisy: most sides come out longer
    capped.segment()
    corpus = capped.corpus
    assert corpus.src_lengths.max() <= longest and corpus.tgt_lengths.max() <= longest
    fell_back = [i for i in range(len(corpus)) if np.array_equal(corpus.src_ids(i), prepared.train.src_ids(i))]
    assert fell_back  # some sides were too long sampled and kept the one-best ids
    assert len(corpus) == len(prepared.train)


def test_alpha_zero_trains_on_the_one_best_segmentation_and_sampling_shares_the_tokenizer(data, tmp_path):
    tmp, cfg, prepared = data
    plain = prepare(config_from_dict(tiny_config(tmp)))  # sampling_alpha 0: the same cached tokenizer
    assert plain.tokenizer.model_bytes == prepared.tokenizer.model_bytes
    assert plain.train_text is None and prepared.train_text is not None  # the text is kept only to sample
    assert len(list((tmp / "cache" / "tokenizers").glob("*.model"))) == 1
    batches = CorpusBatches(build_strategy(cfg.batching, plain.train.src_lengths, plain.train.tgt_lengths), plain.train)
    for batch in batches.epoch_iter():
        for row, index in enumerate(batch.indices):
            assert [i for i in batch.src[row].tolist() if i > 3] == plain.train.src_ids(index).tolist()


def test_two_ranks_segment_alike_and_train_every_pair_each_epoch_between_them(data):
    _, cfg, prepared = data

    def rank(r):
        def make_strategy(src, tgt):
            return shard(build_strategy(cfg.batching, src, tgt), r, 2)

        return SampledBatches(make_strategy, prepared, 0.1, 1, 100)

    ranks = [rank(0), rank(1)]
    for _ in range(2):  # epochs 1 and 2
        shares = [epoch_rows(r) for r in ranks]
        assert set(shares[0]) | set(shares[1]) == set(range(len(prepared.train)))
        for i in set(shares[0]) & set(shares[1]):  # a batch repeated to even out the ranks' steps
            assert shares[0][i] == shares[1][i]
        np.testing.assert_array_equal(ranks[0].corpus.src, ranks[1].corpus.src)  # one segmentation for both


def test_the_tokenizer_cache_key_is_every_tokenizer_key_but_the_training_only_one():
    assert set(MODEL_KEYS) == {f.name for f in dataclasses.fields(TokenizerConfig)} - {"sampling_alpha"}


def test_an_alpha_outside_0_to_1_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer.sampling_alpha"):
        config_from_dict(tiny_config(tmp_path, tokenizer={"sampling_alpha": 1.5}))


def test_python_m_mtapp_train_with_sampling_trains_every_pair_on_a_new_segmentation_each_epoch(data, tmp_path):
    tmp, _, prepared = data
    tokens = {}
    for alpha in (0.0, 0.1):
        config = tmp_path / f"alpha{alpha}.yaml"
        raw = tiny_config(tmp, tokenizer={"sampling_alpha": alpha}, train={"max_epochs": 2, "tensorboard": False})
        config.write_text(yaml.safe_dump(raw))
        run = tmp_path / f"run{alpha}"
        assert train.main(["--config", str(config), "--run-dir", str(run)]) == 0
        epochs = [r for r in map(json.loads, rundir.log_file(run).read_text().splitlines()) if r["event"] == "epoch"]
        assert [r["sentences"] for r in epochs] == [len(prepared.train)] * 2
        tokens[alpha] = [r["tgt_tokens"] for r in epochs]
    one_best = int(prepared.train.tgt_lengths.sum()) + len(prepared.train)  # + eos
    assert tokens[0.0] == [one_best, one_best]
    assert tokens[0.1][0] != tokens[0.1][1] and one_best not in tokens[0.1]
