"""`python -m mtapp.bench speed`: the training speed of batching variants, measured in one process,
the variants alternating update by update.

    python -m mtapp.bench speed [--groups lstm_tokens,lstm_random,transformer] [--minutes 20]
        [--rounds 0] [--slice 1] [--passes 5] [--drop 0] [--warmup 3] [--out DIR]

Why one process: a whole training run per variant, minutes apart from the run it is paired with,
measures the shared host as much as the variant (its speed moved up to 3x within an hour). Here
every variant of a group is built in the same process, with the same initial weights (its own
model, optimizer and batch stream: its strategy or encoder mode), and after --warmup untimed
updates each the variants take turns of --slice updates. A round is --passes passes over the
variants, in an order that changes every pass (`rotation`: every variant follows every other
equally often); each round gives each comparison one paired ratio of real target tokens/s
(the tokens over the seconds of each variant's updates in the round), and a comparison's figure is
the geometric mean over rounds with its 95% interval (`intervals.ratio_ci`). Variants with the
same strategy and seed train on the same batches in the same pass (their streams advance in
lockstep), so their ratio sees no batch-to-batch noise. A copy of one variant in each group (same
weights, same batches) is the A-vs-A control: its interval should hold 1.00 and be narrow.

Why turns of one update: the host's speed wanders within seconds. Two copies of one Transformer
alternating in turns of 5 updates gave per-turn ratios with a spread of 11%; in turns of one
update, rounds of 5 passes spread 2.2% (docs/claims.md). The first --drop updates of a turn are
not timed, and the next one repeats the last dropped batch: the two times of that batch, right
after a switch and again at once, measure what a switch costs (`switch_cost`). Measured with
--slice 5 --drop 1, a switch cost nothing the interval could see (1.01x, 1.00x, 1.00x of the
same batch's time in the three groups), so nothing is dropped by default.

What one process could bias, and how it is checked: the caching allocator, oneDNN's primitive
cache and the thread pool are shared, so a variant may run on caches warmed or evicted by the one
before it. The order puts every variant after every other equally often; the control pair (which
differs only in that) shows whether order leaves a mark; `switch_cost` says what a switch costs.

The precision groups (--groups precision_transformer,precision_lstm) are a family of their own,
for issue #35: each config trained in bf16 autocast and in bf16-pure (`mtapp.master`), with an
autocast copy as the control; the same command measures the bf16 and float32 matmul peaks after
the rounds, and the Transformer's variants get their MFU (useful FLOPs per target token,
`machine.training_flops_per_token`, times the median tokens/s, over the bf16 peak).

The compile group (--groups compile_transformer, of the same family, for #35 too) trains the
Transformer config eager and compiled with inductor (`train.compile_shapes` dynamic: for any shape
from the start; auto: PyTorch's default, recompiled once the shapes change), an eager copy the
control. Compilation happens in the --warmup updates (give them several); a recompilation after
them is timed, as training would pay it.

The batch group (--groups batch_transformer, the same family, for #36's lever) trains the Transformer config
with token batches of 4,096 and of 2,048 (`batching.max_tokens`), a 4,096 copy the control: the speed that
halving a batch costs at this machine's threads.

The groups take turns, a round each, for --minutes (all groups are built and warmed up first) or
until each has --rounds rounds. The rounds are saved to DIR/speed.json after each one: a rerun with the same
plan continues where it stopped (a new process warms up again, then the rotation goes on), so the
bench can run in sittings. Claim (k) (time grows linearly with padding) reads the Transformer
group's strategies at equal real tokens per batch (`equal_real_batch_size`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mtapp.batching import build_strategy
from mtapp.bench.intervals import mean_ci, ratio_ci
from mtapp.bench.machine import cpu_name, matmul_peak, transformer_flops_per_token
from mtapp.config import BASE_CONFIG, ConfigError, config_from_dict, config_path, load_config
from mtapp.data.prepare import prepare
from mtapp.models import build_model
from mtapp.progress import EpochStats, bar_settings
from mtapp.runtime import cpu_has_native_bf16, memory_policy, seed_everything, select_device, set_threads
from mtapp.specials import with_specials
from mtapp.trainer import build_trainer

LSTM_CONFIG = config_path("multi30k_de_en_lstm")
RANDOM_112 = ("batching.strategy=random", "batching.batch_size=112")  # ~4,096 padded slots a side, like `tokens`


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """Variants of one config (`kind`: "lstm" or "transformer", the config --lstm-config or
    --transformer-config names), built and alternated in one process."""

    name: str
    kind: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Comparison:
    """Claim `claim`'s figure `name`: variant `a`'s speed over variant `b`'s in `group`."""

    claim: str
    name: str
    group: str
    a: str
    b: str


