"""The verdicts of `bench claims`: each claim states a threshold, and the 95% interval of what was
measured decides it (`intervals.verdict`: holds / does not hold / undecided); one row per claim
and hardware.

Claims (a)-(g) come from the interleaved repeats of the two training grids, each comparison
paired repeat by repeat; (h) and (i) from single measurements given as JSON (`bench serve`,
`bench invariance`); the rows "on <GPU>" from a `bench gpu` check, one run per variant, judged on
their point values. A row: claim, hardware, threshold, measured (the intervals as text), verdict,
numbers (details) and comparisons (each one's interval, threshold and verdict).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mtapp.bench.intervals import all_of, combine, difference_ci, mean_ci, point, ratio_ci, verdict
from mtapp.bench.machine import cpu_name
from mtapp.bench.train import runs_of
from mtapp.runtime import cpu_has_native_bf16

# The Transformer variants the claims compare. Sentence-count strategies get ~4,096 padded slots
# per side like `tokens`: random batches of 112 Multi30k sentences are ~36 subwords wide.
RANDOM = ["batching.strategy=random", "batching.batch_size=112"]
SORTED = ["batching.strategy=sorted", "batching.batch_size=112"]
TOKENS = ["batching.strategy=tokens"]
PACKED = ["batching.strategy=packed_rows"]
UNMASKED = ["loss.mask_padding=false"]

SPEED = "tgt_tokens_per_s"
EXACT_MODES = ("masked", "packed")  # LSTM encoder modes whose outputs do not depend on padding
SIDES = ("post", "pre")
CLAIMS = {
    "a": "(a) post-padding trains ~30% faster than pre-padding for RNNs",
    "b": "(b) an LSTM makes zero-padding harmless",
    "c": "(c) packing is faster than padding",
    "d": "(d) bucketing / token batching speeds training up",
    "e": "(e) masking the loss matters",
    "f": "(f) padding worsens vanishing gradients in RNNs",
    "g": "(g) padding-free (packed rows) training is faster",
    "h": "(h) batching concurrent requests raises throughput without hurting latency at low load",
    "i": "(i) bf16 changes translations with the batch",
}
# The speed ratios of claims (a), (c), (d), (g): what is measured and the threshold it must reach.
FIGURE = {
    "a": "post/pre speed",
    "c": "packed/padded speed",
    "d": "tokens/random speed",
    "g": "packed_rows/tokens speed",
}
AT_LEAST = {"a": 1.30, "c": 1.05, "d": 1.2, "g": 1.05}
HARMLESS_LOSS = 0.02  # (b): valid loss padded - exact, at most
HARMLESS_DRIFT = 0.01  # (b): final-state drift, at most
BLEU_LOST = 1.0  # (e): valid BLEU lost without the loss mask, at least
GRADIENT_KEPT = 0.8  # (f): first-position gradient padded / packed, at most
FORMATS = {"ratio": "{:.2f}x", "loss": "{:+.3f}", "bleu": "{:+.2f}", "share": "{:.1%}", "lines": "{:.0f}"}


# ---- rows -------------------------------------------------------------------------------------
def show(value: float, kind: str) -> str:
    return FORMATS[kind].format(value)


def interval_text(interval: dict, kind: str) -> str:
    """ "1.23x [1.10x, 1.37x] (n=3)"; a single run: "1.23x (1 run)" or, from `mean_ci`, no interval."""
    mean = show(interval["mean"], kind)
    if interval["n"] > 1:
        return f"{mean} [{show(interval['low'], kind)}, {show(interval['high'], kind)}] (n={interval['n']})"
    return f"{mean} (n=1: no interval)" if math.isinf(interval["high"]) else f"{mean} (1 run)"


def comparison(name: str, figure: str, interval: dict, side: str, threshold: float, kind: str) -> dict:
    """One comparison of a claim: `figure` (what is measured) for `name`, its interval, the
    threshold it is claimed to be `side` of, and the verdict; `kind` formats the numbers."""
    judged = {"side": side, "threshold": threshold, "verdict": verdict(interval, threshold, side)}
    return {"name": name, "figure": figure, "kind": kind, **interval, **judged}


def row(claim: str, hardware: str, comparisons: list[dict], numbers: str, every: bool = False) -> dict:
    """A claim's row: its comparisons' thresholds, intervals and verdicts, and one verdict: with
    `every` (the claim needs all its comparisons) `all_of` theirs, else `combine`d (comparisons
    of one figure in different settings, each named where they disagree)."""
    named = {c["name"]: c["verdict"] for c in comparisons}
    thresholds = dict.fromkeys(f"{c['figure']} {c['side']} {show(c['threshold'], c['kind'])}" for c in comparisons)
    measured = "; ".join(f"{c['name']}: {interval_text(c, c['kind'])} → {c['verdict']}" for c in comparisons)
    return {
        "claim": claim,
        "hardware": hardware,
        "threshold": "; ".join(thresholds),
        "measured": measured,
        "verdict": all_of(list(named.values())) if every else combine(named),
        "numbers": numbers,
        "comparisons": comparisons,
    }


def hardware_of(machine: dict | None) -> str:
    """The processor (and bf16 support) or GPU of a bench payload's `machine`."""
    if not machine:
        return "machine not recorded"
    if machine.get("gpu"):
        return machine["gpu"]
    bf16 = "native bf16" if machine.get("native_bf16") else "no native bf16"
    device = machine.get("device", "cpu")
    return f"{machine['cpu']} ({bf16})" + ("" if device == "cpu" else f", {device}")


