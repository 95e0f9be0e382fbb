"""`python -m mtapp.bench kernels`: mtapp's CPU kernels against the plain PyTorch they replace,
timed in one process, interleaved, median of `--repeats` (the figures in README's
"Against OpenNMT-py and JoeyNMT"). Shapes are those of the peers benchmark's model on Multi30k.

    python -m mtapp.bench kernels --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mtapp.loss import projected_smoothed_nll
from mtapp.models.dropout import Dropout
from mtapp.runtime import set_threads
from mtapp.search import row_topk


def dropout_cases() -> dict:
    """Forward and backward of dropout 0.1 over a (64 sentences, 36 tokens, 256) activation;
    each case returns the input's gradient."""
    x = torch.randn(64, 36, 256, requires_grad=True)
    grad = torch.randn_like(x)
    return {
        "torch F.dropout": lambda: backward(x, lambda: F.dropout(x, 0.1, training=True), grad),
        "mtapp Dropout": lambda: backward(x, lambda: Dropout(0.1).train()(x), grad),
    }


def backward(x: torch.Tensor, forward, grad: torch.Tensor | None = None) -> torch.Tensor:
    """x's gradient of `forward()` (a fresh one: the previous is dropped first)."""
    x.grad = None
    forward().backward(grad)
    return x.grad


def loss_cases() -> dict:
    """Label-smoothed loss of 2,300 target tokens over an 8k vocabulary, with its gradients;
    each case returns the gradient of the decoder outputs."""
    hidden = torch.randn(2300, 256, requires_grad=True)
    weight = (torch.randn(8000, 256) * 0.06).requires_grad_()
    gold = torch.randint(0, 8000, (2300,))

    def plain():
        return F.cross_entropy(hidden @ weight.t(), gold, label_smoothing=0.1, reduction="sum")

    def fused():
        return projected_smoothed_nll(hidden, weight, gold, 0.1)[0]

    return {
        "torch linear + cross_entropy": lambda: backward(hidden, plain),
        "mtapp fused projection + loss": lambda: backward(hidden, fused),
    }


def topk_cases() -> dict:
    """The 2K = 10 best of each beam: (120 sentences, 5 beams, 8k vocabulary) log-probabilities;
    each case returns (values, indices)."""
    lprobs = F.log_softmax(torch.randn(120, 5, 8000) * 3, dim=-1)
    return {"torch topk": lambda: lprobs.topk(10, dim=-1), "mtapp row_topk": lambda: row_topk(lprobs, 10)}


def median_ms(cases: dict, repeats: int) -> dict[str, float]:
    for run in cases.values():  # warm up
        run()
    times = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits every case
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args(argv)
    set_threads()
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, median of {args.repeats}")
    for title, cases in [("dropout", dropout_cases()), ("loss", loss_cases()), ("beam top-k", topk_cases())]:
        ms = median_ms(cases, args.repeats)
        (base, base_ms), (mine, mine_ms) = ms.items()
        print(f"{title}: {base} {base_ms:.2f} ms, {mine} {mine_ms:.2f} ms, {base_ms / mine_ms:.2f}x")
    return 0
