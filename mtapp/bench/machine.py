"""This machine and the work of a Transformer: the CPU's name, the measured matmul peak, and the
useful training FLOPs per target token, whose ratio is the model FLOP utilisation.

Useful FLOPs count the matrix products of real tokens only (what mtapp's Transformer computes
for a batch without padding), multiply-adds as 2 FLOPs, and a backward pass as twice the
forward (so training = 3 × forward). Per sentence pair with S real source tokens (eos
included) and T real target positions, in multiply-adds of the forward pass:

    encoder, each layer:  S·(4d² + 2·d·f)        q, k, v, out projections; feed-forward
                          + 2·S²·d               attention scores and weighted values
    decoder, each layer:  T·(4d² + 2·d·f)        self-attention projections; feed-forward
                          + 2·T²·d               self-attention over all T keys (as computed)
                          + 2·T·d² + 2·S·d²      cross-attention: q, out per target; k, v per source
                          + 2·T·S·d              cross-attention scores and values
    output projection:    T·d·V                  vocabulary logits of real target positions

Embedding look-ups, layer norms, softmax and the loss are not matrix products and are left out.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from mtapp.runtime import cpu_has_native_bf16


def forward_macs(src_len, tgt_len, d: int, ffn: int, enc_layers: int, dec_layers: int, vocab: int):
    """Multiply-adds of one forward pass over pairs of these lengths (scalars or numpy arrays)."""
    s, t = np.asarray(src_len, dtype=np.float64), np.asarray(tgt_len, dtype=np.float64)
    encoder = enc_layers * (s * (4 * d * d + 2 * d * ffn) + 2 * s * s * d)
    decoder = dec_layers * (t * (4 * d * d + 2 * d * ffn) + 2 * t * t * d + 2 * (t + s) * d * d + 2 * t * s * d)
    return encoder + decoder + t * d * vocab


def training_flops_per_token(src_lengths, tgt_lengths, d: int, ffn: int, layers: tuple[int, int], vocab: int) -> float:
    """Useful training FLOPs per real target token, averaged over a corpus (its length arrays)."""
    macs = forward_macs(src_lengths, tgt_lengths, d, ffn, layers[0], layers[1], vocab)
    return float(3 * 2 * np.sum(macs) / np.sum(tgt_lengths))


def transformer_flops_per_token(cfg, data) -> float:
    """`training_flops_per_token` of a Transformer config over its prepared training corpus (eos included)."""
    m = cfg.model
    src, tgt = data.train.src_lengths + 1, data.train.tgt_lengths + 1
    layers = (m.encoder_layers, m.decoder_layers)
    return training_flops_per_token(src, tgt, m.d_model, m.ffn_dim, layers, data.tokenizer.vocab_size)


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n×n×n torch.matmul in `dtype` with the default thread count."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo; elsewhere `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def training_precision() -> str:
    """What `train.amp: auto` trains in on this CPU: "bf16" where it has native bf16, else "float32"."""
    return "bf16" if cpu_has_native_bf16() else "float32"


def this_cpu() -> str:
    """This machine's processor, the widest vector instructions torch uses on it (a model name
    such as "AMD EPYC" covers several generations) and the precision training uses (amp auto)."""
    native = "native bf16" if training_precision() == "bf16" else "no native bf16"
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {training_precision()} training ({native})"
