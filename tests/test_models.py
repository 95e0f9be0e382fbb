from dataclasses import replace

import pytest
import torch

from mtapp.batching import collate
from mtapp.models import build_model
from tests.synthetic import EXACT_MODELS, TINY
from tests.synthetic import random_ids as sentences

CFG = TINY


@pytest.fixture(params=EXACT_MODELS)
def model(request):
    torch.manual_seed(0)
    return build_model(EXACT_MODELS[request.param], 40).eval()


@pytest.mark.parametrize("side", ["post", "pre"])
def test_outputs_for_a_sentence_do_not_change_with_padding_in_its_batch(model, side):
    src, tgt = sentences(0, [4]), sentences(1, [5])
    alone = model(collate(src, tgt, [0], side))[0]  # (T, D)
    others_src, others_tgt = sentences(2, [1, 17, 9]), sentences(3, [12, 2, 8])
    batch = collate(src + others_src, tgt + others_tgt, [0, 1, 2, 3], side)
    with torch.no_grad():
        padded = model(batch)[0, : len(tgt[0]) + 1]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_pre_and_post_padding_give_the_same_real_outputs(model):
    src, tgt = sentences(4, [3, 11, 6]), sentences(5, [4, 9, 2])
    post = model(collate(src, tgt, [0, 1, 2], "post"))
    pre = model(collate(src, tgt, [0, 1, 2], "pre"))
    real = ~collate(src, tgt, [0, 1, 2]).tgt_pad_mask
    torch.testing.assert_close(pre[real], post[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["post", "pre"])
def test_incremental_decoding_equals_teacher_forcing(model, side):
    src, tgt = sentences(6, [5, 2, 8]), sentences(7, [6, 20, 1])  # 21 steps: the Transformer's cache grows once
    batch = collate(src, tgt, [0, 1, 2], side)
    with torch.no_grad():
        forced = model.project(model(batch))  # (B, T, V)
        state, steps = model.encode(batch), []
        for t in range(batch.tgt_in.shape[1]):
            logits, state = model.decode_step(batch.tgt_in[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-5)


def test_decoder_state_reorder_selects_and_repeats_rows(model):
    src, tgt = sentences(8, [3, 7]), sentences(9, [2, 2])
    batch = collate(src, tgt, [0, 1])
    with torch.no_grad():
        states = []
        for _ in range(2):  # the same state twice: a state is consumed by the step taken from it
            _, state = model.decode_step(batch.tgt_in[:, 0], model.encode(batch))
            states.append(state)
        full, _ = model.decode_step(batch.tgt_in[:, 1], states[0])
        picked, _ = model.decode_step(batch.tgt_in[[1, 1, 0], 1], states[1].reorder(torch.tensor([1, 1, 0])))
    torch.testing.assert_close(picked, full[[1, 1, 0]])


def test_embeddings_are_tied_to_the_output_projection(model):
    h = torch.randn(3, CFG.d_model)
    torch.testing.assert_close(model.project(h), h @ model.embed.weight.T)


def test_lstm_padded_mode_outputs_change_with_padding():
    torch.manual_seed(0)
    model = build_model(replace(CFG, type="lstm", encoder_padding="padded"), 40).eval()
    src, tgt = sentences(0, [4]), sentences(1, [5])
    with torch.no_grad():
        alone = model(collate(src, tgt, [0]))[0]
        padded = model(collate(src + sentences(2, [15]), tgt + sentences(3, [2]), [0, 1]))[0, : len(tgt[0]) + 1]
    assert (padded - alone).abs().max() > 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_the_cpu_low_precision_attention_computes_what_the_fused_kernel_does(causal):
    from mtapp.models.transformer import low_precision_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 7, 16, requires_grad=True) for _ in range(3))
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 5:] = mask[2, ..., 3:] = False  # padded keys
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    ours = low_precision_attention(q, k, v, mask, 0.0, causal)
    torch.testing.assert_close(ours, reference)  # float32: the same function
    grads = torch.autograd.grad(ours.sum(), (q, k, v))
    for g, r in zip(grads, torch.autograd.grad(reference.sum(), (q, k, v)), strict=True):
        torch.testing.assert_close(g, r)
    low = low_precision_attention(*(t.detach().bfloat16() for t in (q, k, v)), mask, 0.0, causal)
    assert low.dtype == torch.bfloat16  # no float32 round trip
    torch.testing.assert_close(low.float(), reference.detach(), atol=0.03, rtol=0.03)
