"""Exactness of the LSTM encoder's padding modes against encoding each sentence alone."""

import numpy as np
import pytest
import torch

from mtapp.batching import collate
from mtapp.models import rnn_encoder
from mtapp.models.rnn_encoder import LSTMEncoder

LENGTH_CASES = {
    "mixed": [5, 1, 9, 3, 7],
    "length_one": [1, 1, 4],
    "all_equal": [6, 6, 6],
    "one_long": [40, 2, 3, 1, 2],
}


def encoder(mode: str, layers: int = 2) -> LSTMEncoder:
    torch.manual_seed(0)
    return LSTMEncoder(input_size=8, hidden=6, layers=layers, dropout=0.0, padding=mode).eval()


def embedded(lengths, side, seed=0):
    """A batch of random source vectors shaped like `collate` pads them (eos included)."""
    rng = np.random.default_rng(seed)
    ids = [rng.integers(4, 50, n - 1) for n in lengths]  # collate appends eos
    batch = collate(ids, None, range(len(ids)), side)
    table = torch.randn(50, 8, generator=torch.Generator().manual_seed(seed))
    x = table[batch.src].masked_fill(batch.src_pad_mask[..., None], 0.0)
    return x, batch.src_lengths, batch.src_pad_mask


def encode_alone(enc, x, lengths, pad_mask):
    """Each row encoded by itself, without any padding."""
    rows = []
    for b in range(x.shape[0]):
        xb = x[b][~pad_mask[b]][None]
        rows.append(enc(xb, lengths[b : b + 1], torch.zeros(1, xb.shape[1], dtype=torch.bool)))
    return rows


@pytest.mark.parametrize("mode", ["masked", "packed", "unrolled"])
@pytest.mark.parametrize("side", ["post", "pre"])
@pytest.mark.parametrize("case", LENGTH_CASES)
def test_exact_modes_equal_encoding_each_sentence_alone(mode, side, case):
    enc = encoder(mode)
    x, lengths, pad_mask = embedded(LENGTH_CASES[case], side)
    with torch.no_grad():
        out = enc(x, lengths, pad_mask)
        alone = encode_alone(enc, x, lengths, pad_mask)
    for b, ref in enumerate(alone):
        real = out.outputs[b][~out.pad_mask[b]]
        torch.testing.assert_close(real, ref.outputs[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.final_h[:, b], ref.final_h[:, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.final_c[:, b], ref.final_c[:, 0], atol=1e-5, rtol=0)
        assert (out.outputs[b][out.pad_mask[b]] == 0).all()


@pytest.mark.parametrize("side", ["post", "pre"])
def test_exact_modes_agree_with_each_other_including_gradients(side):
    x, lengths, pad_mask = embedded(LENGTH_CASES["mixed"], side, seed=3)
    results = {}
    for mode in ("masked", "packed", "unrolled"):
        enc = encoder(mode)
        xg = x.clone().requires_grad_()
        out = enc(xg, lengths, pad_mask)
        real = torch.cat([out.outputs[b][~out.pad_mask[b]] for b in range(len(lengths))])
        (real.sum() + out.final_h.sum()).backward()
        results[mode] = (real.detach(), xg.grad, enc.lstm.weight_hh_l0.grad)
    for mode in ("masked", "unrolled"):
        for got, want in zip(results[mode], results["packed"]):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def padded_drift(side, layers):
    """Largest deviation of `padded` from encoding alone, over the rows that have padding."""
    enc = encoder("padded", layers)
    lengths = LENGTH_CASES["mixed"]
    x, lens, pad_mask = embedded(lengths, side)
    with torch.no_grad():
        out = enc(x, lens, pad_mask)
        alone = encode_alone(enc, x, lens, pad_mask)
    drift = {"fwd_out": 0.0, "bwd_out": 0.0, "final_h": 0.0}
    for b, ref in enumerate(alone):
        real = out.outputs[b][~out.pad_mask[b]]
        diff = (real - ref.outputs[0]).abs()
        drift["fwd_out"] = max(drift["fwd_out"], diff[:, :6].max().item())
        drift["bwd_out"] = max(drift["bwd_out"], diff[:, 6:].max().item())
        drift["final_h"] = max(drift["final_h"], (out.final_h[:, b] - ref.final_h[:, 0]).abs().max().item())
    return drift


def test_padded_mode_drifts_and_where_depends_on_the_pad_side():
    post, pre = padded_drift("post", layers=1), padded_drift("pre", layers=1)
    print(f"\npadded 1-layer LSTM drift vs. encoding alone: post-padding {post}, pre-padding {pre}")
    # post-padding: the forward pass reaches the pads only after the words, the backward pass starts on them
    assert post["fwd_out"] < 1e-6 and post["bwd_out"] > 1e-3 and post["final_h"] > 1e-3
    # pre-padding: the forward pass starts on the pads, the backward pass reaches them last
    assert pre["fwd_out"] > 1e-3 and pre["bwd_out"] < 1e-6 and pre["final_h"] > 1e-3


def test_padded_mode_drift_reaches_both_directions_from_the_second_layer_on():
    post, pre = padded_drift("post", layers=2), padded_drift("pre", layers=2)
    print(f"\npadded 2-layer LSTM drift vs. encoding alone: post-padding {post}, pre-padding {pre}")
    assert min(post.values()) > 1e-3 and min(pre.values()) > 1e-3


def test_the_lstm_leaves_cudnn_bf16_autocast_for_float32_and_keeps_fp16(monkeypatch):
    """cuDNN's autocast runs RNNs in fp16 whatever the autocast dtype; bf16 training has no loss
    scaler, so the LSTM runs in float32 there. fp16 autocast (with its scaler) stays fp16."""
    assert rnn_encoder.float32_under_autocast("cuda", torch.bfloat16)
    assert not rnn_encoder.float32_under_autocast("cuda", torch.float16)
    for native in (True, False):
        monkeypatch.setattr(rnn_encoder, "cpu_has_native_bf16", lambda native=native: native)
        assert rnn_encoder.float32_under_autocast("cpu", torch.bfloat16) is not native
