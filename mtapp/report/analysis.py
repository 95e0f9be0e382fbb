"""Comparisons of systems on one test set: sacreBLEU's paired bootstrap resampling against a
baseline, corpus scores per source-length bucket, and sentence-level chrF to pick samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

METRICS = {"bleu": "BLEU", "chrf": "chrF2", "ter": "TER"}  # our key -> sacrebleu's score name


@contextmanager
def sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacrebleu 2.6 takes the resampling seed only from $SACREBLEU_SEED (read by PairedTest for
    the baseline's and the systems' resamples); set it for the duration, then restore it."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def paired_bootstrap(
    systems: dict[str, list[str]], references: list[str], seed: int, samples: int = 1000
) -> tuple[dict[str, str], list[dict]]:
    """sacreBLEU's paired bootstrap resampling (`sacrebleu --paired-bs`) of every system against
    the first (the baseline), for BLEU, chrF and TER.

    Returns (signature per metric, one row per system in order): each row has `name` and per
    metric `score`, `mean` and `ci` (the bootstrap mean and half-width of its 95% interval, as
    sacrebleu prints `μ ± ci`) and `p` (None for the baseline). The same seed gives the same
    numbers; seed 0 is refused because sacrebleu would treat it as "no seed".
    """
    if seed < 1:
        raise ValueError("the bootstrap seed must be a positive integer (sacrebleu treats 0 as unseeded)")
    if len(systems) < 2:
        raise ValueError("a paired test needs a baseline and at least one other system")
    metrics = {"BLEU": BLEU(), "chrF2": CHRF(), "TER": TER()}
    with sacrebleu_seed(seed):
        test = PairedTest(list(systems.items()), metrics, [references], test_type="bs", n_samples=samples)
        signatures, results = test()
    rows = []
    for i, name in enumerate(results["System"]):
        row: dict = {"name": name}
        for key, sacre in METRICS.items():
            r = results[sacre][i]
            values = {"score": r.score, "mean": r.mean, "ci": r.ci, "p": r.p_value}
            row[key] = {k: None if v is None else float(v) for k, v in values.items()}  # numpy -> JSON
        rows.append(row)
    return {key: str(signatures[sacre]) for key, sacre in METRICS.items()}, rows


@dataclass(frozen=True)
class Bucket:
    label: str  # e.g. "11-15" (source words)
    indices: list[int]  # test sentences in it


def length_buckets(sources: list[str], bounds: list[int]) -> list[Bucket]:
    """Sentences grouped by source length in whitespace-separated words: 1 .. bounds[0] words
    (an empty source counts here too), bounds[0]+1 .. bounds[1], ..., more than bounds[-1].
    Empty buckets are left out."""
    if not bounds or any(b <= a for a, b in zip([0, *bounds], bounds)):
        raise ValueError(f"bucket bounds must be increasing positive word counts, not {bounds}")
    lengths = np.array([len(s.split()) for s in sources])
    which = np.searchsorted(np.array(bounds), lengths, side="left")  # bucket k: bounds[k-1] < n <= bounds[k]
    labels = [f"1-{bounds[0]}", *(f"{a + 1}-{b}" for a, b in zip(bounds, bounds[1:])), f"{bounds[-1] + 1}+"]
    return [Bucket(label, np.flatnonzero(which == k).tolist()) for k, label in enumerate(labels) if (which == k).any()]


def bucket_scores(buckets: list[Bucket], systems: dict[str, list[str]], references: list[str]) -> list[dict]:
    """Corpus BLEU and chrF of each system on each bucket's sentences: one row per bucket with
    `bucket`, `sentences` and `scores` (system -> {"bleu", "chrf"})."""
    rows = []
    for bucket in buckets:
        refs = [references[i] for i in bucket.indices]
        scores = {}
        for name, hyps in systems.items():
            chosen = [hyps[i] for i in bucket.indices]
            scores[name] = {
                "bleu": BLEU().corpus_score(chosen, [refs]).score,
                "chrf": CHRF().corpus_score(chosen, [refs]).score,
            }
        rows.append({"bucket": bucket.label, "sentences": len(bucket.indices), "scores": scores})
    return rows


def sentence_chrf(hypotheses: list[str], references: list[str]) -> list[float]:
    metric = CHRF()
    return [metric.sentence_score(h, [r]).score for h, r in zip(hypotheses, references)]


def pick_samples(scores: list[float], n: int) -> dict[str, list[int]]:
    """Indices of the `n` best (highest score first), median and worst (lowest first) sentences;
    ties are broken by position, so the choice is deterministic."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    n = min(n, len(order))
    middle = max(0, min((len(order) - n) // 2, len(order) - n))
    return {"best": order[::-1][:n], "median": order[middle : middle + n], "worst": order[:n]}