def this_cpu() -> str:
    """This machine's processor, the widest vector instructions torch uses on it (a model name
    such as "AMD EPYC" covers several generations) and the precision training uses (amp auto)."""
    precision = "bf16 training (native bf16)" if cpu_has_native_bf16() else "float32 training (no native bf16)"
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {precision}"


# ---- claims (a)-(g), from the grids' repeats ---------------------------------------------------
def find(results: list[dict], *overrides: str) -> dict:
    """The one variant trained with exactly these overrides (in any order)."""
    matches = [r for r in results if sorted(r["overrides"]) == sorted(overrides)]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} variants match {overrides}")
    return matches[0]


def lstm_run(lstm: list[dict], mode: str, side: str) -> dict:
    return find(lstm, f"model.encoder_padding={mode}", f"batching.pad_side={side}")


def values(result: dict, key: str) -> list[float]:
    """`key` of each run of a variant, in repeat order (so that variants pair up)."""
    return [run[key] for run in runs_of(result)]


def speed_ratio(letter: str, name: str, a: dict, b: dict) -> dict:
    """Claim `letter`'s comparison of variant `a`'s speed with `b`'s, paired repeat by repeat."""
    ratio = ratio_ci(values(a, SPEED), values(b, SPEED))
    return comparison(name, FIGURE[letter], ratio, ">=", AT_LEAST[letter], "ratio")


def post_vs_pre(lstm: list[dict], hardware: str) -> dict:
    """(a): post/pre speed of the padded and masked LSTMs, claimed >= 1.30x; the valid loss gap beside it."""
    compared, gaps = [], []
    for mode in ("padded", "masked"):
        post, pre = lstm_run(lstm, mode, "post"), lstm_run(lstm, mode, "pre")
        compared.append(speed_ratio("a", mode, post, pre))
        gap = difference_ci(values(pre, "valid_loss"), values(post, "valid_loss"))
        gaps.append(f"{mode} {interval_text(gap, 'loss')}")
    return row(CLAIMS["a"], hardware, compared, "valid loss pre minus post: " + ", ".join(gaps))


def padding_harmless(lstm: list[dict], hardware: str) -> dict:
    """(b): padded minus exact valid loss (<= 0.02) and the padded LSTM's state drift (<= 1%), both needed."""
    compared = []
    for side in SIDES:
        padded = values(lstm_run(lstm, "padded", side), "valid_loss")
        exact = np.mean([values(lstm_run(lstm, mode, side), "valid_loss") for mode in EXACT_MODES], axis=0)
        gap = difference_ci(padded, exact)
        compared.append(comparison(f"loss, {side}", "valid loss padded - exact", gap, "<=", HARMLESS_LOSS, "loss"))
    drift = values(lstm_run(lstm, "padded", "post"), "state_drift")
    for side in SIDES:
        moved = mean_ci([d[side] for d in drift])
        compared.append(comparison(f"drift, {side}", "state drift", moved, "<=", HARMLESS_DRIFT, "share"))
    numbers = (
        "exact = the mean of the masked and packed runs at the same pad side; state drift = how far the trained "
        "padded (post) LSTM's final encoder states move when validation sentences are batched, relative to their size"
    )
    return row(CLAIMS["b"], hardware, compared, numbers, every=True)


def packing_speed(lstm: list[dict], hardware: str) -> dict:
    """(c): packed/padded LSTM speed at each pad side, claimed >= 1.05x."""
    packed, padded = ({side: lstm_run(lstm, mode, side) for side in SIDES} for mode in ("packed", "padded"))
    compared = [speed_ratio("c", side, packed[side], padded[side]) for side in SIDES]
    efficiency = lstm_run(lstm, "padded", "post")["padding_efficiency"]
    return row(CLAIMS["c"], hardware, compared, f"LSTM, token-bucketed batches (padding efficiency {efficiency:.3f})")


