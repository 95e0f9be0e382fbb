"""A bidirectional multi-layer LSTM encoder with four ways to meet padding.

All four modes share one `nn.LSTM`'s parameters, so they can be compared on the same weights:

  padded    the LSTM reads pads as if they were words (what naive code does). Its final state
            is the state after the last column of the padded batch: after the pads for
            post-padded rows (forward direction), after the pads for pre-padded rows (backward
            direction). That is what a naive model hands its decoder, so that is what we hand
            ours; attention still ignores pads, so the comparison isolates the state.
  masked    every step runs on every row, but a pad step leaves the state unchanged and emits a
            zero output (Keras Masking semantics): final states are exact.
  packed    `pack_padded_sequence(enforce_sorted=False)` on post-padded input; pre-padded rows
            are shifted to post-padding first (as fairseq does).
  unrolled  rows sorted by length, each time step runs the cell only on the rows still alive
            (a shrinking batch), in plain PyTorch; the backward direction runs over each row's
            reversed real tokens. It computes what packing computes.

Shapes: B batch, S source length, E input size, H hidden size per direction, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from mtapp.runtime import cpu_has_native_bf16

PADDING_MODES = ("padded", "masked", "packed", "unrolled")


@dataclass(frozen=True)
class EncoderOutput:
    """outputs (B, S, 2H), zero at pads; pad_mask (B, S) True at pads (the layout of `outputs`,
    which may differ from the input's: packing returns post-padded rows); final_h, final_c
    (L, B, 2H): each layer's last forward and backward states, concatenated."""

    outputs: torch.Tensor
    pad_mask: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor


class LSTM(nn.LSTM):
    """`nn.LSTM` that runs in float32 under autocast where autocast would run it wrong:
    - on CPUs without native bf16, oneDNN has no bf16 LSTM ("could not create a primitive
      descriptor for the LSTM forward propagation primitive", seen on an AMD EPYC with AVX2
      only), so forced bf16 (`amp: bf16`) runs there too, the LSTM in float32;
    - on CUDA under bf16 autocast, PyTorch's autocast wrapper of cuDNN RNNs casts to fp16
      whatever the autocast dtype (aten/src/ATen/cudnn/AutocastRNN.cpp), and bf16 training has
      no gradient scaler: small fp16 gradients would flush to zero. float32 cuDNN (TF32 on
      GPUs that have it) instead. fp16 autocast keeps cuDNN's fp16, with its scaler.
    Everything around the LSTM stays in the autocast dtype."""

    def forward(self, x, hx=None):
        data = x.data if isinstance(x, PackedSequence) else x
        kind = data.device.type
        if not torch.is_autocast_enabled(kind) or not float32_under_autocast(kind, torch.get_autocast_dtype(kind)):
            return super().forward(x, hx)
        x = x._replace(data=data.float()) if isinstance(x, PackedSequence) else data.float()
        hx = None if hx is None else tuple(h.float() for h in hx)
        with torch.autocast(kind, enabled=False):
            return super().forward(x, hx)


def float32_under_autocast(device_type: str, dtype: torch.dtype) -> bool:
    """Whether `LSTM` leaves autocast (`dtype`) on `device_type` and runs in float32."""
    if device_type == "cpu":
        return not cpu_has_native_bf16()
    return device_type == "cuda" and dtype == torch.bfloat16


class LSTMEncoder(nn.Module):
    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float, padding: str):
        super().__init__()
        if padding not in PADDING_MODES:
            raise ValueError(f"unknown encoder padding mode {padding!r} (choose from {', '.join(PADDING_MODES)})")
        self.padding, self.layers, self.dropout = padding, layers, dropout
        between = dropout if layers > 1 else 0.0  # nn.LSTM applies it between layers only
        self.lstm = LSTM(input_size, hidden, layers, batch_first=True, bidirectional=True, dropout=between)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor) -> EncoderOutput:
        """x (B, S, E) embedded source, lengths (B,) real tokens, pad_mask (B, S) True at pads."""
        if self.padding == "padded":
            return self._padded(x, pad_mask)
        if self.padding == "packed":
            return self._packed(x, lengths, pad_mask)
        run = self._masked if self.padding == "masked" else self._unrolled
        return self._layer_by_layer(run, x, lengths, pad_mask)

    # ---- padded and packed: nn.LSTM itself -----------------------------------------------------
    def _padded(self, x, pad_mask) -> EncoderOutput:
        out, (h, c) = self.lstm(x)
        return EncoderOutput(out.masked_fill(pad_mask[..., None], 0.0), pad_mask, _merge(h), _merge(c))

    def _packed(self, x, lengths, pad_mask) -> EncoderOutput:
        x, pad_mask = to_post_padding(x, lengths, pad_mask)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return EncoderOutput(out, pad_mask, _merge(h), _merge(c))

    # ---- masked and unrolled: the LSTM cell by hand, one layer and direction at a time -------
    def _layer_by_layer(self, run, x, lengths, pad_mask) -> EncoderOutput:
        finals_h, finals_c = [], []
        for layer in range(self.layers):
            if layer > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for reverse in (False, True):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, reverse)
                xw = F.linear(x, w_ih, b_ih + b_hh)  # (B, S, 4H): input projections of all steps at once
                out, h, c = run(xw, w_hh, lengths, pad_mask, reverse)
                outs.append(out)
                finals_h.append(h)
                finals_c.append(c)
            x = torch.cat(outs, dim=-1)  # (B, S, 2H)
        h_n, c_n = torch.stack(finals_h), torch.stack(finals_c)  # (2L, B, H), nn.LSTM's order
        return EncoderOutput(x, pad_mask, _merge(h_n), _merge(c_n))

    def _weights(self, layer: int, reverse: bool):
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return tuple(getattr(self.lstm, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    @staticmethod
    def _masked(xw, w_hh, lengths, pad_mask, reverse):
        """All rows at every step; a pad step keeps the state and outputs zeros."""
        b, s, _ = xw.shape
        h = c = xw.new_zeros(b, w_hh.shape[1])
        outputs = [None] * s
        for t in reversed(range(s)) if reverse else range(s):
            h_new, c_new = lstm_cell(xw[:, t], h, c, w_hh)
            real = ~pad_mask[:, t, None]
            h, c = torch.where(real, h_new, h), torch.where(real, c_new, c)
            outputs[t] = torch.where(real, h_new, 0.0)
        return torch.stack(outputs, dim=1), h, c

    @staticmethod
    def _unrolled(xw, w_hh, lengths, pad_mask, reverse):
        """Sorted rows, shrinking batch: step t runs only the rows longer than t."""
        xw, _ = to_post_padding(xw, lengths, pad_mask)
        order = lengths.argsort(descending=True, stable=True)
        lens = lengths[order]
        xw = xw[order]
        if reverse:
            xw = reverse_real(xw, lens)
        b, s, _ = xw.shape
        alive = (lens[None, :] > torch.arange(s, device=lens.device)[:, None]).sum(1).tolist()
        h = c = xw.new_zeros(b, w_hh.shape[1])
        steps = []
        for t in range(int(lens.max())):
            n = alive[t]
            h_new, c_new = lstm_cell(xw[:n, t], h[:n], c[:n], w_hh)
            steps.append(h_new)
            h, c = torch.cat([h_new, h[n:]]), torch.cat([c_new, c[n:]])
        out = xw.new_zeros(b, s, w_hh.shape[1])
        for t, h_t in enumerate(steps):
            out[: len(h_t), t] = h_t
        if reverse:
            out = reverse_real(out, lens)
        unsort = order.argsort()
        out, h, c = out[unsort], h[unsort], c[unsort]
        return _restore_padding(out, lengths, pad_mask), h, c


def lstm_cell(xw_t, h, c, w_hh):
    """One LSTM step: xw_t (N, 4H) = x W_ih^T + b_ih + b_hh; h, c (N, H). PyTorch's gate order."""
    i, f, g, o = (xw_t + F.linear(h, w_hh)).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def to_post_padding(x: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor):
    """Shift pre-padded rows left so that every row starts with its real tokens.

    x (B, S, ...) -> the same rows post-padded, and the post-padding mask (B, S)."""
    s = x.shape[1]
    positions = torch.arange(s, device=x.device)
    post_mask = positions[None, :] >= lengths[:, None]
    if torch.equal(post_mask, pad_mask):
        return x, pad_mask
    offset = (s - lengths)[:, None]  # pre-padded: real tokens start at S - length
    index = (positions[None, :] + offset).clamp(max=s - 1)
    shifted = x.gather(1, index.view(*index.shape, *[1] * (x.dim() - 2)).expand_as(x))
    return shifted.masked_fill(post_mask.view(*post_mask.shape, *[1] * (x.dim() - 2)), 0.0), post_mask


def _restore_padding(out: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Post-padded rows (B, S, H) back to the layout `pad_mask` describes (pre or post)."""
    s = out.shape[1]
    positions = torch.arange(s, device=out.device)
    if torch.equal(positions[None, :] >= lengths[:, None], pad_mask):
        return out
    index = (positions[None, :] - (s - lengths)[:, None]).clamp(min=0)  # pre-padded slot -> real slot
    moved = out.gather(1, index[..., None].expand_as(out))
    return moved.masked_fill(pad_mask[..., None], 0.0)


def reverse_real(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each post-padded row's first `length` steps; pads stay at the end."""
    s = x.shape[1]
    positions = torch.arange(s, device=x.device)
    index = (lengths[:, None] - 1 - positions[None, :]).clamp(min=0)
    index = torch.where(positions[None, :] < lengths[:, None], index, positions[None, :])
    return x.gather(1, index[..., None].expand_as(x))


def _merge(states: torch.Tensor) -> torch.Tensor:
    """(2L, B, H) in nn.LSTM's order (l0 fwd, l0 bwd, l1 fwd, ...) -> (L, B, 2H)."""
    two_l, b, h = states.shape
    return states.view(two_l // 2, 2, b, h).transpose(1, 2).reshape(two_l // 2, b, 2 * h)
