"""`python -m mtapp.bench train`: the same model and data trained for the same budget (wall-clock
minutes, optimizer updates, or both) under each variant of a config, each run in its own process
(so peak memory is the run's own), with the figures collected into one JSON file and a markdown
table. With --repeats N every variant runs N times, interleaved round-robin (A B C, A B C, ...),
and the table gives each key figure's mean ± the half-width of its 95% interval. Repeat r trains
with the config's seeds plus r (`train.seed`: initial parameters and dropout; `batching.seed`:
the shuffling), the same for every variant: repeats of a variant differ as training runs differ,
so an interval of loss or BLEU measures that spread (one seed would repeat the same numbers and
give an interval of width zero), and repeat r of two variants pairs runs of the same seeds: a second
table gives each variant against the first, seed by seed. --workers N trains N runs at once, each on
its own share of the cores (for losses and BLEU; a run's speed then is not its own).
--eval-beam N also scores each run's best checkpoint on the validation split with beam N (the
checkpoint and beam that `evaluate` scores the test splits with), paired like the rest; --resume
reads back the runs a folder already holds (and their scores); --against BENCH_JSON pairs every
variant with the first variant of an earlier invocation (same config, budget, repeats, workers and
kind of CPU), so a lever grid reuses one baseline's runs instead of training them again (its losses and
BLEU pair; its speeds, measured at another time, do not).

    python -m mtapp.bench train --config multi30k_de_en_lstm --minutes 3 \\
        --vary model.encoder_padding=padded,masked,packed,unrolled --vary batching.pad_side=pre,post \\
        --json results/lstm_modes.json --report results/lstm_modes [--updates 350] [--repeats 3] [--workers 2]
        [--eval-beam 5] [--resume] [--against results/baseline/bench.json]

--variant 'KEY=V [KEY=V ...]' (repeated) lists variants one by one instead of --vary's grid: two
levers against one baseline (`--variant loss.label_smoothing=0.2 --variant model.dropout=0.2
--against ...`), or keys that move together.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mtapp import rundir
from mtapp.bench.intervals import difference_ci, mean_ci, ratio_ci, round_robin
from mtapp.bench.machine import this_cpu
from mtapp.config import load_config
from mtapp.report.document import Document, Table
from mtapp.report.plots import bars, pyplot, save


def variants(vary: list[str]) -> list[list[str]]:
    """`key=a,b` options -> every combination, as lists of `key=value` overrides."""
    axes = []
    for item in vary:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"--vary {item!r} must look like section.key=value1,value2")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)]


def listed(items: list[str]) -> list[list[str]]:
    """`--variant 'k1=a k2=b'` options -> one variant each, as lists of `key=value` overrides: levers
    that are not a grid (two levers against one baseline, or two keys that move together)."""
    combos = []
    for item in items:
        overrides = item.split()  # none: the config as it is
        bad = [o for o in overrides if not all(o.partition("="))]
        if bad:
            raise SystemExit(
                f"--variant {item!r} must look like 'section.key=value [section.key=value ...]' ('' = the config as is)"
            )
        combos.append(overrides)
    return combos


# The figures of a run that a variant's record averages over its repeats, and those it also
# gives a 95% interval for.
FIGURES = ("epochs", "tgt_tokens_per_s", "sentences_per_s", "padding_efficiency", "train_loss", "valid_loss")
FIGURES += ("valid_bleu", "peak_rss_mb")
KEY_FIGURES = ("tgt_tokens_per_s", "valid_loss", "valid_bleu", "peak_rss_mb")
BEAM = "valid_bleu_beam"  # with --eval-beam: the best checkpoint's validation BLEU with that beam
BEAM_CHRF = "valid_chrf_beam"  # and its chrF


def scored(runs: list[dict]) -> tuple[str, ...]:
    """Those of the --eval-beam scores (BEAM, BEAM_CHRF) that every run has."""
    return tuple(key for key in (BEAM, BEAM_CHRF) if runs and all(key in r for r in runs))


@dataclass(frozen=True)
class Job:
    """One variant to train: its config, overrides, updates (0 = no limit) and folder."""

    config: Path
    overrides: list[str]
    folder: Path
    updates: int = 0


SEED_KEYS = ("train.seed", "batching.seed")  # a run's seeds: what pairs repeat r of two variants


def seed_overrides(config: Path, overrides: list[str], offset: int) -> list[str]:
    """The `--set` items that move the config's seeds (after `overrides`) up by `offset`:
    `train.seed` (initial parameters, dropout) and `batching.seed` (shuffling); none for offset 0,
    which trains the config as it is."""
    if not offset:
        return []
    cfg = load_config(config, overrides)
    return [f"train.seed={cfg.train.seed + offset}", f"batching.seed={cfg.batching.seed + offset}"]


def run_variant(
    config: Path,
    overrides: list[str],
    minutes: float,
    run_dir: Path,
    updates: int = 0,
    seed_offset: int = 0,
    cores: set[int] | None = None,
) -> dict:
    """Train one variant in a child process for `minutes` and/or `updates` (0 = no limit), its
    seeds moved by `seed_offset` (`seed_overrides`), on `cores` only if given (its threads follow:
    `runtime.set_threads`); its last epoch record plus peak RSS, wall time, the budget, the seed
    offset and the machine (`this_cpu`)."""
    cmd = [sys.executable, "-m", "mtapp.train", "--config", str(config), "--run-dir", str(run_dir)]
    cmd += ["--max-minutes", str(minutes), "--set", "train.patience=0", "--set", "train.max_epochs=1000"]
    cmd += ["--set", f"train.valid_every_minutes={minutes / 6:.4f}"]  # points for the validation curve
    cmd += ["--set", f"train.max_updates={updates}"] if updates else []
    for item in overrides + seed_overrides(config, overrides, seed_offset):
        cmd += ["--set", item]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(run_dir.with_suffix(".log"), "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if cores:  # set while the child is still one thread starting Python: every thread it makes inherits it
            os.sched_setaffinity(child.pid, cores)
        _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"variant {overrides} failed (exit status {status}); see {run_dir.with_suffix('.log')}")
    return {
        "overrides": overrides,
        **summarize(run_dir),
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "wall_seconds": time.monotonic() - started,
        "minutes": minutes,
        "updates": updates,
        "seed_offset": seed_offset,
        "hardware": this_cpu(),
        "run_dir": str(run_dir),
    }


def run_jobs(
    jobs: list[Job],
    repeats: int,
    minutes: float,
    resume: bool = False,
    after: Callable[[Job, dict], dict] | None = None,
    deadline: float | None = None,
    workers: int = 1,
) -> list[list[dict]]:
    """Train every job `repeats` times in `round_robin` order, each run in its own process, in
    job.folder (one repeat) or job.folder/repeat{r}, repeat r with the config's seeds + r;
    runs[job][repeat]. With `resume`, a run whose result.json records the same overrides, budget
    and seed offset is read back, not trained again.
    `after(job, record)` sees every run, trained or read back, and returns its record (e.g. with
    probes added). With a `deadline` (time.monotonic()), no run starts that would end after it
    (its length guessed from the job's last run, else the longest so far), nor any after it;
    finished runs further on are still read back. The runs not made are {}, and a rerun with
    `resume` continues from them. With `workers` > 1, that many runs train at once, each on its
    own share of the cores (for runs whose speed is not the figure: one run's small matrix
    products use two cores poorly)."""
    runs: list[list[dict]] = [[{} for _ in range(repeats)] for _ in jobs]
    order = iter(enumerate(round_robin(jobs, repeats), 1))
    total = len(jobs) * repeats
    longest: dict[int, float] = {}  # job -> wall seconds of its last run trained or read back
    stopped = False  # once a run is left for the deadline, no later one is trained (order kept)
    lock, halt = threading.Lock(), threading.Event()  # halt: another worker failed, or Ctrl-C

    def worker(cores: set[int] | None) -> None:
        nonlocal stopped
        while True:
            with lock:  # the next run of the order: read back, left for the deadline, or this worker's
                n, (repeat, i) = next(order, (0, (0, 0)))
                if not n or halt.is_set():
                    return
                job = jobs[i]
                run_dir = job.folder / f"repeat{repeat}" if repeats > 1 else job.folder
                saved = saved_run(job, minutes, run_dir, repeat) if resume else None
                guess = longest.get(i, max(longest.values(), default=0.0))
                if saved is None and (stopped or (deadline is not None and time.monotonic() + guess > deadline)):
                    if not stopped:
                        print(f"stopping before run {n}/{total}: it would end past the deadline", flush=True)
                    stopped = True
                    continue
                print(f"[{n}/{total}] {job.config.stem} {' '.join(job.overrides)}, repeat {repeat + 1}", flush=True)
            try:
                run = saved or train_once(job, minutes, run_dir, resume, repeat, cores)
            except BaseException:
                halt.set()
                raise
            if halt.is_set() and not saved:  # a Ctrl-C reached the child too: its run is not whole
                (run_dir / "result.json").unlink(missing_ok=True)
                return
            try:
                run = after(job, run) if after else run
            except BaseException:  # a failed probe or score stops the other workers too
                halt.set()
                raise
            with lock:
                runs[i][repeat] = run
                longest[i] = run.get("wall_seconds", 0.0)
                tokens, loss = run["tgt_tokens_per_s"], run["valid_loss"]
                print(f"    [{n}/{total}] {tokens:.0f} target tokens/s, valid loss {loss:.3f}", flush=True)

    if workers <= 1:
        worker(None)
        return runs
    cores = sorted(os.sched_getaffinity(0))
    shares = [set(cores[w::workers]) or set(cores) for w in range(workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool_:
        try:
            for done in [pool_.submit(worker, share) for share in shares]:
                done.result()  # a failed run's error is raised here
        except BaseException:  # Ctrl-C (the main thread's) or a failed run: no worker starts another
            halt.set()
            raise
    return runs


def saved_run(job: Job, minutes: float, run_dir: Path, seed_offset: int = 0) -> dict | None:
    """The record in run_dir/result.json if it is of `job` with this budget and seed offset (a
    record without one was trained with the config's seeds: offset 0), else None; its run_dir is
    where it is now (a folder of runs may have been moved, or committed elsewhere)."""
    saved = run_dir / "result.json"
    if not saved.exists():
        return None
    result = json.loads(saved.read_text())
    result.setdefault("seed_offset", 0)
    budget = {"overrides": job.overrides, "minutes": minutes, "updates": job.updates, "seed_offset": seed_offset}
    return {**result, "run_dir": str(run_dir)} if {key: result.get(key) for key in budget} == budget else None


def train_once(
    job: Job, minutes: float, run_dir: Path, resume: bool, seed_offset: int = 0, cores: set[int] | None = None
) -> dict:
    """Train one run of `job` (see `run_jobs`), its record also saved as run_dir/result.json."""
    # a stale run (unfinished, or another budget's): its log, or only its first checkpoint if it was stopped
    # before it logged; a folder that only holds an earlier --repeats' runs has neither and is kept
    stale = [rundir.log_file(run_dir), rundir.checkpoint_file(run_dir, rundir.LAST)]
    if resume and any(path.exists() for path in stale):
        shutil.rmtree(run_dir)
    result = run_variant(job.config, job.overrides, minutes, run_dir, job.updates, seed_offset, cores)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    return result


def score_best(job: Job, record: dict, beam: int) -> dict:
    """`record` with its run's best checkpoint scored on the validation split with `beam` (`python -m
    mtapp.evaluate` in a child process; its JSON beside the checkpoint): BLEU as BEAM, chrF as
    BEAM_CHRF. Saved into the run's result.json, so a rerun with --resume reads it back; a
    record already scored with this beam is returned as it is."""
    if record.get("eval_beam") == beam and BEAM in record and BEAM_CHRF in record:
        return record
    run_dir = Path(record["run_dir"])
    split = load_config(job.config, job.overrides).data.valid_split
    out = run_dir / f"{split}.beam{beam}.json"
    cmd = [sys.executable, "-m", "mtapp.evaluate", "--run", str(run_dir), "--beam", str(beam), "--split", split]
    done = subprocess.run(cmd + ["--json", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"scoring {run_dir} with beam {beam} failed:\n{done.stderr[-2000:]}")
    scores = json.loads(out.read_text())
    record = {**record, BEAM: scores["bleu"], BEAM_CHRF: scores["chrf"], "eval_beam": beam}
    (run_dir / "result.json").write_text(json.dumps(record, indent=2))
    return record


def pool(runs: list[dict]) -> dict:
    """A variant's record: one run as it is; several runs: the mean of each of FIGURES, the 95%
    interval of each of KEY_FIGURES (`intervals`) and every run's record (`runs`)."""
    if len(runs) == 1:
        return runs[0]
    means = {key: float(np.mean([r[key] for r in runs])) for key in FIGURES + scored(runs)}
    intervals = {key: mean_ci([r[key] for r in runs]) for key in KEY_FIGURES + scored(runs)}
    return {"overrides": runs[0]["overrides"], **means, "intervals": intervals, "runs": runs}


def runs_of(result: dict) -> list[dict]:
    """The run records a variant's record (`pool`) stands for."""
    return result.get("runs", [result])


def cell(result: dict, key: str, spec: str) -> str:
    """`result[key]` formatted with `spec`; for a pooled record, its mean ± the half-width of its
    95% interval."""
    interval = result.get("intervals", {}).get(key)
    if interval is None:
        return f"{result[key]:{spec}}"
    return f"{interval['mean']:{spec}} ± {half_width(interval):{spec}}"


def half_width(interval: dict) -> float:
    return (interval["high"] - interval["low"]) / 2


def summarize(run_dir: Path) -> dict:
    """A run's figures from its log.jsonl: over every epoch record, target tokens and sentences per
    second of training, padding efficiency; the last epoch's losses and BLEU; the validation curve."""
    records = rundir.read_log(run_dir)
    epochs = [r for r in records if r["event"] == "epoch"]
    trained = sum(r["tgt_tokens"] for r in epochs)
    seconds = sum(r["seconds"] for r in epochs)
    last = epochs[-1]
    return {
        "epochs": len(epochs),
        "tgt_tokens": trained,
        "tgt_tokens_per_s": trained / max(seconds, 1e-9),
        "sentences_per_s": sum(r["sentences"] for r in epochs) / max(seconds, 1e-9),
        "padding_efficiency": sum(r["padding_efficiency"] * r["tgt_tokens"] for r in epochs) / max(trained, 1),
        "train_loss": last["loss"],
        "valid_loss": last["valid_loss"],
        "valid_bleu": last["valid_bleu"],
        "peak_gpu_mb": max((r.get("peak_gpu_mb", 0.0) for r in epochs), default=0.0),  # 0 on the CPU
        "valid_curve": [[r["elapsed"], r["valid_loss"]] for r in records if r["event"] in ("valid", "epoch")],
    }


def results_table(results: list[dict]) -> Table:
    """One row per variant: speed, padding efficiency, losses, BLEU and memory (over repeats: the
    mean of each, ± the 95% half-width of the key figures)."""
    columns = ["variant", "epochs", "real target tokens/s", "sentences/s", "padding efficiency", "train loss"]
    columns += ["valid loss", "valid BLEU (greedy)", "peak RSS (MB)"]
    beam = all(BEAM in scored(runs_of(r)) for r in results)
    columns += [f"valid BLEU (best checkpoint, beam {runs_of(results[0])[0]['eval_beam']})"] if beam else []
    rows = [
        [label(r), f"{r['epochs']:.4g}", cell(r, "tgt_tokens_per_s", ".0f"), f"{r['sentences_per_s']:.1f}"]
        + [f"{r['padding_efficiency']:.3f}", f"{r['train_loss']:.3f}", cell(r, "valid_loss", ".3f")]
        + [cell(r, "valid_bleu", ".2f"), cell(r, "peak_rss_mb", ".0f")]
        + ([cell(r, BEAM, ".2f")] if beam else [])
        for r in results
    ]
    return Table(columns, rows)


def paired(results: list[dict], speeds: bool = True) -> list[dict]:
    """With repeats and two variants or more: each later variant against the first, repeat r
    against repeat r (the same seeds): the paired 95% intervals of the validation loss and BLEU
    differences (with --eval-beam, also its BLEU and chrF) and, with `speeds` (the first variant
    trained in this invocation, not at another time), of the speed ratio. [] when there is nothing to pair."""
    if len(results) < 2 or "runs" not in results[0]:
        return []
    first = runs_of(results[0])
    comparisons = []
    for result in results[1:]:
        runs = runs_of(result)
        if [r.get("seed_offset", 0) for r in runs] != [r.get("seed_offset", 0) for r in first]:
            raise SystemExit(f"{label(result)} and {label(results[0])} were not trained with the same seeds")
        keys = ("valid_loss", "valid_bleu") + tuple(k for k in scored(first) if k in scored(runs))
        figures = {key: ([r[key] for r in runs], [r[key] for r in first]) for key in keys}
        comparison = {"variant": label(result), "against": label(results[0])}
        comparison |= {key: difference_ci(*figures[key]) for key in keys}
        if speeds:
            speed = "tgt_tokens_per_s"
            comparison[speed] = ratio_ci([r[speed] for r in runs], [r[speed] for r in first])
        comparisons.append(comparison)
    return comparisons


def paired_table(comparisons: list[dict]) -> Table:
    columns = [f"variant against {comparisons[0]['against']}", "valid loss difference", "valid BLEU difference"]
    beam = [key for key in (BEAM, BEAM_CHRF) if all(key in c for c in comparisons)]
    headings = {BEAM: "valid BLEU difference (best checkpoint, beam)", BEAM_CHRF: "valid chrF difference (the same)"}
    columns += [headings[key] for key in beam] + ["target tokens/s ratio", "seeds"]
    rows = [
        [c["variant"], interval_text(c["valid_loss"], "+.3f"), interval_text(c["valid_bleu"], "+.2f")]
        + [interval_text(c[key], "+.2f") for key in beam]
        + [interval_text(c["tgt_tokens_per_s"], ".3f") + "x" if "tgt_tokens_per_s" in c else "— (not paired)"]
        + [c["valid_loss"]["n"]]
        for c in comparisons
    ]
    return Table(columns, rows)


def interval_text(interval: dict, spec: str) -> str:
    return f"{interval['mean']:{spec}} [{interval['low']:{spec}}, {interval['high']:{spec}}]"


def label(result: dict) -> str:
    return " ".join(o.split(".", 1)[1] for o in result["overrides"]) or "(config as is)"


def plot_results(results: list[dict], path: Path, title: str) -> str:
    """One PNG: throughput, padding efficiency and peak RSS per variant (over repeats: means with
    95% error bars); validation loss over time, a line per run."""
    fig, axes = pyplot().subplots(1, 4, figsize=(20, 4.8))
    names = [label(r) for r in results]
    for ax, key, heading in zip(
        axes,
        ("tgt_tokens_per_s", "padding_efficiency", "peak_rss_mb"),
        ("real target tokens / s", "padding efficiency", "peak RSS (MB)"),
    ):
        bars(ax, names, [r[key] for r in results], heading, errors(results, key))
    for k, (r, name) in enumerate(zip(results, names)):
        for j, run in enumerate(runs_of(r)):
            curve = sorted(run["valid_curve"])
            x, y = [t / 60 for t, _ in curve], [loss for _, loss in curve]
            axes[3].plot(x, y, marker="o", color=f"C{k % 10}", label=name if j == 0 else None)
    axes[3].set(title="validation loss", xlabel="wall-clock minutes")
    axes[3].legend(fontsize=7)
    return save(fig, path, title)


def errors(results: list[dict], key: str) -> list[float] | None:
    """The 95% half-widths of `key` for error bars; None when no record has intervals of it."""
    if not any(key in r.get("intervals", {}) for r in results):
        return None
    return [half_width(r["intervals"][key]) if key in r.get("intervals", {}) else 0.0 for r in results]


def against(args: argparse.Namespace, error: Callable[[str], None]) -> dict:
    """The first variant of the earlier bench.json `args.against`, after checking that it was
    trained like this invocation's runs (config, budget, repeats, kind of CPU) and, with
    --eval-beam, scored so."""
    if not args.against.is_file():
        error(f"--against {args.against}: no such file (give the --json of an earlier bench train)")
    earlier = json.loads(args.against.read_text())
    same = {"config": str(args.config), "minutes": args.minutes, "updates": args.updates, "repeats": args.repeats}
    same["workers"] = args.workers  # runs side by side, each on its share of the cores
    differ = [f"{k} {earlier.get(k)!r} there, {v!r} here" for k, v in same.items() if earlier.get(k) != v]
    if differ:
        error(f"--against {args.against} was not trained like these runs: {'; '.join(differ)}")
    first = earlier["variants"][0]
    seeds = [o for o in first["overrides"] if o.partition("=")[0] in SEED_KEYS]
    unlike = sorted(set(args.overrides) - set(first["overrides"])) + sorted(set(seeds) - set(args.overrides))
    if unlike:
        error(
            f"--against {args.against}: its first variant was trained with {first['overrides']}, so --set "
            f"{' / '.join(unlike)} does not pair with it (give its seeds and other --set values here too)"
        )
    cpus = {r.get("hardware") for r in runs_of(first)}
    if None in cpus:
        error(
            f"--against {args.against}: its runs do not name their CPU, so they may not pair with these; "
            "train the baseline here"
        )
    elsewhere = sorted(cpus - {this_cpu()})
    if elsewhere:
        error(
            f"--against {args.against} was trained on {' and '.join(elsewhere)}, this machine is {this_cpu()}: "
            "another kind of CPU trains in other numerics, so its runs do not pair seed by seed with these; "
            "train the baseline here (its value first in --vary, or the first --variant)"
        )
    if args.eval_beam and any(r.get("eval_beam") != args.eval_beam for r in runs_of(first)):
        error(
            f"--against {args.against}: its runs are not scored with beam {args.eval_beam}; run its command "
            f"again with --resume --eval-beam {args.eval_beam} first"
        )
    return first


def budget_text(minutes: float, updates: int) -> str:
    """ "3 minutes", "350 updates" or "350 updates or 3 minutes" (whichever comes first)."""
    parts = ([f"{updates} updates"] if updates else []) + ([f"{minutes:g} minutes"] if minutes else [])
    return " or ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="a config key and its values")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="'KEY=V [KEY=V ...]'",
        help="one variant, its overrides separated by spaces ('' = the config as is; instead of --vary's grid; the "
        "first is the baseline unless --against gives one)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config value for every variant",
    )
    p.add_argument("--minutes", type=float, default=0.0, help="training budget of each run (0 = none)")
    p.add_argument("--updates", type=int, default=0, help="optimizer updates of each run (train.max_updates; 0 = none)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each variant, interleaved round-robin")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs trained at once, each on its own share of the cores (for losses and BLEU, not speeds)",
    )
    p.add_argument(
        "--eval-beam",
        type=int,
        default=0,
        metavar="N",
        help="also score each run's best checkpoint on the validation split with beam N (python -m mtapp.evaluate)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="read back the runs of REPORT that have the same overrides, budget and seeds instead of training them",
    )
    p.add_argument(
        "--against",
        type=Path,
        metavar="BENCH_JSON",
        help="pair the losses and BLEU of every variant with the first variant of this earlier --json (same config, "
        "budget, repeats, workers and kind of CPU; no speed ratio)",
    )
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--report", type=Path, required=True, help="folder for runs and the markdown table")
    args = p.parse_args(argv)
    if args.minutes <= 0 and args.updates <= 0:
        p.error("give a budget: --minutes, --updates or both")
    if args.repeats < 1 or args.workers < 1 or args.eval_beam < 0:
        p.error("--repeats and --workers must be at least 1, --eval-beam at least 0")
    if args.vary and args.variant:
        p.error("give --vary (every combination of its values) or --variant (each variant listed), not both")
    baseline = against(args, p.error) if args.against else None
    args.report.mkdir(parents=True, exist_ok=True)
    combos = listed(args.variant) if args.variant else variants(args.vary)
    jobs = [
        Job(args.config, [*args.overrides, *c], args.report / f"variant{i:02d}", args.updates)
        for i, c in enumerate(combos)
    ]
    scoring = (lambda job, record: score_best(job, record, args.eval_beam)) if args.eval_beam else None
    runs = run_jobs(jobs, args.repeats, args.minutes, args.resume, scoring, workers=args.workers)
    results = ([baseline] if baseline else []) + [pool(r) for r in runs]
    machine = {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    payload = {"config": str(args.config), "minutes": args.minutes, "updates": args.updates, "repeats": args.repeats}
    payload |= {"machine": machine, "workers": args.workers, "variants": results}
    payload["against"] = str(args.against) if args.against else None  # variants[0] is its first variant
    comparisons = paired(results, speeds=baseline is None)
    payload["paired"] = comparisons
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    title = f"{args.config.stem}: {budget_text(args.minutes, args.updates)} per variant"
    title += f", {args.repeats} interleaved runs each (mean ± 95% half-width)" if args.repeats > 1 else ""
    table = results_table(results)
    tables = [table, paired_table(comparisons)] if comparisons else [table]
    doc = Document(f"bench train: {title}", list(tables))  # a copy: the figure joins the document only
    doc.figure(plot_results(results, args.report / "bench.png", title), "bench")
    markdown = "\n\n".join(t.markdown().rstrip("\n") for t in tables)
    (args.report / "table.md").write_text(markdown + "\n\n![bench](bench.png)\n")
    doc.write(args.report)  # report.md and a self-contained report.html beside table.md
    print(markdown)
    return 0
