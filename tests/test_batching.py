import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtapp.batching import EpochBatches, build_strategy, collate
from mtapp.batching.inference import inference_batches
from mtapp.batching.packed_rows import PackedRows, first_fit
from mtapp.batching.tokens import TokenBuckets
from mtapp.config import BatchingConfig, ConfigError, config_from_dict
from mtapp.specials import BOS, EOS, PAD, SOURCE_SPECIALS, TARGET_SPECIALS

lengths = st.lists(st.integers(1, 60), min_size=1, max_size=400)


def buckets(src, tgt, max_tokens=256, seed=0, batch_cost=0.125, multiple_of=1):
    return TokenBuckets(np.array(src), np.array(tgt), max_tokens, seed, batch_cost, multiple_of)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), max_tokens=st.integers(64, 2048), batch_cost=st.floats(0, 1), epoch=st.integers(1, 5))
def test_every_index_exactly_once_and_budget_never_exceeded(data, max_tokens, batch_cost, epoch):
    src = np.array(data.draw(lengths))
    tgt = np.array(data.draw(st.lists(st.integers(1, 60), min_size=len(src), max_size=len(src))))
    batches = buckets(src, tgt, max_tokens, batch_cost=batch_cost).plan(epoch)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(src)))
    for b in batches:
        assert len(b) * (src[b] + 1).max() <= max_tokens  # +1: eos / bos
        assert len(b) * (tgt[b] + 1).max() <= max_tokens


def test_same_seed_and_epoch_give_the_same_batches_and_epochs_differ():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, 2000), rng.integers(1, 30, 2000)
    a, b = buckets(src, tgt, seed=3).plan(2), buckets(src, tgt, seed=3).plan(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    c = buckets(src, tgt, seed=3).plan(3)
    assert [x.tolist() for x in a] != [x.tolist() for x in c]


def test_resume_mid_epoch_continues_with_exactly_the_remaining_batches():
    rng = np.random.default_rng(1)
    src, tgt = rng.integers(1, 30, 1000), rng.integers(1, 30, 1000)
    full = EpochBatches(buckets(src, tgt))
    reference = [b.tolist() for b in full.epoch_iter()] + [b.tolist() for b in full.epoch_iter()]

    first = EpochBatches(buckets(src, tgt))
    taken = []
    for i, b in enumerate(first.epoch_iter()):
        taken.append(b.tolist())
        if i == 6:
            break
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 7}
    resumed = EpochBatches(buckets(src, tgt))
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in resumed.epoch_iter()] + [b.tolist() for b in resumed.epoch_iter()]
    assert taken + rest == reference
    assert resumed.state_dict() == {"epoch": 3, "position": 0}


def test_an_epoch_is_planned_once(monkeypatch):
    src, tgt = np.arange(1, 200) % 30 + 1, np.arange(1, 200) % 20 + 1
    strategy = buckets(src, tgt)
    calls = []
    plan = strategy.plan
    monkeypatch.setattr(strategy, "plan", lambda epoch: calls.append(epoch) or plan(epoch))
    batches = EpochBatches(strategy)
    n = len(batches.batches())
    assert len(list(batches.epoch_iter())) == n and calls == [1]


def test_sorted_buckets_pad_far_less_than_random_batches():
    rng = np.random.default_rng(2)
    src = rng.integers(3, 40, 5000)
    tgt = np.clip(src + rng.integers(-3, 4, 5000), 1, None)
    s, t = src + 1, tgt + 1

    def efficiency(batches):
        slots = sum(len(b) * (s[b].max() + t[b].max()) for b in batches)
        return (s.sum() + t.sum()) / slots

    sorted_eff = efficiency(buckets(src, tgt, max_tokens=1024).plan(1))
    perm = rng.permutation(5000)
    random_eff = efficiency(np.array_split(perm, len(perm) // 40))
    assert sorted_eff > 0.95 > 0.7 > random_eff


def test_batch_cost_trades_padding_for_fewer_batches():
    rng = np.random.default_rng(3)
    src, tgt = rng.integers(1, 40, 3000), rng.integers(1, 40, 3000)
    no_cost, high_cost = buckets(src, tgt, 512, batch_cost=0.0).plan(1), buckets(src, tgt, 512, batch_cost=2.0).plan(1)
    assert all(len(set((src[b]).tolist())) == 1 and len(set(tgt[b].tolist())) == 1 for b in no_cost)
    assert len(high_cost) < len(no_cost)


def test_a_sentence_longer_than_the_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit batching.max_tokens=16"):
        buckets([3, 20], [3, 3], max_tokens=16)


@pytest.mark.parametrize("setting", ["max_tokens", "row_tokens"])
def test_the_config_and_the_strategies_word_the_budget_check_alike(setting):
    strategy = "tokens" if setting == "max_tokens" else "packed_rows"
    key = f"batching.{setting}"
    message = f"a sentence of 21 tokens (eos or bos included) does not fit {key}=16: raise {key} or lower data.max_len"
    expected = re.escape(message)
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"data": {"max_len": 20}, "batching": {"strategy": strategy, setting: 16}})
    with pytest.raises(ConfigError, match=expected):
        if strategy == "tokens":
            buckets([3, 20], [3, 3], max_tokens=16)
        else:
            PackedRows(np.array([3, 3]), np.array([3, 20]), max_tokens=64, row_tokens=16, seed=0)