def lstm(mode: str, side: str, *more: str) -> tuple[str, ...]:
    return (f"model.encoder_padding={mode}", f"batching.pad_side={side}", *more)


# The variants behind the speed claims. "(copy)" variants are the A-vs-A controls. The
# Transformer's sentence-count strategies "@N" get N sentences a batch, N chosen when the group
# is built so that their real tokens per batch equal `tokens`' (claim k); "@112" gives them about
# the padded slots of `tokens` instead (claim d, as the whole-run grid measured it).
GROUPS = {
    "lstm_tokens": Group(
        "lstm_tokens",
        "lstm",
        tuple(
            Variant(f"{mode} {side}", lstm(mode, side))
            for mode in ("padded", "masked", "packed")
            for side in ("post", "pre")
        )
        + (Variant("unrolled post", lstm("unrolled", "post")), Variant("packed post (copy)", lstm("packed", "post"))),
    ),
    "lstm_random": Group(
        "lstm_random",
        "lstm",
        tuple(
            Variant(f"{mode} random", lstm(mode, "post", *RANDOM_112))
            for mode in ("padded", "masked", "packed", "unrolled")
        ),
    ),
    "transformer": Group(
        "transformer",
        "transformer",
        (
            Variant("tokens", ("batching.strategy=tokens",)),
            Variant("random@112", RANDOM_112),
            Variant("sorted@112", ("batching.strategy=sorted", "batching.batch_size=112")),
            Variant("packed_rows", ("batching.strategy=packed_rows",)),
            Variant("tokens (copy)", ("batching.strategy=tokens",)),
            Variant("global@N", ("batching.strategy=global",)),
            Variant("random@N", ("batching.strategy=random",)),
            Variant("sorted@N", ("batching.strategy=sorted",)),
        ),
    ),
}
# Training precisions (#35), a family of their own: bf16 autocast (amp auto on a CPU with bf16) against
# bf16-pure (a bf16 model, float32 master weights), each config's batching unchanged.
PRECISION_GROUPS = {
    f"precision_{kind}": Group(
        f"precision_{kind}",
        kind,
        (
            Variant("bf16 autocast", ("train.amp=bf16",)),
            Variant("bf16-pure", ("train.amp=bf16-pure",)),
            Variant("bf16 autocast (copy)", ("train.amp=bf16",)),
        ),
    )
    for kind in ("transformer", "lstm")
}
# torch.compile with inductor against eager (#35), in the same family: each config's precision (amp auto)
# and batching unchanged; the compiled variants compile during their warm-up updates.
PRECISION_GROUPS["compile_transformer"] = Group(
    "compile_transformer",
    "transformer",
    (
        Variant("eager", ("train.compile=false",)),
        Variant("inductor, dynamic", ("train.compile=true", "train.compile_shapes=dynamic")),
        Variant("inductor, auto", ("train.compile=true", "train.compile_shapes=auto")),
        Variant("eager (copy)", ("train.compile=false",)),
    ),
)
# Token batches of half the default's size (#36's lever: twice the updates in the same minutes), in the same
# family: what halving `batching.max_tokens` costs a second of training at the machine's threads.
PRECISION_GROUPS["batch_transformer"] = Group(
    "batch_transformer",
    "transformer",
    (
        Variant("4,096 tokens", ("batching.max_tokens=4096",)),
        Variant("2,048 tokens", ("batching.max_tokens=2048",)),
        Variant("4,096 tokens (copy)", ("batching.max_tokens=4096",)),
    ),
)
FAMILIES = (GROUPS, PRECISION_GROUPS)
COMPARISONS = [
    Comparison("a", "padded", "lstm_tokens", "padded post", "padded pre"),
    Comparison("a", "masked", "lstm_tokens", "masked post", "masked pre"),
    Comparison("c", "post", "lstm_tokens", "packed post", "padded post"),
    Comparison("c", "pre", "lstm_tokens", "packed pre", "padded pre"),
    Comparison("c", "random batches", "lstm_random", "packed random", "padded random"),
    Comparison("d", "tokens/random", "transformer", "tokens", "random@112"),
    Comparison("d", "sorted/random", "transformer", "sorted@112", "random@112"),
    Comparison("g", "packed_rows/tokens", "transformer", "packed_rows", "tokens"),
    Comparison("control", "LSTM A/A", "lstm_tokens", "packed post (copy)", "packed post"),
    Comparison("control", "Transformer A/A", "transformer", "tokens (copy)", "tokens"),
] + [
    Comparison("j", f"unrolled/{mode}, {where}", group, f"unrolled {suffix}", f"{mode} {suffix}")
    for where, group, suffix in (
        ("token batches", "lstm_tokens", "post"),
        ("random batches", "lstm_random", "random"),
    )
    for mode in ("packed", "masked", "padded")
]
PRECISION_COMPARISONS = (
    [
        Comparison(claim, name, f"precision_{kind}", a, "bf16 autocast")
        for kind in ("transformer", "lstm")
        for claim, name, a in (
            ("precision", f"{kind} bf16-pure/autocast", "bf16-pure"),
            ("control", f"{kind} A/A", "bf16 autocast (copy)"),
        )
    ]
    + [
        Comparison(claim, name, "compile_transformer", a, "eager")
        for claim, name, a in (
            ("compile", "inductor dynamic/eager", "inductor, dynamic"),
            ("compile", "inductor auto/eager", "inductor, auto"),
            ("control", "compile group A/A", "eager (copy)"),
        )
    ]
    + [
        Comparison("batch", "2,048/4,096 tokens", "batch_transformer", "2,048 tokens", "4,096 tokens"),
        Comparison("control", "batch group A/A", "batch_transformer", "4,096 tokens (copy)", "4,096 tokens"),
    ]
)
DEFAULT_MINUTES = 20.0
# Claim (k): the strategies whose padding is in their slots, at equal real tokens per batch (the
# first is the reference of the relative times); packed_rows is shown beside them, not fitted: its
# extra cost is attention across whole rows, which slots do not count.
PADDING_FIT = ("tokens", "sorted@N", "random@N", "global@N")


