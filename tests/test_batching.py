import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtapp.batching import EpochBatches, TokenBuckets, collate
from mtapp.batching.inference import inference_batches
from mtapp.tokenization import BOS, EOS, PAD

lengths = st.lists(st.integers(1, 60), min_size=1, max_size=400)


def buckets(src, tgt, max_tokens=256, seed=0, batch_cost=0.125):
    return TokenBuckets(np.array(src), np.array(tgt), max_tokens, seed, batch_cost)


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


@pytest.mark.parametrize("side", ["post", "pre"])
def test_collate_shapes_and_masks(side):
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


@settings(max_examples=50, deadline=None)
@given(lens=lengths, max_tokens=st.integers(1, 500))
def test_inference_batches_cover_everything_within_budget(lens, max_tokens):
    lens = np.array(lens)
    batches = inference_batches(lens, max_tokens)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lens)))
    for b in batches:
        assert len(b) == 1 or len(b) * (lens[b].max() + 1) <= max_tokens
