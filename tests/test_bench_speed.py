"""`bench speed` (the slice scheduler, its summaries, a tiny run end to end) and the verdicts and
forest plot of the speed claims it feeds."""

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtapp.bench import claims, speed, verdicts
from mtapp.data.synthetic import tiny_config, write_synthetic_corpus

SPELLS = (1.0, 0.6, 1.3, 0.8, 1.1, 0.5)  # the host's speed in each round: it cancels in paired ratios


# ---- the schedule ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_the_order_puts_every_variant_in_every_position_and_after_every_other_equally_often(n):
    names = [chr(ord("A") + i) for i in range(n)]
    rows = 2 * n if n % 2 else n  # a Williams design: n rows, 2n for an odd n
    orders = [speed.rotation(names, r) for r in range(rows)]
    assert all(sorted(order) == names for order in orders) and speed.rotation(names, rows) == orders[0]
    for position in range(n):
        assert sorted(order[position] for order in orders) == sorted(names * (rows // n))
    follows = Counter((order[i], order[i + 1]) for order in orders for i in range(n - 1))
    assert set(follows) == {(a, b) for a in names for b in names if a != b} and len(set(follows.values())) == 1


class FakeStep:
    """A variant's update: batch k has 100 * (k + 1) target tokens; an update takes
    tokens / `rate` seconds, `switch` times as long right after another variant ran."""

    log: list[str] = []

    def __init__(self, name: str, rate: float, switch: float = 1.0):
        self.name, self.rate, self.switch, self.batch = name, rate, switch, -1

    def __call__(self, repeat: bool) -> speed.Update:
        self.batch += 0 if repeat else 1
        tokens = 100 * (self.batch + 1)
        after_switch = not FakeStep.log or FakeStep.log[-1] != self.name
        FakeStep.log.append(self.name)
        seconds = tokens / self.rate * (self.switch if after_switch else 1.0)
        return speed.Update(seconds, tokens, tokens, 3 * tokens)


def test_a_turn_drops_its_first_update_and_repeats_that_batch_to_measure_the_switch():
    FakeStep.log = []
    steps = {"A": FakeStep("A", 1000.0, switch=1.5), "B": FakeStep("B", 500.0, switch=1.5)}
    rounds = [speed.run_round(steps, r, updates=4, drop=1, passes=2) for r in range(3)]
    assert FakeStep.log[::4] == ["A", "B", "B", "A"] * 3  # who took each turn: the order rotates every pass
    a = rounds[0]["A"][0]
    assert [u["tgt_tokens"] for u in a] == [100, 100, 200, 300]  # batch 0 twice: after the switch and again
    assert a[0]["seconds"] == pytest.approx(1.5 * a[1]["seconds"])
    assert speed.slice_speed(rounds[0]["A"], drop=1) == pytest.approx(1000.0)  # the switch's cost left out
    assert len(speed.timed(rounds[0]["A"], drop=1)) == 2 * 3
    cost = speed.switch_cost(rounds, drop=1)
    order = FakeStep.log[::4]  # a turn after the same variant's own turn (B A | A B) saw no switch
    switched = sum(i == 0 or order[i - 1] != name for i, name in enumerate(order))
    assert cost["n"] == 12 and cost["mean"] == pytest.approx(1.5 ** (switched / 12)) and switched == 7
    # lockstep: every variant took the same batches in the same pass
    assert [u["tgt_tokens"] for u in rounds[2]["B"][1]] == [u["tgt_tokens"] for u in rounds[2]["A"][1]]
    ratio = speed.comparison_ratio(rounds, "A", "B", drop=1)
    assert ratio["mean"] == pytest.approx(2.0) and ratio["values"] == pytest.approx([2.0] * 3)
    FakeStep.log = []
    plain = speed.run_slice(FakeStep("C", 100.0), updates=3, drop=0)
    assert [u["tgt_tokens"] for u in plain] == [100, 200, 300] and speed.switch_cost([{"C": [plain]}], 0) is None


def fake_args(tmp_path, **kw):
    args = ["--out", str(tmp_path / "out"), "--groups", "lstm_random", "--warmup", "2"]
    for key, value in kw.items():
        args += [f"--{key}", str(value)]
    return speed.parse(args)


def test_a_rerun_continues_the_saved_rounds_and_the_rotation(tmp_path, monkeypatch):
    built = []

    def fake_build(group, config, folder):
        built.append(group.name)
        FakeStep.log = []
        return {v.name: FakeStep(v.name, 100.0 * (i + 1)) for i, v in enumerate(group.variants)}

    monkeypatch.setattr(speed, "build_steps", fake_build)
    speed.measure(fake_args(tmp_path, rounds=2, slice=3, passes=1))
    names = [v.name for v in speed.GROUPS["lstm_random"].variants]
    warmup = 2 * len(names)
    assert FakeStep.log[warmup::3] == speed.rotation(names, 0) + speed.rotation(names, 1)
    payload = speed.measure(fake_args(tmp_path, rounds=4, slice=3, passes=1))  # a new process: warm-up, rounds 3, 4
    assert FakeStep.log[warmup::3] == speed.rotation(names, 2) + speed.rotation(names, 3)  # the rotation goes on
    rounds = payload["groups"]["lstm_random"]["rounds"]
    assert (
        built == ["lstm_random"] * 2
        and len(json.loads((tmp_path / "out" / "speed.json").read_text())["groups"]["lstm_random"]["rounds"]) == 4
    )
    # a new process starts its batch streams anew: round 3's first turn follows the 2 warm-up updates
    assert rounds[2][names[0]][0][0]["tgt_tokens"] == 100 * (2 + 1)
    assert (
        speed.measure(fake_args(tmp_path, rounds=4, slice=3, passes=1)) and built == ["lstm_random"] * 2
    )  # nothing left to do
    with pytest.raises(SystemExit, match="another plan"):
        speed.measure(fake_args(tmp_path, rounds=4, slice=4, passes=1))
    with pytest.raises(SystemExit):
        speed.parse(["--slice", "1", "--drop", "1"])


# ---- summaries and verdicts ----------------------------------------------------------------------
def fake_rounds(rates: dict[str, float], n: int, noise: float = 0.0, pads: dict | None = None) -> list[dict]:
    """Rounds of 3 timed updates per variant (plus the dropped one), each variant at its rate
    (real target tokens/s) times the round's spell, with `noise` alternating in sign; `pads`:
    variant -> (pad slots per update, seconds added per 1,000 pads)."""
    rng = np.random.default_rng(0)
    rounds = []
    for r in range(n):
        spell = SPELLS[r % len(SPELLS)]
        round_ = {}
        for name, rate in rates.items():
            extra, per_thousand = (pads or {}).get(name, (0, 0.0))
            updates = []
            for _ in range(4):
                tokens = 1000
                seconds = (tokens / rate + per_thousand * extra / 1000) / spell * (1 + noise * rng.choice([-1, 1]))
                updates.append(
                    {"seconds": seconds, "tgt_tokens": tokens, "src_tokens": tokens, "slots": 2 * tokens + extra}
                )
            round_[name] = [updates]  # one turn
        rounds.append(round_)
    return rounds


def fake_speed_payload(n=6) -> dict:
    lstm_tokens = {"padded post": 1000, "padded pre": 990, "masked post": 700, "masked pre": 690}
    lstm_tokens |= {"packed post": 1300, "packed pre": 1287, "unrolled post": 1200, "packed post (copy)": 1300}
    lstm_random = {"padded random": 500, "masked random": 400, "packed random": 900, "unrolled random": 1000}
    transformer = {"tokens": 3500, "random@112": 1500, "sorted@112": 3000, "packed_rows": 3300, "tokens (copy)": 3500}
    transformer |= {"global@N": 3500, "random@N": 3500, "sorted@N": 3500}
    pads = {"global@N": (6000, 0.1), "random@N": (2000, 0.1), "sorted@N": (300, 0.1), "packed_rows": (100, 0.1)}
    pads |= {"tokens": (100, 0.1), "tokens (copy)": (100, 0.1)}
    groups = {
        "lstm_tokens": {"rounds": fake_rounds(lstm_tokens, n, noise=0.005)},
        "lstm_random": {"rounds": fake_rounds(lstm_random, n, noise=0.005)},
        "transformer": {"rounds": fake_rounds(transformer, n, noise=0.005, pads=pads)},
    }
    payload = {"plan": {"slice": 4, "drop": 1}, "groups": groups}
    payload["summary"] = speed.summarize(payload)
    return payload


def test_the_precision_family_gives_bf16_pure_and_inductor_over_their_baselines_and_the_mfu_over_the_peak():
    speeds = {"bf16 autocast": 3000, "bf16-pure": 3600, "bf16 autocast (copy)": 3000}
    groups = {
        name: {"rounds": fake_rounds(speeds, 5, noise=0.005)} for name in ("precision_transformer", "precision_lstm")
    }
    compiled = {"eager": 3000, "inductor, dynamic": 3300, "inductor, auto": 2850, "eager (copy)": 3000}
    groups["compile_transformer"] = {"rounds": fake_rounds(compiled, 5, noise=0.005)}
    batches = {"4,096 tokens": 3000, "2,048 tokens": 2700, "4,096 tokens (copy)": 3000}
    groups["batch_transformer"] = {"rounds": fake_rounds(batches, 5, noise=0.005)}
    payload = {"plan": {"slice": 4, "drop": 1}, "groups": groups}
    payload |= {"flops_per_target_token": {"precision_transformer": 50e6}, "peak_flops": {"bfloat16": 1e12}}
    summary = speed.summarize(payload)
    ratios = {c["name"]: c for c in summary["comparisons"]}
    assert ratios["transformer bf16-pure/autocast"]["mean"] == pytest.approx(1.2, rel=0.02)
    assert ratios["lstm A/A"]["low"] < 1.0 < ratios["lstm A/A"]["high"]
    mfu = summary["groups"]["precision_transformer"]["mfu"]
    assert mfu["bf16-pure"] == pytest.approx(3600 * 50e6 / 1e12, rel=0.02)
    assert "mfu" not in summary["groups"]["precision_lstm"]  # its work per token is not counted
    assert ratios["inductor dynamic/eager"]["mean"] == pytest.approx(1.1, rel=0.02)
    assert ratios["inductor auto/eager"]["mean"] == pytest.approx(0.95, rel=0.02)
    assert ratios["compile group A/A"]["low"] < 1.0 < ratios["compile group A/A"]["high"]
    assert ratios["2,048/4,096 tokens"]["mean"] == pytest.approx(0.9, rel=0.02)  # halved batches, against whole ones
    assert ratios["batch group A/A"]["low"] < 1.0 < ratios["batch group A/A"]["high"]
    with pytest.raises(SystemExit):  # one family a sitting: their plans differ
        speed.parse(["--groups", "transformer,precision_lstm"])


def test_summaries_pair_the_rounds_so_the_host_drift_cancels():
    summary = fake_speed_payload()["summary"]
    ratios = {(c["claim"], c["name"]): c for c in summary["comparisons"]}
    assert len(ratios) == len(speed.COMPARISONS)
    assert ratios[("c", "post")]["mean"] == pytest.approx(1.3, rel=0.02)  # the spells (0.5x..1.3x) cancel
    assert ratios[("c", "post")]["high"] / ratios[("c", "post")]["low"] < 1.03
    control = ratios[("control", "LSTM A/A")]
    assert control["low"] < 1.0 < control["high"] and control["n"] == 6
    fit = summary["linear_in_padding"]
    # an update takes 1000/3500 s for its 2,000 real tokens and 0.1 s per 1,000 pads: a pad slot
    # costs 0.0001 s, a real token 1/7000 s: 0.7 of it
    assert fit["pad_cost"]["mean"] == pytest.approx(0.7, rel=0.02) and fit["pad_cost"]["n"] == 6 and fit["r2"] > 0.99
    assert fit["fitted"] == ["tokens", "sorted@N", "random@N", "global@N"] and "packed_rows" in fit["points"]
    assert summary["groups"]["transformer"]["pad_fraction"]["global@N"] == pytest.approx(6000 / 8000)


def test_speed_verdicts_follow_the_intervals_and_undecided_ones_say_what_they_rule_out():
    payload = fake_speed_payload()
    rows = {r["claim"][:3]: r for r in verdicts.speed_rows(payload["summary"], "Test CPU")}
    assert list(rows) == ["(a)", "(c)", "(d)", "(g)", "(j)", "(k)", "(co"]
    assert rows["(a)"]["verdict"] == "does not hold"  # 1.01x, claimed >= 1.30x
    assert rows["(c)"]["verdict"] == "holds"  # 1.30x, 1.30x and 1.80x
    assert rows["(d)"]["verdict"] == "holds" and "sorted/random 2.00x" in rows["(d)"]["numbers"]
    assert rows["(g)"]["verdict"] == "does not hold" and "not in attention" in rows["(g)"]["numbers"]
    assert rows["(j)"]["verdict"] == "does not hold"  # unrolled is slower than packed on token batches
    assert rows["(k)"]["verdict"] == "holds"
    assert rows["(co"]["verdict"] == "passes"
    interval = {"mean": 1.03, "low": 0.73, "high": 1.46, "n": 8, "values": []}
    judged = verdicts.comparison("post", "packed/padded speed", interval, ">=", 1.05, "ratio")
    assert judged["verdict"] == "undecided" and judged["rules_out"] == "rules out below 0.73x and above 1.46x"
    row = verdicts.row("(c) x", "Test CPU", [judged], "")
    assert row["verdict"] == "undecided: rules out below 0.73x and above 1.46x"
    assert "(rules out below 0.73x and above 1.46x)" in row["measured"]
    wide = {**payload["summary"]["comparisons"][-1], "low": 0.9, "high": 1.2, "mean": 1.04}
    assert verdicts.control_row([wide], "Test CPU")["verdict"] == "fails"  # holds 1.00 but ±14%


def test_forest_plot_draws_each_comparison_against_its_threshold(tmp_path):
    rows = verdicts.speed_rows(fake_speed_payload()["summary"], "Test CPU")
    interval = {"mean": 0.2, "low": -1.4, "high": 1.8, "n": 5, "values": []}
    bleu = verdicts.comparison("random batches", "valid BLEU lost", interval, ">=", 1.0, "bleu")
    rows.append(verdicts.row("(e) masking the loss matters", "Test CPU", [bleu], ""))
    fig = claims.forest_figure(rows)
    panels = {ax.get_xlabel(): ax for ax in fig.axes}
    assert set(panels) == {claims.KIND_AXES[k] for k in ("ratio", "bleu", "slope", "r2")}
    ratio = panels["ratio (log scale)"]
    labels = [t.get_text() for t in ratio.get_yticklabels()][::-1]  # drawn bottom-up
    ratios = [(r, c) for r in rows for c in r["comparisons"] if c["kind"] == "ratio"]
    assert labels == [f"{claims.letter(r)} {c['name']}" for r, c in ratios]
    assert "control LSTM A/A" in labels and "(d) tokens/random" in labels
    bars = [line for line in ratio.get_lines() if len(line.get_xdata()) == 2 and line.get_linewidth() == 3]
    colours = [claims.VERDICT_COLOURS.get(c["verdict"], "tab:gray") for _, c in reversed(ratios)]
    assert [b.get_color() for b in bars] == colours  # coloured by verdict
    line = next(b for b in panels["valid BLEU lost"].get_lines() if len(b.get_xdata()) == 2)
    assert list(line.get_xdata()) == [-1.4, 1.8] and line.get_color() == "tab:gray"  # undecided
    name = claims.forest_plot(rows, tmp_path / "forest.png")
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- end to end, on a synthetic corpus -------------------------------------------------------------
def test_bench_speed_runs_every_group_on_tiny_models_in_seconds(tmp_path, capsys):
    write_synthetic_corpus(tmp_path, train=300, valid=20, test=20)
    transformer, lstm = tmp_path / "t.yaml", tmp_path / "l.yaml"
    transformer.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    model = {"type": "lstm", "rnn_hidden": 32, "rnn_layers": 2, "decoder_layers": 2, "encoder_padding": "packed"}
    lstm.write_text(yaml.safe_dump(tiny_config(tmp_path, model=model)))
    args = ["--lstm-config", str(lstm), "--transformer-config", str(transformer), "--rounds", "2", "--passes", "2"]
    assert speed.main([*args, "--warmup", "1", "--out", str(tmp_path / "out")]) == 0
    payload = json.loads((tmp_path / "out" / "speed.json").read_text())
    assert {name: len(g["rounds"]) for name, g in payload["groups"].items()} == dict.fromkeys(speed.GROUPS, 2)
    assert len(payload["summary"]["comparisons"]) == len(speed.COMPARISONS)
    tokens_group = payload["groups"]["lstm_tokens"]["rounds"][1]
    batches = {name: [u["tgt_tokens"] for turn in turns for u in turn] for name, turns in tokens_group.items()}
    assert len({tuple(b) for b in batches.values()}) == 1  # one strategy and seed: the same batches in lockstep
    rounds = payload["groups"]["transformer"]["rounds"]
    pads = {
        n: np.mean([u["slots"] - u["src_tokens"] - u["tgt_tokens"] for r in rounds for u in speed.timed(r[n], 0)])
        for n in rounds[0]
    }
    assert pads["global@N"] > pads["random@N"] > pads["tokens"]  # equal real tokens, more padding
    assert all(math.isfinite(c["mean"]) and c["mean"] > 0 for c in payload["summary"]["comparisons"])
    out = capsys.readouterr().out
    assert "(control) LSTM A/A" in out and "(k) a pad slot's time relative to a real token's" in out


def test_a_group_that_joined_the_family_since_keeps_the_saved_rounds_of_the_others(tmp_path):
    plan = speed.plan_of(fake_args(tmp_path))
    older = {**plan, "groups": {k: v for k, v in plan["groups"].items() if k != "lstm_random"}}
    path = tmp_path / "speed.json"
    saved = {"plan": older, "machine": {"kind": "K"}, "groups": {k: {"rounds": [{}]} for k in older["groups"]}}
    path.write_text(json.dumps(saved))
    payload = speed.load_payload(path, plan, {"kind": "K"})
    assert payload["groups"]["lstm_random"] == {"rounds": []} and payload["plan"]["groups"] == plan["groups"]
    assert all(payload["groups"][k] == {"rounds": [{}]} for k in older["groups"])
    changed = {**older, "groups": {k: [*v, v[0]] for k, v in older["groups"].items()}}  # a group's variants changed
    path.write_text(json.dumps({**saved, "plan": changed}))
    with pytest.raises(SystemExit, match="another plan"):
        speed.load_payload(path, plan, {"kind": "K"})
    other_family = speed.plan_of(speed.parse(["--out", str(tmp_path / "out"), "--groups", "precision_transformer"]))
    path.write_text(json.dumps({**saved, "plan": other_family}))
    with pytest.raises(SystemExit, match="another plan"):  # no group in common: not a plan to continue
        speed.load_payload(path, plan, {"kind": "K"})


def test_saved_rounds_follow_the_resolved_config_not_the_file(tmp_path):
    """Comments, keys written at their defaults and logging switches keep a config's fingerprint
    (saved rounds continue); a training setting changes it."""
    from mtapp.config import config_path

    shipped = config_path("multi30k_de_en_transformer_base")
    text = shipped.read_text()
    reworded = tmp_path / "reworded.yaml"  # a comment, a default written out, the event files off
    reworded.write_text("# a comment\n" + text + "loss:\n  label_smoothing: 0.1\ntrain:\n  tensorboard: false\n")
    other = tmp_path / "other.yaml"
    other.write_text(text + "loss:\n  label_smoothing: 0.2\n")
    budget = tmp_path / "budget.yaml"  # the bench steps without end: a run's budget is not what it measures
    budget.write_text(text + "train:\n  max_epochs: 100\n  max_minutes: 5\n")
    fingerprints = [speed.fingerprint(c) for c in (reworded, budget, shipped, other)]
    assert fingerprints[0] == fingerprints[1] == fingerprints[2] != fingerprints[3]
    linear = tmp_path / "linear.yaml"  # a key added since rounds were saved: hashed only when set
    linear.write_text(text + "train:\n  schedule: linear\n")
    assert speed.fingerprint(linear) != fingerprints[2]


def test_the_rounds_saved_in_results_can_be_continued_with_the_shipped_configs():
    """The speed.json files committed under results/ name the configs by fingerprint: a new config
    key or a reworded default must not make them stale."""
    from mtapp.config import config_path

    root = Path(__file__).resolve().parents[1] / "results" / "precision" / "amd-epyc-avx512-bf16"
    saved = [json.loads(p.read_text())["plan"]["configs"] for p in sorted(root.glob("*/speed.json"))]
    assert len(saved) == 3  # session 22's rounds (the Xeon folders' were saved before the configs changed)
    for configs in saved:
        for named in configs.values():
            name, digest = named.split()
            assert speed.fingerprint(config_path(name.removesuffix(".yaml"))) == digest, named
