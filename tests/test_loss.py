import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtapp import loss as loss_module
from mtapp.batching import collate
from mtapp.config import ModelConfig
from mtapp.loss import batch_loss, projected_smoothed_nll
from mtapp.models import build_model


@pytest.mark.parametrize("rows", [40, 7, 1])  # several chunks, a partial chunk, one row
def test_value_and_gradients_match_torch_projection_and_cross_entropy(monkeypatch, rows):
    monkeypatch.setattr(loss_module, "CHUNK_ROWS", 16)
    torch.manual_seed(0)
    hidden = torch.randn(rows, 12, requires_grad=True)
    weight = torch.randn(17, 12, requires_grad=True)
    gold = torch.randint(0, 17, (rows,))
    loss, nll = projected_smoothed_nll(hidden, weight, gold, 0.1)
    (2.0 * loss).backward()  # the upstream gradient reaches both inputs
    ours = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    logits = hidden @ weight.T
    ref = F.cross_entropy(logits, gold, label_smoothing=0.1, reduction="sum")
    (2.0 * ref).backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(ours[0], hidden.grad)
    torch.testing.assert_close(ours[1], weight.grad)
    torch.testing.assert_close(nll, F.cross_entropy(logits, gold, reduction="sum"))


def test_under_bf16_autocast_gradients_keep_the_input_dtypes_and_stay_close_to_float32():
    torch.manual_seed(1)
    hidden = torch.randn(300, 32, requires_grad=True)  # more rows than one chunk
    weight = torch.randn(50, 32, requires_grad=True)
    gold = torch.randint(0, 50, (300,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = projected_smoothed_nll(hidden, weight, gold, 0.1)
    low.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    high, _ = projected_smoothed_nll(hidden, weight, gold, 0.1)
    high.backward()
    assert grads[0].dtype == grads[1].dtype == torch.float32
    torch.testing.assert_close(low, high, rtol=2e-2, atol=0)
    torch.testing.assert_close(grads[0], hidden.grad, rtol=0, atol=0.1)
    torch.testing.assert_close(grads[1], weight.grad, rtol=0, atol=0.5)


def test_without_gradients_nothing_is_kept_for_backward():
    hidden, weight = torch.randn(5, 8), torch.randn(11, 8)
    with torch.no_grad():
        loss, _ = projected_smoothed_nll(hidden, weight, torch.zeros(5, dtype=torch.long), 0.1)
    assert loss.grad_fn is None and torch.isfinite(loss)


def test_batch_loss_ignores_pads_it_equals_the_sum_over_sentences_alone():
    torch.manual_seed(2)
    model = build_model(ModelConfig(d_model=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64), 30).eval()
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 30, n) for n in (2, 9, 5)]
    tgt = [rng.integers(4, 30, n) for n in (7, 1, 4)]
    together, _, count = batch_loss(model, collate(src, tgt, [0, 1, 2]), 0.1)
    assert count == sum(len(t) + 1 for t in tgt)
    alone = sum(batch_loss(model, collate([s], [t], [0]), 0.1)[0] for s, t in zip(src, tgt))
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-4)


def test_packed_rows_give_the_loss_of_the_padded_computation_on_the_same_sentences():
    from mtapp.batching import build_strategy
    from mtapp.config import BatchingConfig
    from mtapp.data import EncodedCorpus

    torch.manual_seed(4)
    model = build_model(ModelConfig(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=64), 30).eval()
    rng = np.random.default_rng(1)
    n = 40
    corpus = EncodedCorpus.from_ids(
        [rng.integers(4, 30, k).tolist() for k in rng.integers(1, 12, n)],
        [rng.integers(4, 30, k).tolist() for k in rng.integers(1, 12, n)],
    )
    cfg = BatchingConfig(strategy="packed_rows", max_tokens=128, row_tokens=32)
    strategy = build_strategy(cfg, corpus.src_lengths, corpus.tgt_lengths)
    packed_total = padded_total = 0.0
    with torch.no_grad():
        for item in strategy.plan(1):
            batch = strategy.collate(corpus, item)
            assert batch.size < len(item)  # several sentences share a row
            packed_total += batch_loss(model, batch, 0.1)[0].item()
            padded = collate(
                [corpus.src_ids(i) for i in item[:, 0]], [corpus.tgt_ids(i) for i in item[:, 0]], item[:, 0]
            )
            padded_total += batch_loss(model, padded, 0.1)[0].item()
    assert packed_total == pytest.approx(padded_total, rel=1e-4)


def test_unmasked_loss_counts_every_padded_slot_as_a_target():
    torch.manual_seed(5)
    model = build_model(ModelConfig(d_model=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64), 30).eval()
    batch = collate([np.array([5, 6]), np.array([7])], [np.array([8, 9, 10, 11]), np.array([12])], [0, 1])
    masked, _, real = batch_loss(model, batch, 0.1)
    unmasked, _, slots = batch_loss(model, batch, 0.1, mask_padding=False)
    assert (real, slots) == (7, 10)
    assert unmasked > masked  # the three pad targets add loss