# ---- the schedule ------------------------------------------------------------------------------
def rotation(names: list[str], index: int) -> list[str]:
    """The order of pass `index`: row `index` of a Williams design (a balanced Latin square).
    Over n passes (2n for an odd number n of names) every name takes every position once and
    follows every other name exactly once, so that no variant always runs after the same one
    (on the caches it left)."""
    n = len(names)
    base = [0]  # 0, 1, n-1, 2, n-2, ...
    for k in range(1, n):
        base.append((k + 1) // 2 if k % 2 else n - k // 2)
    row = index % (2 * n if n % 2 else n)
    order = [(b + row) % n for b in base]
    return [names[i] for i in (order[::-1] if row >= n else order)]


@dataclass
class Update:
    """One timed update: seconds (batch made, forward, backward, optimizer step), of which making
    the batch took `batch_seconds`, and its tokens."""

    seconds: float
    tgt_tokens: int
    src_tokens: int
    slots: int  # padded slots, both sides
    batch_seconds: float = 0.0


Step = Callable[[bool], Update]  # one update of a variant; True: on its previous batch again
Round = dict[str, list[list[dict]]]  # variant -> its turns in a round -> each turn's update records


def run_slice(step: Step, updates: int, drop: int) -> list[dict]:
    """One turn of a variant: `updates` updates, the first `drop` untimed (what a switch may
    disturb). The update after them repeats the last dropped batch, so that each turn measures
    what the switch cost: the same batch's seconds right after the switch and again at once
    (`switch_cost`); the repeat takes no new batch, so lockstep variants stay in step."""
    records = [asdict(step(False)) for _ in range(drop)]
    records += [asdict(step(drop > 0)) for _ in range(min(1, updates - drop))]
    records += [asdict(step(False)) for _ in range(updates - len(records))]
    return records


def run_round(steps: dict[str, Step], round_: int, updates: int, drop: int, passes: int = 1) -> Round:
    """One round: `passes` passes, each a `run_slice` (a turn) of every variant, the order changed
    every pass (pass p of round r: `rotation` row r * passes + p); every turn's records, variant
    by variant."""
    turns: Round = {name: [] for name in steps}
    for p in range(passes):
        for name in rotation(list(steps), round_ * passes + p):
            turns[name].append(run_slice(steps[name], updates, drop))
    return turns


def timed(turns: list[list[dict]], drop: int) -> list[dict]:
    """The timed updates of a variant's turns in a round: each turn's after its first `drop`."""
    return [u for turn in turns for u in turn[drop:]]


def slice_speed(turns: list[list[dict]], drop: int) -> float:
    """Real target tokens/s of a variant's timed updates in a round."""
    kept = timed(turns, drop)
    return sum(u["tgt_tokens"] for u in kept) / sum(u["seconds"] for u in kept)


def switch_cost(rounds: list[Round], drop: int) -> dict | None:
    """What a switch costs: the training seconds (the batch made before them left out: the repeat
    reuses it) of a turn's last dropped update (the first after the switch, for --drop 1) over the
    same batch's when repeated at once, geometric mean over turns with its 95% interval; None
    without dropped updates."""

    def train_seconds(u: dict) -> float:
        return u["seconds"] - u.get("batch_seconds", 0.0)

    turns = [turn for r in rounds for variant in r.values() for turn in variant]
    pairs = [(train_seconds(u[drop - 1]), train_seconds(u[drop])) for u in turns if drop and len(u) > drop]
    if len(pairs) < 2:
        return None
    first, again = zip(*pairs)
    return ratio_ci(first, again)


def comparison_ratio(rounds: list[Round], a: str, b: str, drop: int) -> dict:
    """Variant a's speed over b's, round by round: geometric mean and 95% interval."""
    return ratio_ci([slice_speed(r[a], drop) for r in rounds], [slice_speed(r[b], drop) for r in rounds])


def linear_in_padding(rounds: list[Round], names: tuple[str, ...], drop: int, shown: tuple[str, ...] = ()) -> dict:
    """Claim (k): time against padding. If an update takes a * real tokens + b * pad slots, its
    seconds per real token are a + b * (pad slots per real token): a line, whatever each
    strategy's real tokens per batch. Within each round (which cancels the host's drift between
    rounds) a line through the variants `names` gives b/a, a pad slot's time relative to a real
    token's; its mean over rounds with a 95% interval is the claim's figure. The line through the
    variants' means over all rounds (relative to `names[0]`'s) gives R², how linear the cost is;
    `shown` variants get points, not fitted."""
    points: dict[str, list[tuple[float, float]]] = {n: [] for n in (*names, *shown)}
    ratios = []
    for r in rounds:
        per_token = {n: _means(timed(r[n], drop)) for n in points}
        x = {n: m["pads"] / m["real"] for n, m in per_token.items()}
        y = {n: m["seconds"] / m["real"] for n, m in per_token.items()}
        slope, intercept = np.polyfit([x[n] for n in names], [y[n] for n in names], 1)
        ratios.append(slope / intercept)
        for n in points:
            points[n].append((x[n], y[n] / y[names[0]]))
    means = {n: np.mean(points[n], axis=0) for n in points}
    mx, my = np.array([means[n][0] for n in names]), np.array([means[n][1] for n in names])
    slope, intercept = np.polyfit(mx, my, 1)
    r2 = 1 - float(((my - (slope * mx + intercept)) ** 2).sum()) / max(float(((my - my.mean()) ** 2).sum()), 1e-12)
    return {
        "pad_cost": mean_ci(ratios),
        "r2": r2,
        "fitted": list(names),
        "points": {n: {"pads_per_real": float(m[0]), "relative_seconds": float(m[1])} for n, m in means.items()},
    }


def _means(updates: list[dict]) -> dict:
    n = len(updates)
    return {
        "seconds": sum(u["seconds"] for u in updates) / n,
        "pads": sum(u["slots"] - u["src_tokens"] - u["tgt_tokens"] for u in updates) / n,
        "real": sum(u["src_tokens"] + u["tgt_tokens"] for u in updates) / n,
        "slots": sum(u["slots"] for u in updates) / n,
    }


def summarize(payload: dict) -> dict:
    """Every comparison's ratio, each group's speeds, switch cost and claim (k)'s fit, from the
    saved rounds."""
    drop = payload["plan"]["drop"]
    groups = payload["groups"]
    out: dict = {"comparisons": [], "groups": {}}
    for c in COMPARISONS + PRECISION_COMPARISONS:
        rounds = groups.get(c.group, {}).get("rounds", [])
        if len(rounds) < 2:
            continue
        out["comparisons"].append({**asdict(c), **comparison_ratio(rounds, c.a, c.b, drop)})
    for name, g in groups.items():
        rounds = g["rounds"]
        if not rounds:
            continue
        speeds = {v: float(np.median([slice_speed(r[v], drop) for r in rounds])) for v in rounds[0]}
        pads = {
            v: 1 - float(np.mean([m["real"] / m["slots"] for m in (_means(timed(r[v], 0)) for r in rounds)]))
            for v in rounds[0]
        }
        out["groups"][name] = {
            "rounds": len(rounds),
            "median_tgt_tokens_per_s": speeds,
            "pad_fraction": pads,
            "switch_cost": switch_cost(rounds, drop),
        }
        per_token, peak = payload.get("flops_per_target_token", {}).get(name), payload.get("peak_flops", {})
        in_bf16 = name.startswith("precision_") or payload.get("machine", {}).get("native_bf16")  # compile: amp auto
        if per_token and "bfloat16" in peak and name in PRECISION_GROUPS and in_bf16:
            out["groups"][name]["mfu"] = {v: speed * per_token / peak["bfloat16"] for v, speed in speeds.items()}
    rounds = groups.get("transformer", {}).get("rounds", [])
    if len(rounds) >= 2:
        out["linear_in_padding"] = linear_in_padding(rounds, PADDING_FIT, drop, shown=("packed_rows",))
    return out


# ---- building the variants ---------------------------------------------------------------------
def equal_real_batch_size(cfg, data) -> int:
    """Sentences a batch that carry as many real tokens (both sides, specials included) as the
    config's token batches do on average (claim k's sentence-count strategies)."""
    tokens = replace(cfg.batching, strategy="tokens")
    strategy = build_strategy(tokens, data.train.src_lengths, data.train.tgt_lengths)
    src, tgt = with_specials(np.asarray(data.train.src_lengths), np.asarray(data.train.tgt_lengths))
    per_sentence = float((src + tgt).mean())
    per_batch = float((src + tgt).sum()) / len(strategy.plan(1))
    return max(1, round(per_batch / per_sentence))


def endless(trainer) -> Iterator:
    while True:
        yield from trainer.batches.epoch_iter()


def build_steps(group: Group, config: Path, folder: Path) -> dict[str, Step]:
    """Every variant of `group` (over `config`) as a function that makes one timed training
    update: one prepared corpus, one model each, all with the first variant's initial weights."""
    base = load_config(config, [])
    data = prepare(base)
    n = equal_real_batch_size(base, data)
    steps: dict[str, Step] = {}
    first = None
    for v in group.variants:
        overrides = list(v.overrides) + ([f"batching.batch_size={n}"] if v.name.endswith("@N") else [])
        cfg = load_config(config, overrides)
        seed_everything(cfg.train.seed)
        model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
        if first is None:
            first = model.state_dict()
        else:
            model.load_state_dict(first)
        device = select_device(cfg.train.device)
        trainer = build_trainer(cfg, folder / "scratch", model, data, device)
        steps[v.name] = _stepper(trainer)
        print(f"  {group.name}: {v.name} ({' '.join(overrides)})", flush=True)
    return steps


def _stepper(trainer) -> Step:
    stream = endless(trainer)
    cuda = trainer.device.type == "cuda"
    last = []

    def step(repeat: bool) -> Update:
        started = time.perf_counter()
        batch = last[0] if repeat else trainer.to_device(next(stream))
        made = time.perf_counter()
        last[:] = [batch]
        trainer.train_step([batch], EpochStats())
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        return Update(seconds, batch.tgt_tokens, batch.src_tokens, batch.slots, made - started)

    return step


# ---- the bench ----------------------------------------------------------------------------------
def plan_of(args: argparse.Namespace) -> dict:
    """What must match for saved rounds to be continued (as JSON reads it back)."""
    plan = {
        "groups": {name: [asdict(v) for v in group.variants] for name, group in family(args.groups).items()},
        "configs": {kind: f"{path.name} {fingerprint(path)}" for kind, path in configs(args).items()},
        "threads": torch.get_num_threads(),
        "slice": args.slice,
        "drop": args.drop,
        "passes": args.passes,
    }
    return json.loads(json.dumps(plan))


def family(names: list[str]) -> dict[str, Group]:
    """The family of groups (the claims' or the precisions') that `names` come from."""
    return next(f for f in FAMILIES if set(names) <= set(f))


def same_plan(saved: dict, plan: dict) -> bool:
    """Whether saved rounds were made with `plan`: configs compare by their fingerprints, not their
    file names (a config renamed or copied keeps its rounds); every saved group must be in the plan with
    the same variants (a group added to the family since does not refuse the others' rounds)."""

    def comparable(p: dict) -> dict:
        rest = {k: v for k, v in p.items() if k != "groups"}
        return {**rest, "configs": {k: v.split()[-1] for k, v in p.get("configs", {}).items()}}

    saved_groups = saved.get("groups", {})
    if not saved_groups or not set(saved_groups) <= set(plan["groups"]):  # another family, or a group gone
        return False
    same_groups = all(variants == plan["groups"][name] for name, variants in saved_groups.items())
    return same_groups and comparable(saved) == comparable(plan)


def load_payload(path: Path, plan: dict, machine: dict) -> dict:
    """The saved rounds in `path` if they were made with this plan on this kind of machine, else
    a fresh payload (an existing file of another plan is refused: pick another --out)."""
    if path.exists():
        payload = json.loads(path.read_text())
        if not same_plan(payload.get("plan", {}), plan) or payload.get("machine", {}).get("kind") != machine["kind"]:
            raise SystemExit(
                f"{path} holds rounds of another plan or machine ({payload.get('machine', {}).get('kind')}): "
                "use another --out, or delete it to start again"
            )
        for name, variants in plan["groups"].items():  # groups new to the family start with no rounds
            payload["plan"]["groups"].setdefault(name, variants)
            payload["groups"].setdefault(name, {"rounds": []})
        return payload
    return {"plan": plan, "machine": machine, "groups": {name: {"rounds": []} for name in plan["groups"]}}


def machine() -> dict:
    precision = "bf16" if cpu_has_native_bf16() else "float32"
    capability = torch.backends.cpu.get_cpu_capability()
    return {
        "cpu": cpu_name(),
        "native_bf16": cpu_has_native_bf16(),
        "kind": f"{cpu_name()} ({capability}), amp auto = {precision}",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


# Settings that do not change what or how a variant trains: a config that differs from the saved
# plan's only in these (or in how its file is written) continues the saved rounds.
NOT_TRAINING = (("train", "tensorboard"), ("train", "log_every"))
# A run's budget: the bench steps updates without end, so these are hashed at their defaults (reset,
# not dropped, so that the fingerprints of rounds saved before a config set one stay the same).
BUDGET = (("train", "max_epochs"), ("train", "max_minutes"), ("train", "max_updates"))
# Keys that joined the config after rounds were saved: left out of the hash while at their defaults.
ADDED = (("train", "schedule"),)


def fingerprint(path: Path) -> str:
    """A config as the rounds depend on it: the hash of its resolved settings but NOT_TRAINING,
    BUDGET and ADDED at its defaults, so rewording the file (comments, keys left at their defaults)
    or a new config key keeps saved rounds valid."""
    resolved, defaults = load_config(path).to_dict(), config_from_dict({}).to_dict()
    for section, key in NOT_TRAINING:
        resolved[section].pop(key, None)
    for section, key in BUDGET:
        resolved[section][key] = defaults[section][key]
    for section, key in ADDED:
        if resolved[section][key] == defaults[section][key]:
            del resolved[section][key]
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]


def configs(args: argparse.Namespace) -> dict[str, Path]:
    return {"lstm": args.lstm_config, "transformer": args.transformer_config}


def run_groups(groups: list[Group], payload: dict, path: Path, args: argparse.Namespace) -> None:
    """Build every group's variants and warm them up, then a round of each group in turn until
    --minutes pass or every group has --rounds saved rounds; each round saved as it ends. The
    groups take turns so that each gets rounds at the pace of its own updates and a sitting that
    stops early leaves every group with rounds."""
    saved = {g.name: payload["groups"][g.name]["rounds"] for g in groups}
    left = [g for g in groups if not args.rounds or len(saved[g.name]) < args.rounds]
    if not left:
        return
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        steps = {}
        for g in left:
            print(f"{g.name}: building {len(g.variants)} variants", flush=True)
            steps[g.name] = build_steps(g, configs(args)[g.kind], Path(scratch) / g.name)
            for name in rotation(list(steps[g.name]), 0):
                for _ in range(args.warmup):
                    steps[g.name][name](False)
        started, deadline = time.monotonic(), time.monotonic() + args.minutes * 60
        bar = tqdm(desc="rounds", unit="round", **bar_settings())
        while left and time.monotonic() < deadline:
            for g in list(left):
                if time.monotonic() >= deadline:
                    break
                rounds = saved[g.name]
                rounds.append(run_round(steps[g.name], len(rounds), args.slice, args.drop, args.passes))
                path.write_text(json.dumps(payload) + "\n")
                bar.update(1)
                bar.set_postfix_str(", ".join(f"{n} {len(r)}" for n, r in saved.items()), refresh=False)
                if args.rounds and len(rounds) >= args.rounds:
                    left.remove(g)
        bar.close()
        print(f"{(time.monotonic() - started) / 60:.1f} minutes of rounds", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's settings from its command line (`bench claims` builds one too)."""
    p = argparse.ArgumentParser(prog="python -m mtapp.bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--groups",
        type=lambda s: s.split(","),
        default=list(GROUPS),
        help=f"groups to run (they take turns): the claims' (default) or {','.join(PRECISION_GROUPS)}",
    )
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="time for this sitting's rounds")
    p.add_argument("--rounds", type=int, default=0, help="stop a group at this many saved rounds (0 = time only)")
    p.add_argument("--slice", type=int, default=1, help="updates of a variant per turn (default %(default)s)")
    p.add_argument("--drop", type=int, default=0, help="untimed updates at the start of a turn (default %(default)s)")
    p.add_argument("--passes", type=int, default=5, help="turns of each variant per round (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed updates of each variant first (default %(default)s)")
    p.add_argument("--lstm-config", type=Path, default=LSTM_CONFIG, help="config of the LSTM groups")
    p.add_argument(
        "--transformer-config",
        type=Path,
        default=BASE_CONFIG,
        help="config of the Transformer groups (default: the base)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench_speed"), help="where speed.json goes")
    args = p.parse_args(argv)
    one_family = any(set(args.groups) <= set(f) for f in FAMILIES)
    if not one_family or not args.groups or len(set(args.groups)) < len(args.groups):
        p.error(
            f"--groups {','.join(args.groups)}: choose from {', '.join(GROUPS)} or from {', '.join(PRECISION_GROUPS)}, "
            "each at most once"
        )
    if args.slice <= args.drop or min(args.drop, args.warmup, args.minutes, args.rounds) < 0 or args.passes < 1:
        p.error("--slice must exceed --drop (a turn needs a timed update); --passes >= 1; the others >= 0")
    try:
        args.lstm_config, args.transformer_config = map(config_path, (args.lstm_config, args.transformer_config))
    except ConfigError as e:
        p.error(str(e))
    return args


