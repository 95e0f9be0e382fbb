"""The CPU attention paths of a bf16 Transformer, A/B in one process (issue #35, session 17).

    MTAPP_DATA_DIR=../shared/data python results/precision/ab_attention.py [--minutes 5] [--amp bf16]

Two copies of the base config (same weights, same batches in lockstep), one through PyTorch's
math SDPA path (what bf16 training used before), one through `low_precision_attention`, taking
turns update by update with `bench speed`'s rounds; plus an A/A copy. Prints each ratio of real
target tokens/s with its 95% interval. Kept as the command behind docs/training_memory_speed.md;
it swaps the attention function per variant, which no shipped command needs.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from mtapp.bench import speed
from mtapp.config import BASE_CONFIG
from mtapp.models import transformer
from mtapp.runtime import memory_policy, set_threads

OURS = transformer.low_precision_attention


def math_sdpa(q, k, v, mask, p, causal):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--amp", default="bf16")
    args = p.parse_args()
    set_threads()
    memory_policy()
    variant = speed.Variant("x", (f"train.amp={args.amp}",))
    group = speed.Group("attention", "transformer", (variant,))
    paths = {"math SDPA": math_sdpa, "ours": OURS, "ours (copy)": OURS}
    with tempfile.TemporaryDirectory() as scratch:
        steps = {}
        for name, fn in paths.items():
            built = speed.build_steps(group, BASE_CONFIG, Path(scratch) / name.replace(" ", "_"))
            step = next(iter(built.values()))

            def with_attention(repeat, step=step, fn=fn):
                transformer.low_precision_attention = fn
                return step(repeat)

            steps[name] = with_attention
            for _ in range(3):
                steps[name](False)
        rounds, deadline = [], time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            rounds.append(speed.run_round(steps, len(rounds), 1, 0, passes=5))
    for a, b in (("ours", "math SDPA"), ("ours (copy)", "ours")):
        r = speed.comparison_ratio(rounds, a, b, 0)
        print(f"{a} / {b} ({args.amp}): {r['mean']:.3f}x [{r['low']:.3f}, {r['high']:.3f}] (n={r['n']})")
    for name in steps:
        print(f"  {name}: median {sorted(speed.slice_speed(r[name], 0) for r in rounds)[len(rounds) // 2]:.0f} tok/s")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
