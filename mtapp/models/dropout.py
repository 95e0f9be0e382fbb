"""Dropout that draws a quarter of the random numbers `nn.Dropout` draws on the CPU.

On the CPU `torch.bernoulli_` draws one 32-bit Mersenne-Twister number (and converts it to a
float) per element; in a profile of the peers benchmark's Transformer that was a tenth of a
training step (issue #7). One 64-bit draw holds four 15-bit uniform numbers, and one number is
enough for one keep/drop decision. The drop probability is rounded to a multiple of 2^-15
(0.1 -> 0.100006) and kept units are scaled by 1 / (1 - that), so the expected output is still
the input. Draws come from torch's default CPU generator: seeded by `torch.manual_seed` and
saved in checkpoints like every other draw. On other devices (CUDA's Philox generator is fast)
it is `F.dropout`. `python -m mtapp.bench kernels` times it against `F.dropout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANE_BITS = 15  # low 15 bits of each 16-bit lane of a 63-bit draw: uniform on all four lanes
LANE_VALUES = 1 << LANE_BITS


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} must be in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return _LaneDropout.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
    """bool `shape` mask (True = keep, probability 1 - p rounded to 2^-15) and the scale of kept units."""
    threshold = round(p * LANE_VALUES)  # a lane below it drops its unit
    n = shape.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # uniform on [0, 2^63)
    lanes = draws.view(torch.int16)[:n].view(shape)
    keep = (lanes & (LANE_VALUES - 1)) >= threshold
    return keep, LANE_VALUES / (LANE_VALUES - threshold)


class _LaneDropout(torch.autograd.Function):
    """y = x * m and dx = dy * m with m = keep * scale in x's dtype: multiplying by a float mask
    is several times faster on the CPU than by a bool one (no conversion inside the product)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep, scale = keep_mask(x.shape, p)
        mask = keep.to(x.dtype).mul_(scale)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask, None
