"""95% confidence intervals over repeated benchmark runs, and a claim's verdict from one.

Repeats run interleaved (`round_robin`: A B C, A B C, ...), so repeat i of A and repeat i of B ran
side by side and a slow spell of a shared machine falls on both. Comparisons therefore pair
them: the interval of the per-repeat differences (`difference_ci`) or of the per-repeat log
ratios (`ratio_ci`), a paired Student-t interval, narrower than two separate intervals whenever
the pairs move together.

An interval is a dict: mean, low, high (its 95% bounds), n (the repeats), values (the per-repeat
figures it summarizes). A claim compares it with a threshold (`verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Student-t 0.975 quantiles (two-sided 95%) for 1..30 degrees of freedom; the normal's 1.96 beyond.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
T_975 += (2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)
T_975 += (2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
SIDES = (">=", "<=")


def t_quantile(df: int) -> float:
    """The Student-t 0.975 quantile for `df` degrees of freedom (df >= 1)."""
    return T_975[df - 1] if df <= len(T_975) else 1.96


def mean_ci(values: Sequence[float]) -> dict:
    """The mean of `values` and its 95% interval, mean ± t(n-1) s / sqrt(n) (s the sample standard
    deviation). One value says nothing about the spread: its bounds are -inf and inf, so every
    verdict on it is "undecided" (`point` is for a single measurement judged as it is)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("an interval needs at least one value")
    mean = float(x.mean())
    half = t_quantile(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else math.inf
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(x.size), "values": x.tolist()}


def point(value: float) -> dict:
    """A single measurement as an interval of width zero: a verdict from the point value itself,
    which the report marks as one run."""
    return {"mean": float(value), "low": float(value), "high": float(value), "n": 1, "values": [float(value)]}


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired repeats need as many values on each side ({a.shape} vs {b.shape})")
    return a, b


def difference_ci(a: Sequence[float], b: Sequence[float]) -> dict:
    """The mean of the paired differences a[i] - b[i] (losses, BLEU) and its 95% interval."""
    a, b = _paired(a, b)
    return mean_ci(a - b)


def ratio_ci(a: Sequence[float], b: Sequence[float]) -> dict:
    """The geometric mean of the paired ratios a[i] / b[i] (speeds) and its 95% interval: the
    t-interval of the mean log ratio, exponentiated (ratios multiply, so their logs average)."""
    a, b = _paired(a, b)
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("ratios need positive values")
    logs = mean_ci(np.log(a / b))
    bounds = {key: math.exp(logs[key]) for key in ("mean", "low", "high")}
    return {**bounds, "n": logs["n"], "values": (a / b).tolist()}


def verdict(interval: dict, threshold: float, side: str) -> str:
    """Whether the claim "the figure is `side` `threshold`" (side ">=" or "<=") holds: "holds" when
    the whole interval lies on the claimed side (the threshold itself included), "does not hold"
    when it lies wholly on the other side, "undecided" when it straddles the threshold."""
    if side not in SIDES:
        raise ValueError(f"side {side!r}: choose from {', '.join(SIDES)}")
    low, high = interval["low"], interval["high"]
    if side == ">=":
        return "holds" if low >= threshold else "does not hold" if high < threshold else "undecided"
    return "holds" if high <= threshold else "does not hold" if low > threshold else "undecided"


def combine(verdicts: dict[str, str]) -> str:
    """One claim's verdict over its comparisons (name -> verdict): the common verdict when they
    agree, else each comparison's, named ("padded: holds; masked: undecided")."""
    if len(set(verdicts.values())) == 1:
        return next(iter(verdicts.values()))
    return "; ".join(f"{name}: {v}" for name, v in verdicts.items())


def all_of(verdicts: list[str]) -> str:
    """The verdict of a claim that needs every one of its comparisons: "does not hold" when one
    does not, "holds" when all do, else "undecided"."""
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "undecided"


def round_robin(variants: Sequence, repeats: int) -> list[tuple[int, int]]:
    """The run order (repeat, variant index): every variant once per repeat, in the same order
    each time (A B C, A B C, ...), so that neighbouring runs of the variants compared are close
    in time."""
    return [(repeat, i) for repeat in range(repeats) for i in range(len(variants))]
