"""The verdicts of `bench claims`: each claim states a threshold, and the 95% interval of what was
measured decides it (`intervals.verdict`: holds / does not hold / undecided); one row per claim
and hardware.

The speed claims (a), (c), (d), (g), (j), (k) and the A-vs-A controls come from `bench speed`
(variants alternating in one process, paired round by round; `speed_rows`); the quality claims
(b), (e), (f) and the loss side of (a) from whole training runs, one per seed, paired seed by
seed (`quality_rows`); (h) and (i) from single measurements given as JSON (`bench serve`, `bench
invariance`); the rows "on <GPU>" from a `bench gpu` check, one run per variant, judged on their
point values. A row: claim, hardware, threshold, measured (the intervals as text), verdict,
numbers (details) and comparisons (each one's interval, threshold and verdict).
"""

from __future__ import annotations

import math

from mtapp.bench.intervals import all_of, combine, difference_ci, mean_ci, point, ratio_ci, verdict
from mtapp.bench.train import runs_of

# The Transformer quality variants of claim (e): random batches of 112 Multi30k sentences (~36
# subwords wide: ~4,096 padded slots a side, like `tokens`), with and without the loss mask.
RANDOM = ["batching.strategy=random", "batching.batch_size=112"]
UNMASKED = ["loss.mask_padding=false"]

SPEED = "tgt_tokens_per_s"
EXACT = "packed"  # the exact LSTM encoder mode (outputs independent of padding) the quality grid trains
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
    "j": "(j) dynamic unrolling is the most efficient LSTM encoder mode",
    "k": "(k) the time an update takes grows linearly with its padding",
}
# The speed ratios of claims (a), (c), (d), (g), (j): what is measured and the threshold it must reach.
FIGURE = {
    "a": "post/pre speed",
    "c": "packed/padded speed",
    "d": "tokens/random speed",
    "g": "packed_rows/tokens speed",
    "j": "unrolled/other mode speed",
}
AT_LEAST = {"a": 1.30, "c": 1.05, "d": 1.2, "g": 1.05, "j": 1.0}
HARMLESS_LOSS = 0.02  # (b): valid loss padded - exact, at most
HARMLESS_DRIFT = 0.01  # (b): final-state drift, at most
BLEU_LOST = 1.0  # (e): valid BLEU lost without the loss mask, at least
GRADIENT_KEPT = 0.8  # (f): first-position gradient padded / packed, at most
FORMATS = {"ratio": "{:.2f}x", "loss": "{:+.3f}", "bleu": "{:+.2f}", "share": "{:.1%}", "lines": "{:.0f}"}
FORMATS |= {"slope": "{:+.3f}", "r2": "{:.3f}"}


# ---- rows -------------------------------------------------------------------------------------
def show(value: float, kind: str) -> str:
    return FORMATS[kind].format(value)


def interval_text(interval: dict, kind: str) -> str:
    """ "1.23x [1.10x, 1.37x] (n=3)"; a single run: "1.23x (1 run)" or, from `mean_ci`, no interval."""
    mean = show(interval["mean"], kind)
    if kind == "r2":  # a fit, not a run
        return mean
    if interval["n"] > 1:
        return f"{mean} [{show(interval['low'], kind)}, {show(interval['high'], kind)}] (n={interval['n']})"
    return f"{mean} (n=1: no interval)" if math.isinf(interval["high"]) else f"{mean} (1 run)"


def comparison(name: str, figure: str, interval: dict, side: str, threshold: float, kind: str) -> dict:
    """One comparison of a claim: `figure` (what is measured) for `name`, its interval, the
    threshold it is claimed to be `side` of, and the verdict; `kind` formats the numbers."""
    judged = {"side": side, "threshold": threshold, "verdict": verdict(interval, threshold, side)}
    if judged["verdict"] == "undecided" and not math.isinf(interval["high"]):
        judged["rules_out"] = rules_out(interval, kind)
    return {"name": name, "figure": figure, "kind": kind, **interval, **judged}


def rules_out(interval: dict, kind: str) -> str:
    """What an interval that straddles its threshold still settles: the figure is neither below
    its low bound nor above its high one ("rules out below 0.73x and above 1.46x")."""
    return f"rules out below {show(interval['low'], kind)} and above {show(interval['high'], kind)}"