def bucketing_speed(transformer: list[dict], hardware: str) -> dict:
    """(d): tokens/random Transformer speed, claimed >= 1.2x; sorted/random and the loss gap beside it."""
    tok, rand, srt = find(transformer, *TOKENS), find(transformer, *RANDOM), find(transformer, *SORTED)
    sorted_ratio = ratio_ci(values(srt, SPEED), values(rand, SPEED))
    loss = difference_ci(values(tok, "valid_loss"), values(rand, "valid_loss"))
    numbers = (
        f"Transformer; sorted/random speed {interval_text(sorted_ratio, 'ratio')}; valid loss tokens minus random "
        f"{interval_text(loss, 'loss')}"
    )
    return row(CLAIMS["d"], hardware, [speed_ratio("d", "tokens/random", tok, rand)], numbers)


def loss_mask(transformer: list[dict], hardware: str) -> dict:
    """(e): valid BLEU lost without the loss mask on random batches (the most pads), claimed >= 1.0."""
    rand, tok = find(transformer, *RANDOM), find(transformer, *TOKENS)
    rand_unmasked, tok_unmasked = find(transformer, *RANDOM, *UNMASKED), find(transformer, *TOKENS, *UNMASKED)
    lost = difference_ci(values(rand, "valid_bleu"), values(rand_unmasked, "valid_bleu"))
    lost_tokens = difference_ci(values(tok, "valid_bleu"), values(tok_unmasked, "valid_bleu"))
    numbers = (
        f"random batches pad {1 - rand['padding_efficiency']:.0%} of slots; with token batches (pads "
        f"{1 - tok['padding_efficiency']:.0%}) BLEU lost {interval_text(lost_tokens, 'bleu')}; valid loss (random) "
        f"{rand['valid_loss']:.3f} -> {rand_unmasked['valid_loss']:.3f}"
    )
    compared = [comparison("random batches", "valid BLEU lost without the mask", lost, ">=", BLEU_LOST, "bleu")]
    return row(CLAIMS["e"], hardware, compared, numbers)


def first_gradient(lstm: list[dict], hardware: str) -> dict:
    """(f): the first-position gradient (`padding_probes.first_position_gradient`) padded/packed at
    each pad side, claimed <= 0.8x; masked/packed beside it."""

    def ratio(mode: str, side: str) -> dict:
        key = "first_position_gradient"
        return ratio_ci(values(lstm_run(lstm, mode, side), key), values(lstm_run(lstm, "packed", side), key))

    figure = "first-position gradient padded/packed"
    compared = [comparison(side, figure, ratio("padded", side), "<=", GRADIENT_KEPT, "ratio") for side in SIDES]
    masked = ", ".join(f"{side} {interval_text(ratio('masked', side), 'ratio')}" for side in SIDES)
    numbers = (
        "first-position gradient = the norm of d loss / d source embedding at each validation sentence's first "
        "real token over its mean at the sentence's real tokens (geometric mean, trained checkpoints); "
        f"masked/packed: {masked}"
    )
    return row(CLAIMS["f"], hardware, compared, numbers)


def packed_rows_speed(transformer: list[dict], hardware: str) -> dict:
    """(g): packed_rows/tokens Transformer speed, claimed >= 1.05x."""
    packed, tok = find(transformer, *PACKED), find(transformer, *TOKENS)
    numbers = (
        f"Transformer; padding efficiency packed_rows {packed['padding_efficiency']:.3f}, tokens "
        f"{tok['padding_efficiency']:.3f}"
    )
    return row(CLAIMS["g"], hardware, [speed_ratio("g", "packed_rows/tokens", packed, tok)], numbers)


def verdicts(lstm: list[dict], transformer: list[dict], hardware: str) -> list[dict]:
    """Claims (a)-(g) from the pooled records of both grids (`bench.train.pool`), whose LSTM runs
        carry their probes (`first_position_gradient`; `state_drift` on the padded post-padding runs);
    an empty grid (no complete repeat yet) gives no rows."""
    rows = []
    if lstm:  # a grid with no complete repeat yet has no rows
        rows += [f(lstm, hardware) for f in (post_vs_pre, padding_harmless, packing_speed, first_gradient)]
    if transformer:
        rows += [f(transformer, hardware) for f in (bucketing_speed, loss_mask, packed_rows_speed)]
    return sorted(rows, key=lambda r: r["claim"][:3])


