"""int8 inference for the torch engine: dynamic quantization (weights in int8, activations
quantized per batch) of every `nn.Linear`, the output projection and the LSTMs that run as
modules (`torch.ao.quantization.quantize_dynamic`), for any model type. The masked and
unrolled LSTM encoders read their weights directly and stay in float32."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

from mtapp.models.base import Seq2Seq
from mtapp.models.rnn_encoder import LSTM, LSTMEncoder


def int8(model: Seq2Seq) -> Seq2Seq:
    """`model` (float32, on the CPU, for inference) with int8 weights, in place."""
    model.eval()
    direct = {
        name for name, m in model.named_modules() if isinstance(m, LSTMEncoder) and m.padding in ("masked", "unrolled")
    }
    spec: dict = {nn.Linear: default_dynamic_qconfig}
    spec |= {
        name: default_dynamic_qconfig
        for name, m in model.named_modules()
        if isinstance(m, nn.LSTM) and name.rsplit(".", 1)[0] not in direct
    }
    for m in model.modules():
        if type(m) is LSTM:  # its own forward only changes autocast, unused here; the swap takes nn.LSTM alone
            m.__class__ = nn.LSTM
    projection = nn.Linear(model.output_embedding().shape[1], model.output_embedding().shape[0], bias=False)
    projection.weight = model.output_embedding()  # tied: a layer of its own only for quantization
    model.projection = projection
    with warnings.catch_warnings():  # torch 2.13 deprecates eager quantization for torchao (README)
        warnings.filterwarnings("ignore", message=".*(quantiz|torchao).*")
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return model
