import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mtapp.batching import collate
from mtapp.models import Seq2Seq, build_model
from mtapp.search import beam_search, greedy, normalised, row_topk
from mtapp.specials import EOS
from tests.synthetic import EXACT_MODELS, random_ids

A, B = 4, 5
VOCAB = 6


@dataclass
class PrefixState:
    fed: torch.Tensor  # (rows, t) tokens fed so far, bos first

    def reorder(self, index):
        return PrefixState(self.fed.index_select(0, index))


class Scripted(Seq2Seq):
    """Next-token probabilities looked up by the prefix, so the best output is known by hand.

    ()    -> A 0.6, B 0.4
    (A)   -> A 0.4, B 0.3, eos 0.3
    (A A) -> eos 1.0
    (B)   -> eos 0.9, A 0.1
    anything else -> eos 1.0
    Best by probability: "B" (0.4 * 0.9 = 0.36) over "A A" (0.6 * 0.4 = 0.24). Per token, with
    eos counted: log(0.36) / 2 = -0.51 < log(0.24) / 3 = -0.48, so length penalty 1 picks "A A".
    """

    TABLE = {(): {A: 0.6, B: 0.4}, (A,): {A: 0.4, B: 0.3, EOS: 0.3}, (A, A): {EOS: 1.0}, (B,): {EOS: 0.9, A: 0.1}}

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, batch):
        return PrefixState(torch.zeros(batch.size, 0, dtype=torch.long))

    def decode_step(self, tokens, state):
        state = PrefixState(torch.cat([state.fed, tokens[:, None]], 1))
        probs = torch.full((len(tokens), VOCAB), 1e-9)
        for row, fed in enumerate(state.fed.tolist()):
            for token, p in self.TABLE.get(tuple(fed[1:]), {EOS: 1.0}).items():
                probs[row, token] = p
        return probs.log(), state

    def forward(self, batch):
        raise NotImplementedError

    def output_embedding(self):
        raise NotImplementedError


def one_source(n=1):
    return collate([np.array([7, 8, 9])] * n, None, list(range(n)))


def test_scripted_greedy_and_beam_choose_the_hand_computed_outputs():
    model = Scripted()
    assert [h.tokens for h in greedy(model, one_source(), 2.0, 5)] == [[A, A]]
    no_penalty = beam_search(model, one_source(), 2, length_penalty=0.0, max_len_a=2.0, max_len_b=5)
    assert no_penalty[0].tokens == [B]
    assert no_penalty[0].log_prob == pytest.approx(math.log(0.36), abs=1e-5)
    per_token = beam_search(model, one_source(), 2, length_penalty=1.0, max_len_a=2.0, max_len_b=5)
    assert per_token[0].tokens == [A, A]
    assert per_token[0].log_prob == pytest.approx(math.log(0.24), abs=1e-5)  # ranked by log(0.24) / 3
    assert normalised(per_token[0], 1.0) == pytest.approx(math.log(0.24) / 3, abs=1e-5)
    wide = beam_search(model, one_source(), 4, length_penalty=1.0, max_len_a=2.0, max_len_b=5)
    assert wide[0].tokens == [A, A]  # 2K = 8 candidates wanted from a first step that has 6
    # "B" may not end after one token: "B A" (0.04) loses to "A A" (0.24) and "A B" (0.18)
    at_least_two = beam_search(model, one_source(), 2, 0.0, max_len_a=2.0, max_len_b=5, min_len=2)
    assert at_least_two[0].tokens == [A, A] and at_least_two[0].log_prob == pytest.approx(math.log(0.24), abs=1e-5)
    limit_wins = beam_search(model, one_source(), 2, 0.0, max_len_a=0.0, max_len_b=1, min_len=3)
    assert limit_wins[0].tokens == [B]  # a limit of 1 token: min_len cannot hold, the limit ends it


@pytest.fixture(params=EXACT_MODELS)
def model(request):
    torch.manual_seed(3)
    return build_model(EXACT_MODELS[request.param], 30).eval()


def sources(seed, lengths):
    return random_ids(seed, lengths, vocab=30)


def test_beam_one_equals_greedy(model):
    src = sources(0, [3, 8, 1, 12, 5])
    batch = collate(src, None, range(len(src)))
    g = greedy(model, batch, 1.5, 4)
    b = beam_search(model, batch, 1, 0.0, 1.5, 4)
    assert [h.tokens for h in b] == [h.tokens for h in g]
    for x, y in zip(b, g):
        assert x.log_prob == pytest.approx(y.log_prob, abs=1e-4)


class EosEager(Seq2Seq):
    """A model whose end-of-sentence logit is raised by 20: it ends at once when it may."""

    def __init__(self, inner: Seq2Seq):
        super().__init__()
        self.inner = inner

    def encode(self, batch):
        return self.inner.encode(batch)

    def decode_step(self, tokens, state):
        logits, state = self.inner.decode_step(tokens, state)
        logits[:, EOS] += 20.0
        return logits, state

    def forward(self, batch):
        raise NotImplementedError

    def output_embedding(self):
        raise NotImplementedError


def test_min_len_with_an_equal_limit_gives_every_output_that_length(model):
    src = sources(5, [3, 8, 1, 12, 5])
    batch, eager = collate(src, None, range(len(src))), EosEager(model)
    for hyps in (greedy(eager, batch, 0.0, 7, min_len=7), beam_search(eager, batch, 3, 1.0, 0.0, 7, min_len=7)):
        assert [len(h.tokens) for h in hyps] == [7] * len(src)
    assert {len(h.tokens) for h in beam_search(eager, batch, 3, 1.0, 0.0, 7, min_len=2)} == {2}
    assert {len(h.tokens) for h in greedy(eager, batch, 0.0, 7)} == {0}  # it ends at once when it may


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("side", ["post", "pre"])
def test_output_does_not_depend_on_the_batch(model, beam, side):
    src = sources(1, [6, 2, 11, 4, 9])

    def run(batch):
        if beam == 1:
            return greedy(model, batch, 1.5, 4)
        return beam_search(model, batch, beam, 1.0, 1.5, 4)

    together = run(collate(src, None, range(len(src)), side))
    alone = [run(collate([s], None, [0], side))[0] for s in src]
    assert [h.tokens for h in together] == [h.tokens for h in alone]


@pytest.mark.parametrize("beam", [1, 3])
def test_outputs_respect_the_length_limit(model, beam):
    src = sources(2, [1, 4, 10])
    batch = collate(src, None, range(3))
    hyps = greedy(model, batch, 0.5, 2) if beam == 1 else beam_search(model, batch, beam, 1.0, 0.5, 2)
    for s, h in zip(src, hyps):
        assert len(h.tokens) <= int(0.5 * len(s) + 2)
        assert EOS not in h.tokens


@pytest.mark.parametrize("width", [8000, 8037, 250, 30])  # a multiple of the groups, a tail, short rows
def test_row_topk_equals_topk_values_and_indices(width):
    torch.manual_seed(width)
    x = torch.randn(3, 5, width) * 4
    x[0, 1, 7:] = float("-inf")  # a row at its length limit: one finite entry
    x[0, 1, 7] = 0.0
    values, indices = row_topk(x, 10)
    expected = x.topk(10, dim=-1)
    assert torch.equal(values, expected.values)
    finite = torch.isfinite(expected.values)
    assert torch.equal(indices[finite], expected.indices[finite])  # -inf ties may come in any order
    assert torch.equal(x.gather(-1, indices), values)