# ---- single measurements: (h), (i), the GPU rows ----------------------------------------------
def serve_verdict(serve: dict) -> dict:
    """(h), from a `bench serve` payload: at 16 single-sentence clients the best batch window's
    throughput against the serialized server's (at least 2x), and that window's p99 latency at
    one client against the serialized server's (at most 1.3x). One measurement."""

    def cell(window: str, clients: int) -> dict:
        return next(c for c in serve["cells"] if (c["window"], c["size"], c["concurrency"]) == (window, 1, clients))

    windows = {c["window"] for c in serve["cells"]} - {"serialized"}
    best = max(windows, key=lambda w: cell(w, 16)["sentences_per_s"])
    gain = cell(best, 16)["sentences_per_s"] / cell("serialized", 16)["sentences_per_s"]
    latency = cell(best, 1)["p99_ms"] / cell("serialized", 1)["p99_ms"]
    compared = [
        comparison("throughput", "sentences/s vs serialized, 16 clients", point(gain), ">=", 2.0, "ratio"),
        comparison("latency", "p99 vs serialized, 1 client", point(latency), "<=", 1.3, "ratio"),
    ]
    numbers = (
        f"16 single-sentence clients: {gain:.2f}x the serialized server's sentences/s (window {best} ms); "
        f"one client: p99 {cell(best, 1)['p99_ms']:.0f} ms against {cell('serialized', 1)['p99_ms']:.0f} ms "
        f"({latency:.2f}x)"
    )
    return row(CLAIMS["h"], f"{hardware_of(serve.get('machine'))}, 1 run", compared, numbers, every=True)


def invariance_verdict(payload: dict) -> dict:
    """(i), from a `bench invariance` payload (or a `bench gpu` decode stage): holds when some
    lines change with the batch under bf16 while none do in float32. One measurement."""
    results = payload["results"]
    changed = {}
    for precision in ("float32", "bfloat16"):
        decodes = [r for r in results if r["precision"] == precision]
        if not decodes:
            raise ValueError(f"the invariance results have no {precision} decodes (decode.amp off and bf16 are needed)")
        changed[precision] = sum(r["changed"] for r in decodes)
    compared = [
        comparison("bf16", "bf16 lines changed", point(changed["bfloat16"]), ">=", 1, "lines"),
        comparison("float32", "float32 lines changed", point(changed["float32"]), "<=", 0, "lines"),
    ]
    numbers = "; ".join(
        f"{r['model']} {r['precision']} beam {r['beam']}: {r['changed']} of {r['lines']}" for r in results
    )
    return row(CLAIMS["i"], f"{hardware_of(payload.get('machine'))}, 1 run", compared, numbers, every=True)


# The GPU check's runs behind the speed claims: claim -> (name, stage, numerator run, denominator run).
GPU_RATIOS = {
    "a": [("padded", "lstm", "padded-post", "padded-pre"), ("masked", "lstm", "masked-post", "masked-pre")],
    "c": [("post", "lstm", "packed-post", "padded-post"), ("pre", "lstm", "packed-pre", "padded-pre")],
    "d": [("tokens/random", "transformer", "tokens", "random")],
    "g": [("packed_rows/tokens", "transformer", "packed_rows", "tokens")],
}


def gpu_rows(check: dict) -> list[dict]:
    """Claims (a), (c), (d), (g) and (i) on the GPU of a `bench gpu` payload (gpu_check.json),
    where its stages passed: one bf16 run per variant, judged on the point values."""
    stages = {name: s["result"] for name, s in check["stages"].items() if s["status"] == "ok" and s.get("result")}
    hardware = f"{hardware_of(check['machine'])}, bf16 autocast, 1 run"
    rows = []
    for letter, comparisons in GPU_RATIOS.items():
        if not all(stage in stages and {a, b} <= set(stages[stage]) for _, stage, a, b in comparisons):
            continue
        compared = []
        for name, stage, a, b in comparisons:
            ratio = point(stages[stage][a][SPEED] / stages[stage][b][SPEED])
            compared.append(comparison(name, FIGURE[letter], ratio, ">=", AT_LEAST[letter], "ratio"))
        numbers = "`bench gpu`: real target tokens/s, one run per variant, each trained for the same time"
        numbers += "; its random batches have the config's batch_size, not 112" if letter == "d" else ""
        rows.append(row(CLAIMS[letter], hardware, compared, numbers))
    if "decode" in stages:
        rows.append(invariance_verdict({"machine": check["machine"], "results": stages["decode"]["results"]}))
    return rows
