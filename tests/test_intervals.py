"""Confidence intervals, paired comparisons, verdicts and the interleaved run order of the benches."""

import math

import numpy as np
import pytest

from mtapp.bench.intervals import combine, difference_ci, mean_ci, point, ratio_ci, round_robin, verdict


def test_mean_interval_is_the_student_t_interval_computed_by_hand():
    values = [1.0, 2.0, 4.0]
    mean = 7 / 3
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.303 * s / math.sqrt(3)  # t(0.975, df=2) from a printed table
    ci = mean_ci(values)
    assert ci["mean"] == pytest.approx(mean) and ci["n"] == 3 and ci["values"] == values
    assert ci["low"] == pytest.approx(mean - half, rel=1e-4) and ci["high"] == pytest.approx(mean + half, rel=1e-4)


def test_many_values_use_the_normal_quantile_and_narrow_with_n():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, 400)
    ci = mean_ci(values)
    assert ci["high"] - ci["mean"] == pytest.approx(1.96 * values.std(ddof=1) / 20)
    assert mean_ci(values[:10])["high"] - mean_ci(values[:10])["low"] > ci["high"] - ci["low"]


def test_one_value_has_no_interval_so_no_verdict_but_a_point_is_judged_as_it_is():
    ci = mean_ci([5.0])
    assert ci["mean"] == 5.0 and ci["low"] == -math.inf and ci["high"] == math.inf
    assert verdict(ci, 1.0, ">=") == verdict(ci, 1.0, "<=") == "undecided"
    assert ratio_ci([2.0], [1.0])["mean"] == pytest.approx(2.0)
    assert verdict(ratio_ci([2.0], [1.0]), 1.5, ">=") == "undecided"
    assert verdict(point(2.0), 1.5, ">=") == "holds" and verdict(point(2.0), 1.5, "<=") == "does not hold"
    with pytest.raises(ValueError):
        mean_ci([])


@pytest.mark.parametrize(
    ("low", "high", "at_least", "at_most"),
    [
        (1.4, 1.6, "holds", "does not hold"),  # wholly above 1.3
        (1.0, 1.2, "does not hold", "holds"),  # wholly below
        (1.2, 1.4, "undecided", "undecided"),  # straddles it
        (1.3, 1.5, "holds", "undecided"),  # the threshold itself is on the claimed side
        (1.1, 1.3, "undecided", "holds"),
    ],
)
def test_verdict_follows_where_the_interval_lies(low, high, at_least, at_most):
    interval = {"mean": (low + high) / 2, "low": low, "high": high, "n": 3}
    assert verdict(interval, 1.3, ">=") == at_least
    assert verdict(interval, 1.3, "<=") == at_most
    with pytest.raises(ValueError):
        verdict(interval, 1.3, ">")


def test_ratio_interval_pairs_repeats_so_a_shared_slow_spell_cancels():
    slow_spell = np.array([1.0, 0.6, 1.3])  # the machine's speed in each repeat, on both variants
    a, b = 1100 * slow_spell, 1000 * slow_spell
    ci = ratio_ci(a, b)
    assert ci["mean"] == pytest.approx(1.1) and ci["low"] == pytest.approx(1.1) and ci["high"] == pytest.approx(1.1)
    assert ci["values"] == pytest.approx([1.1, 1.1, 1.1])
    assert verdict(ci, 1.05, ">=") == "holds"
    assert verdict(ratio_ci(a, b[::-1]), 1.05, ">=") == "undecided"  # paired with the wrong repeats


def test_ratio_interval_is_the_exponentiated_interval_of_the_log_ratios():
    a, b = [300.0, 420.0, 250.0, 510.0], [200.0, 300.0, 240.0, 350.0]
    logs = np.log(np.array(a) / np.array(b))
    half = 3.182 * logs.std(ddof=1) / 2  # t(0.975, df=3), n = 4
    ci = ratio_ci(a, b)
    assert ci["mean"] == pytest.approx(math.exp(logs.mean()))  # the geometric mean ratio
    assert ci["low"] == pytest.approx(math.exp(logs.mean() - half), rel=1e-4)
    assert ci["high"] == pytest.approx(math.exp(logs.mean() + half), rel=1e-4)
    with pytest.raises(ValueError):
        ratio_ci(a, b[:3])
    with pytest.raises(ValueError):
        ratio_ci([0.0, 1.0], [1.0, 1.0])


def test_difference_interval_pairs_repeats():
    a, b = [3.30, 3.10, 3.52], [3.00, 2.81, 3.20]
    diffs = np.array(a) - np.array(b)
    ci = difference_ci(a, b)
    assert ci["mean"] == pytest.approx(diffs.mean()) and ci["values"] == pytest.approx(diffs.tolist())
    assert ci["high"] - ci["mean"] == pytest.approx(4.303 * diffs.std(ddof=1) / math.sqrt(3), rel=1e-4)
    assert verdict(ci, 0.02, "<=") == "does not hold"


def test_round_robin_runs_every_variant_once_per_repeat_in_the_same_order():
    assert round_robin(["A", "B", "C"], 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert round_robin(["A"], 3) == [(0, 0), (1, 0), (2, 0)]
    assert round_robin([], 3) == []


def test_combined_verdict_names_comparisons_only_when_they_disagree():
    assert combine({"padded": "holds", "masked": "holds"}) == "holds"
    assert combine({"padded": "holds", "masked": "undecided"}) == "padded: holds; masked: undecided"