@pytest.mark.parametrize("side", ["post", "pre"])
def test_collate_shapes_and_masks(side):  # the example of batch.py's docstring
    src = [np.array([5, 6, 7]), np.array([8])]
    tgt = [np.array([9]), np.array([10, 11, 12, 13])]
    b = collate(src, tgt, [4, 9], side)
    assert b.src.shape == (2, 4) and b.tgt_in.shape == (2, 5) and b.tgt_out.shape == (2, 5)
    assert b.src_lengths.tolist() == [4, 2]
    if side == "post":
        assert b.src.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    else:
        assert b.src.tolist() == [[5, 6, 7, EOS], [PAD, PAD, 8, EOS]]
    assert b.src_pad_mask.tolist() == (b.src == PAD).tolist()
    assert b.tgt_in.tolist() == [[BOS, 9, PAD, PAD, PAD], [BOS, 10, 11, 12, 13]]
    assert b.tgt_out.tolist() == [[9, EOS, PAD, PAD, PAD], [10, 11, 12, 13, EOS]]
    assert b.tgt_pad_mask.tolist() == (b.tgt_out == PAD).tolist()
    assert b.indices.tolist() == [4, 9]
    assert (b.src_tokens, b.tgt_tokens, b.slots) == (6, 7, 8 + 10)
    assert b.to("cpu").src.dtype == torch.int64


@pytest.mark.parametrize("strategy", ["global", "random", "sorted", "tokens"])
def test_the_strategy_carries_batching_pad_side_to_collate(strategy):
    src, tgt = corpus_lengths(300)
    for side in ("post", "pre"):
        cfg = BatchingConfig(strategy=strategy, pad_side=side, max_tokens=512, batch_size=16, pool_batches=2)
        s = build_strategy(cfg, src, tgt)
        item = s.plan(1)[0]
        batch = s.collate(_FakeCorpus(src, tgt), item)
        pads = batch.src_pad_mask
        assert s.pad_side == side and pads.any()
        assert (pads[:, -1] if side == "post" else pads[:, 0]).eq(pads.any(dim=1)).all()
        assert not batch.tgt_pad_mask[:, 0].any()  # the target is post-padded either way


def test_lengths_count_the_specials_collate_adds():
    src, tgt = corpus_lengths(200)
    s = build_strategy(BatchingConfig(strategy="random", batch_size=8), src, tgt)
    item = s.plan(1)[0]
    batch = s.collate(_FakeCorpus(src, tgt), item)
    assert batch.src_lengths.tolist() == (src[item] + SOURCE_SPECIALS).tolist() == s.src[item].tolist()
    assert (~batch.tgt_pad_mask).sum(dim=1).tolist() == (tgt[item] + TARGET_SPECIALS).tolist() == s.tgt[item].tolist()


@settings(max_examples=50, deadline=None)
@given(lens=lengths, max_tokens=st.integers(1, 500))
def test_inference_batches_cover_everything_within_budget(lens, max_tokens):
    lens = np.array(lens)
    batches = inference_batches(lens, max_tokens)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lens)))
    for b in batches:
        assert len(b) == 1 or len(b) * (lens[b].max() + 1) <= max_tokens


def corpus_lengths(n=3000, seed=4):
    rng = np.random.default_rng(seed)
    src = rng.integers(2, 45, n)
    return src, np.clip(src + rng.integers(-4, 5, n), 1, None)


@pytest.mark.parametrize("strategy", ["global", "random", "sorted", "tokens", "packed_rows"])
def test_every_strategy_covers_each_sentence_once_per_epoch(strategy):
    src, tgt = corpus_lengths()
    s = build_strategy(BatchingConfig(strategy=strategy, max_tokens=1024, batch_size=50, pool_batches=5), src, tgt)
    for epoch in (1, 2):
        plan = s.plan(epoch)
        flat = np.concatenate([item[:, 0] if item.ndim == 2 else item for item in plan])
        assert sorted(flat.tolist()) == list(range(len(src)))
    assert [x.tolist() for x in s.plan(1)] != [x.tolist() for x in s.plan(2)]


