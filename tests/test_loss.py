import numpy as np
import torch
import torch.nn.functional as F

from mtapp.batching import collate
from mtapp.config import ModelConfig
from mtapp.loss import batch_loss, label_smoothed_nll
from mtapp.models import build_model


def test_value_and_gradient_match_torch_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(40, 17, requires_grad=True)
    gold = torch.randint(0, 17, (40,))
    loss, nll = label_smoothed_nll(logits, gold, 0.1)
    loss.backward()
    ours = logits.grad.clone()
    logits.grad = None
    ref = F.cross_entropy(logits, gold, label_smoothing=0.1, reduction="sum")
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(ours, logits.grad)
    torch.testing.assert_close(nll, F.cross_entropy(logits, gold, reduction="sum"))


def test_bf16_logits_get_a_bf16_gradient_close_to_float32():
    torch.manual_seed(1)
    logits = torch.randn(8, 50)
    gold = torch.randint(0, 50, (8,))
    low = logits.bfloat16().requires_grad_()
    label_smoothed_nll(low, gold, 0.1)[0].backward()
    high = logits.clone().requires_grad_()
    label_smoothed_nll(high, gold, 0.1)[0].backward()
    assert low.grad.dtype == torch.bfloat16
    torch.testing.assert_close(low.grad.float(), high.grad, atol=1e-2, rtol=0)


def test_batch_loss_ignores_pads_it_equals_the_sum_over_sentences_alone():
    torch.manual_seed(2)
    model = build_model(ModelConfig(d_model=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64), 30).eval()
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 30, n) for n in (2, 9, 5)]
    tgt = [rng.integers(4, 30, n) for n in (7, 1, 4)]
    together, _ = batch_loss(model, collate(src, tgt, [0, 1, 2]), 0.1)
    alone = sum(batch_loss(model, collate([s], [t], [0]), 0.1)[0] for s, t in zip(src, tgt))
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-4)