def row(claim: str, hardware: str, comparisons: list[dict], numbers: str, every: bool = False) -> dict:
    """A claim's row: its comparisons' thresholds, intervals and verdicts, and one verdict: with
    `every` (the claim needs all its comparisons) `all_of` theirs, else `combine`d (comparisons
    of one figure in different settings, each named where they disagree)."""
    named = {c["name"]: c["verdict"] for c in comparisons}
    thresholds = dict.fromkeys(f"{c['figure']} {c['side']} {show(c['threshold'], c['kind'])}" for c in comparisons)
    measured = "; ".join(
        f"{c['name']}: {interval_text(c, c['kind'])} → {c['verdict']}"
        + (f" ({c['rules_out']})" if "rules_out" in c else "")
        for c in comparisons
    )
    judged = all_of(list(named.values())) if every else combine(named)
    if judged == "undecided":  # what the intervals still rule out
        judged += ": " + "; ".join(
            (f"{c['name']} " if len(comparisons) > 1 else "") + c["rules_out"] for c in comparisons if "rules_out" in c
        )
    return {
        "claim": claim,
        "hardware": hardware,
        "threshold": "; ".join(thresholds),
        "measured": measured,
        "verdict": judged.rstrip(": "),
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


# ---- quality claims (b), (e), (f), from whole training runs over seeds ------------------------
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


def padding_harmless(lstm: list[dict], hardware: str) -> dict:
    """(b): padded minus exact valid loss (<= 0.02) and the padded LSTM's state drift (<= 1%), both needed."""
    compared = []
    for side in SIDES:
        padded = values(lstm_run(lstm, "padded", side), "valid_loss")
        gap = difference_ci(padded, values(lstm_run(lstm, EXACT, side), "valid_loss"))
        compared.append(comparison(f"loss, {side}", "valid loss padded - exact", gap, "<=", HARMLESS_LOSS, "loss"))
    drift = values(lstm_run(lstm, "padded", "post"), "state_drift")
    for side in SIDES:
        moved = mean_ci([d[side] for d in drift])
        compared.append(comparison(f"drift, {side}", "state drift", moved, "<=", HARMLESS_DRIFT, "share"))
    numbers = (
        "exact = the packed runs at the same pad side and seeds; state drift = how far the trained "
        "padded (post) LSTM's final encoder states move when validation sentences are batched, relative to their size"
    )
    return row(CLAIMS["b"], hardware, compared, numbers, every=True)


def loss_mask(transformer: list[dict], hardware: str) -> dict:
    """(e): valid BLEU lost without the loss mask on random batches (the most pads), claimed >= 1.0."""
    rand, rand_unmasked = find(transformer, *RANDOM), find(transformer, *RANDOM, *UNMASKED)
    lost = difference_ci(values(rand, "valid_bleu"), values(rand_unmasked, "valid_bleu"))
    loss = difference_ci(values(rand_unmasked, "valid_loss"), values(rand, "valid_loss"))
    numbers = (
        f"Transformer; random batches pad {1 - rand['padding_efficiency']:.0%} of slots; valid loss unmasked minus "
        f"masked {interval_text(loss, 'loss')}"
    )
    compared = [comparison("random batches", "valid BLEU lost without the mask", lost, ">=", BLEU_LOST, "bleu")]
    return row(CLAIMS["e"], hardware, compared, numbers)


def first_gradient(lstm: list[dict], hardware: str) -> dict:
    """(f): the first-position gradient (`padding_probes.first_position_gradient`) padded/packed at
    each pad side, claimed <= 0.8x."""

    def ratio(mode: str, side: str) -> dict:
        key = "first_position_gradient"
        return ratio_ci(values(lstm_run(lstm, mode, side), key), values(lstm_run(lstm, EXACT, side), key))

    figure = "first-position gradient padded/packed"
    compared = [comparison(side, figure, ratio("padded", side), "<=", GRADIENT_KEPT, "ratio") for side in SIDES]
    numbers = (
        "first-position gradient = the norm of d loss / d source embedding at each validation sentence's first "
        "real token over its mean at the sentence's real tokens (geometric mean, trained checkpoints)"
    )
    return row(CLAIMS["f"], hardware, compared, numbers)


def quality_rows(lstm: list[dict], transformer: list[dict], hardware: str) -> list[dict]:
    """Claims (b), (e), (f) from the pooled records of the quality grids (`bench.train.pool`, one
    run per seed), whose LSTM runs carry their probes (`first_position_gradient`; `state_drift`
    on the padded post-padding runs); a grid with no complete repeat yet gives no rows."""
    rows = [f(lstm, hardware) for f in (padding_harmless, first_gradient)] if lstm else []
    rows += [loss_mask(transformer, hardware)] if transformer else []
    return rows


# ---- speed claims (a), (c), (d), (g), (j), (k), from `bench speed` -----------------------------
SPEED_NOTES = {
    "a": "LSTM, token batches",
    "c": "LSTM; pads: token batches {tokens}, random batches {random}",
    "d": "Transformer; random and sorted batches of 112 sentences (~4,096 padded slots, as tokens)",
    "g": "Transformer; packed_rows attention is block-diagonal over whole 512-slot rows: it computes the "
    "scores of every pair of positions in a row and masks those across sentences, so packed_rows is "
    "padding-free in the projections and feed-forward layers, not in attention",
    "j": "LSTM encoder modes; pads: token batches {tokens}, random batches {random}",
}


def speed_rows(summary: dict, hardware: str, lstm: list[dict] | None = None) -> list[dict]:
    """The speed claims from a `bench speed` summary (ratios of real target tokens/s, paired
    round by round in one process), claim (k)'s fit and the A-vs-A controls; with the LSTM
    quality grid, (a) also gives the valid-loss cost of pre-padding over seeds."""
    by_claim: dict[str, list[dict]] = {}
    for c in summary["comparisons"]:
        by_claim.setdefault(c["claim"], []).append(c)
    pads = {name: g["pad_fraction"] for name, g in summary["groups"].items()}
    shares = {
        "tokens": _share(pads, "lstm_tokens", "padded post"),
        "random": _share(pads, "lstm_random", "padded random"),
    }
    rows = []
    for letter in ("a", "c", "d", "g", "j"):
        compared = [c for c in by_claim.get(letter, []) if c["name"] != "sorted/random"]
        if not compared:
            continue
        numbers = "one process (`bench speed`); " + SPEED_NOTES[letter].format(**shares)
        numbers += "".join(
            f"; sorted/random {interval_text(c, 'ratio')}" for c in by_claim[letter] if c not in compared
        )
        numbers += ("; " + pre_padding_loss(lstm)) if letter == "a" and lstm else ""
        judged = [comparison(c["name"], FIGURE[letter], c, ">=", AT_LEAST[letter], "ratio") for c in compared]
        rows.append(row(CLAIMS[letter], hardware, judged, numbers, every=letter == "j"))
    if "linear_in_padding" in summary:
        rows.append(linear_padding_row(summary["linear_in_padding"], hardware))
    if by_claim.get("control"):
        rows.append(control_row(by_claim["control"], hardware))
    return rows


def _share(pads: dict, group: str, variant: str) -> str:
    return f"{pads[group][variant]:.0%}" if variant in pads.get(group, {}) else "not measured"


def pre_padding_loss(lstm: list[dict]) -> str:
    """(a)'s quality side: valid loss pre minus post, over seeds, for the padded and the packed LSTM."""
    gaps = []
    for mode in ("padded", EXACT):
        post, pre = lstm_run(lstm, mode, "post"), lstm_run(lstm, mode, "pre")
        gap = difference_ci(values(pre, "valid_loss"), values(post, "valid_loss"))
        gaps.append(f"{mode} {interval_text(gap, 'loss')}")
    return "valid loss pre minus post: " + ", ".join(gaps)


LINEAR_R2 = 0.95  # (k): the line through the strategies' mean times must explain this much


def linear_padding_row(fit: dict, hardware: str) -> dict:
    """(k): seconds per real token against pad slots per real token, at equal real tokens per
    batch (`bench speed`'s `linear_in_padding`). Holds when a pad slot's time relative to a real
    token's lies above 0 (pads cost time) and a line through the strategies' means explains at
    least 95% of their spread (the cost grows linearly)."""
    compared = [
        comparison("pad cost", "a pad slot's time / a real token's", fit["pad_cost"], ">=", 0.0, "slope"),
        comparison("linearity", "R² of the line", point(fit["r2"]), ">=", LINEAR_R2, "r2"),
    ]
    points = ", ".join(
        f"{name} {p['pads_per_real']:.2f} pads per real token: {p['relative_seconds']:.2f}x"
        for name, p in fit["points"].items()
    )
    numbers = (
        "Transformer, one process; global, random and sorted batches sized to the real tokens of token batches; "
        f"seconds per real token relative to tokens': {points}; fitted: {', '.join(fit['fitted'])} (packed_rows has "
        "almost no pad slots but pays attention across whole rows)"
    )
    return row(CLAIMS["k"], hardware, compared, numbers, every=True)


CONTROL_HALF_WIDTH = 0.05  # what the A-vs-A control may show: an interval holding 1.00, at most ±5% wide


def control_row(controls: list[dict], hardware: str) -> dict:
    """The A-vs-A controls: one variant twice in one process (same weights, same batches). They
    pass when every interval holds 1.00 and is at most ±5% wide: what one process and the slices
    add by themselves, below which no speed interval can go."""
    judged = []
    for c in controls:
        half = half_width(c)
        passes = c["low"] <= 1.0 <= c["high"] and half <= CONTROL_HALF_WIDTH
        judged.append(
            {**comparison(c["name"], "A/A speed", c, ">=", 0.0, "ratio"), "verdict": "passes" if passes else "fails"}
        )
    return {
        "claim": "(control) one variant twice in one process",
        "hardware": hardware,
        "threshold": f"interval holds 1.00, half-width ≤ {CONTROL_HALF_WIDTH:.0%}",
        "measured": "; ".join(f"{c['name']}: {interval_text(c, 'ratio')} (±{half_width(c):.1%})" for c in judged),
        "verdict": "passes" if all(c["verdict"] == "passes" for c in judged) else "fails",
        "numbers": "the bench's own noise: same weights, same batches, alternated with the others",
        "comparisons": judged,
    }


def half_width(interval: dict) -> float:
    """An interval's half-width relative to its mean (for ratios: ±x%)."""
    return (interval["high"] - interval["low"]) / 2 / interval["mean"]


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