def test_padding_efficiency_orders_the_strategies_as_expected():
    src, tgt = corpus_lengths()

    def eff(**kw):
        return build_strategy(BatchingConfig(**kw), src, tgt).efficiency(1)

    glob, rand = eff(strategy="global", batch_size=64), eff(strategy="random", batch_size=64)
    srt, tok = eff(strategy="sorted", batch_size=64, pool_batches=20), eff(strategy="tokens", max_tokens=2048)
    packed = eff(strategy="packed_rows", max_tokens=2048, row_tokens=256)
    assert glob["efficiency"] < rand["efficiency"] < srt["efficiency"] < tok["efficiency"] < packed["efficiency"]
    assert packed["efficiency"] > 0.98 and tok["efficiency"] > 0.9
    assert glob["batches"] == rand["batches"] == -(-len(src) // 64)
    assert glob["mean_sentences"] == pytest.approx(len(src) / glob["batches"])


def test_global_pads_to_the_corpus_maximum_and_random_to_the_batch_maximum():
    src, tgt = corpus_lengths(500)
    cfg = BatchingConfig(batch_size=32)
    glob = build_strategy(replace(cfg, strategy="global"), src, tgt)
    rand = build_strategy(replace(cfg, strategy="random"), src, tgt)
    first = glob.plan(1)[0]
    assert glob.widths(first) == (src.max() + 1, tgt.max() + 1)
    assert rand.widths(first) == (src[first].max() + 1, tgt[first].max() + 1)
    assert [b.tolist() for b in glob.plan(3)] == [b.tolist() for b in rand.plan(3)]


def test_sorted_buckets_are_length_sorted_within_pools():
    src, tgt = corpus_lengths(2000)
    s = build_strategy(BatchingConfig(strategy="sorted", batch_size=20, pool_batches=10), src, tgt)
    plan = s.plan(1)
    assert all(len(b) == 20 for b in plan)
    spread = np.mean([src[b].max() - src[b].min() for b in plan])
    random = build_strategy(BatchingConfig(strategy="random", batch_size=20), src, tgt).plan(1)
    assert spread < 0.2 * np.mean([src[b].max() - src[b].min() for b in random])


@pytest.mark.parametrize("multiple", [1, 8])
def test_tokens_multiple_of_rounds_padded_lengths_and_keeps_the_budget(multiple):
    src, tgt = corpus_lengths(1000)
    s = buckets(src, tgt, max_tokens=512, multiple_of=multiple)
    for b in s.plan(1):
        width_src, width_tgt = s.widths(b)
        assert width_src % multiple == 0 and width_tgt % multiple == 0
        assert len(b) * max(width_src, width_tgt) <= 512
        batch = s.collate(_FakeCorpus(src, tgt), b)
        assert batch.src.shape == (len(b), width_src) and batch.tgt_in.shape == (len(b), width_tgt)


def test_packed_rows_fit_each_row_and_number_the_sentences_of_a_row():
    src, tgt = corpus_lengths(800)
    s = build_strategy(BatchingConfig(strategy="packed_rows", max_tokens=512, row_tokens=128), src, tgt)
    corpus = _FakeCorpus(src, tgt)
    for item in s.plan(1)[:5]:
        batch = s.collate(corpus, item)
        rows, width_src, width_tgt = s.shape(item)
        assert batch.src.shape == (rows, width_src) and batch.tgt_in.shape == (rows, width_tgt)
        assert rows <= 4 and width_src <= 128 and width_tgt <= 128
        for r in range(rows):
            members = item[item[:, 1] == r, 0]
            seg = batch.src_segments[r]
            assert seg.max() == len(members)
            assert [(seg == k + 1).sum().item() for k in range(len(members))] == (src[members] + 1).tolist()
            assert ((batch.src[r] == EOS) == (torch.diff(seg, append=torch.tensor([0])) != 0)).all()
        assert (batch.src_segments == 0).eq(batch.src_pad_mask).all()
        assert (batch.tgt_segments == 0).eq(batch.tgt_pad_mask).all()
        assert batch.tgt_tokens == int((tgt[item[:, 0]] + 1).sum())


def first_fit_one_by_one(src, tgt, capacity):
    """First fit the obvious way: each item scans every row (the reference for `first_fit`)."""
    fills, row_of = [], []
    for s, t in zip(src.tolist(), tgt.tolist()):
        row = next((r for r, (fs, ft) in enumerate(fills) if fs + s <= capacity and ft + t <= capacity), len(fills))
        if row == len(fills):
            fills.append((0, 0))
        fills[row] = (fills[row][0] + s, fills[row][1] + t)
        row_of.append(row)
    return np.array(row_of)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), capacity=st.integers(8, 120), decreasing=st.booleans())
def test_first_fit_by_runs_places_every_item_where_one_by_one_first_fit_does(data, capacity, decreasing):
    n = data.draw(st.integers(1, 300))
    sizes = st.lists(st.integers(1, min(capacity, 12)), min_size=n, max_size=n)
    src, tgt = np.array(data.draw(sizes)), np.array(data.draw(sizes))
    if decreasing:  # the order PackedRows uses: long runs of equal pairs
        order = np.lexsort((tgt, src, -(src + tgt), -np.maximum(src, tgt)))
        src, tgt = src[order], tgt[order]
    np.testing.assert_array_equal(first_fit(src, tgt, capacity), first_fit_one_by_one(src, tgt, capacity))


class _FakeCorpus:
    """Token ids 4.. of the given lengths, standing in for an `EncodedCorpus`."""

    def __init__(self, src, tgt):
        self.src, self.tgt = src, tgt

    def src_ids(self, i):
        return np.arange(4, 4 + self.src[i])

    def tgt_ids(self, i):
        return np.arange(4, 4 + self.tgt[i])