def saved_rounds(args: argparse.Namespace) -> dict[str, int]:
    """Each group's rounds saved in OUT/speed.json (none where there is no file)."""
    path = args.out / "speed.json"
    groups = json.loads(path.read_text()).get("groups", {}) if path.exists() else {}
    return {name: len(groups.get(name, {}).get("rounds", [])) for name in GROUPS}


def measure(args: argparse.Namespace) -> dict:
    """Run (or continue) the rounds `args` ask for, then summarize: OUT/speed.json's payload.
    --minutes 0 measures nothing and summarizes the saved rounds."""
    set_threads()
    memory_policy()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "speed.json"
    payload = load_payload(path, plan_of(args), machine())
    if args.minutes > 0:
        run_groups([family(args.groups)[name] for name in args.groups], payload, path, args)
        if set(args.groups) <= set(PRECISION_GROUPS):  # for the MFU: the work of a token, the peaks
            cfg = load_config(args.transformer_config)
            per_token = transformer_flops_per_token(cfg, prepare(cfg))
            transformers = [name for name, group in PRECISION_GROUPS.items() if group.kind == "transformer"]
            payload["flops_per_target_token"] = dict.fromkeys(transformers, per_token)
            payload["peak_flops"] = {
                str(t).removeprefix("torch."): matmul_peak(t) for t in (torch.bfloat16, torch.float32)
            }
    payload["summary"] = summarize(payload)
    if any(g["rounds"] for g in payload["groups"].values()):  # nothing measured, nothing written
        path.write_text(json.dumps(payload, indent=1) + "\n")
    return payload


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    payload = measure(args)
    print_summary(payload["summary"])
    print(f"rounds saved in {args.out / 'speed.json'}; rerun the same command to add rounds")
    return 0


def print_summary(summary: dict) -> None:
    for c in summary["comparisons"]:
        half = (c["high"] - c["low"]) / 2 / c["mean"]
        print(
            f"({c['claim']}) {c['name']}: {c['mean']:.3f}x [{c['low']:.3f}, {c['high']:.3f}] (n={c['n']}, ±{half:.1%})"
        )
    for name, g in summary["groups"].items():
        cost = g["switch_cost"]
        after = (
            f"; the update after a switch took {cost['mean']:.3f}x [{cost['low']:.3f}, {cost['high']:.3f}] the same "
            "batch's time when repeated at once"
            if cost
            else ""
        )
        print(f"{name}: {g['rounds']} rounds{after}")
        for variant, speed in g["median_tgt_tokens_per_s"].items():
            mfu = f" = {g['mfu'][variant]:.1%} of the measured bf16 matmul peak" if "mfu" in g else ""
            print(f"  {variant}: median {speed:.0f} real target tokens/s{mfu}")
    if "linear_in_padding" in summary:
        k = summary["linear_in_padding"]
        c = k["pad_cost"]
        print(
            f"(k) a pad slot's time relative to a real token's {c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}] "
            f"(n={c['n']}); R² of the line through the strategies' means {k['r2']:.4f}"
        )
