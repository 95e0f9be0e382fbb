"""`python -m mtapp.bench claims --report DIR`: settle claims heard in the field with measurements
on Multi30k de->en. Each claim states a threshold; the 95% interval of what was measured over
interleaved repeats decides it (holds / does not hold / undecided, `bench.verdicts`):

  (a) "post-padding trains about 30% faster than pre-padding for RNNs"
  (b) "an LSTM makes zero-padding harmless"
  (c) "packing is faster than padding"
  (d) "bucketing / token batching speeds training up"
  (e) "masking the loss matters"
  (f) "padding worsens vanishing gradients in RNNs"
  (g) "padding-free (packed rows) training is faster"
  (h) "batching concurrent requests raises throughput without hurting latency at low load"
      (one `python -m mtapp.bench serve` result, given with --serve-json)
  (i) "bf16 changes translations with the batch"
      (one `python -m mtapp.bench invariance` result, given with --invariance-json)

Two grids of `bench train` variants: the LSTM config over encoder padding mode (padded, masked,
packed) x pad side, and the Transformer config over batching strategies (plus the loss without
its pad mask). Every variant of a grid trains for the same number of updates (default two
epochs); the LSTM grid runs first, then the Transformer grid, each grid's variants --repeats
times, interleaved round-robin, so that a slow spell of a shared machine falls on every variant
alike and repeat i of one variant pairs with repeat i of another; repeat i trains with the
config's seeds + i (`bench.train.seed_overrides`), so loss and BLEU intervals span training runs.
A finished run (its result.json, for its repeat's seeds) is not trained again when the bench
reruns; --grids picks the grids a sitting trains. --gpu-json (scripts/gpu_check.sh's
gpu_check.json) adds rows on its GPU for (a), (c), (d), (g) and (i). Writes DIR/claims.json,
DIR/report.md with the verdicts and tables, PNG plots beside it, and DIR/report.html (one
self-contained file).

DIR here is a subfolder of --report named after the processor and the precision it trains in
(`machine_folder`), so that repeats made in several sittings on one kind of machine pool, and
never with another kind's. --hours starts no run that would end past its budget; the verdicts
then use the repeats every variant of a grid has finished, and a rerun continues. Once a run is
probed its checkpoints and tokenizer are deleted (--keep-checkpoints keeps them): its
result.json and log.jsonl are what the claims read, small enough to commit.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
from pathlib import Path

from mtapp.bench.padding_probes import first_position_gradient, state_drift
from mtapp.bench.train import Job, label, plot_results, pool, results_table, run_jobs, runs_of, variants
from mtapp.bench.verdicts import (
    PACKED,
    RANDOM,
    SORTED,
    SPEED,
    TOKENS,
    UNMASKED,
    gpu_rows,
    invariance_verdict,
    serve_verdict,
    this_cpu,
    verdicts,
)
from mtapp.config import DEFAULT_CONFIG, config_path
from mtapp.report.document import Document, Table

LSTM_CONFIG = config_path("multi30k_de_en_lstm")
LSTM_GRID = ["model.encoder_padding=padded,masked,packed", "batching.pad_side=post,pre"]
PADDED_POST = ["model.encoder_padding=padded", "batching.pad_side=post"]  # the run whose state drift (b) reads
TRANSFORMER_VARIANTS = [RANDOM, SORTED, TOKENS, PACKED, TOKENS + UNMASKED, RANDOM + UNMASKED]
# Both configs' token batches (batching.max_tokens: 4,096 slots a side) cut Multi30k's 29,000
# training pairs into 175 batches an epoch: 350 updates are two epochs.
UPDATES = 350
GRIDS = ("lstm", "transformer")
COLUMNS = ["claim", "hardware", "threshold", "measured: mean [95% CI] (n)", "verdict", "numbers"]


def jobs(folder: Path, lstm_updates: int, transformer_updates: int) -> tuple[list[Job], list[Job]]:
    """The LSTM grid's and the Transformer grid's variants, in DIR/lstm and DIR/transformer."""
    lstm = [
        Job(LSTM_CONFIG, overrides, folder / "lstm" / f"variant{i:02d}", lstm_updates)
        for i, overrides in enumerate(variants(LSTM_GRID))
    ]
    transformer = [
        Job(DEFAULT_CONFIG, overrides, folder / "transformer" / f"variant{i:02d}", transformer_updates)
        for i, overrides in enumerate(TRANSFORMER_VARIANTS)
    ]
    return lstm, transformer


def machine_folder(report: Path, hardware: str) -> Path:
    """DIR/<processor and precision>: repeats made in several sittings on one kind of machine
    pool there, and never with another kind's."""
    return report / (re.sub(r"[^a-z0-9]+", "-", hardware.lower()).strip("-") or "machine")


def finish(job: Job, run: dict, keep_checkpoints: bool = False) -> dict:
    """What `run_jobs` does after each run: an LSTM run is probed (`probe`); then, unless kept,
    the run's model files (checkpoints, tokenizer) are deleted: result.json and log.jsonl hold
    every figure the claims read, small enough to keep with the code."""
    if job.config == LSTM_CONFIG:
        run = probe(run)
    if not keep_checkpoints:
        for path in Path(run["run_dir"]).glob("*"):
            if path.suffix == ".pt" or path.name.startswith("spm."):
                path.unlink()
    return run


def probe(run: dict) -> dict:
    """Probe a trained LSTM once (`padding_probes`): its first-position gradient and, for a padded
    post-padding run, its state drift; kept in the run's record and result.json."""
    probes = {"first_position_gradient": first_position_gradient}
    if sorted(run["overrides"]) == sorted(PADDED_POST):
        probes["state_drift"] = state_drift
    missing = [key for key in probes if key not in run]
    if missing:
        run_dir = Path(run["run_dir"])
        if not any(run_dir.glob("*.pt")):
            raise SystemExit(f"{run_dir} lacks {', '.join(missing)} and its checkpoints: delete the folder to rerun it")
        print(f"probing {run_dir}: {', '.join(missing)}", flush=True)
        run = {**run, **{key: probes[key](run_dir) for key in missing}}
        (run_dir / "result.json").write_text(json.dumps(run, indent=2))
    return run


def complete(runs: list[list[dict]]) -> int:
    """How many repeats every variant of a grid has finished (repeats finish in order)."""
    return min((next((r for r, run in enumerate(runs_) if not run), len(runs_)) for runs_ in runs), default=0)


def single_measurements(args: argparse.Namespace) -> list[dict]:
    """Rows (h), (i) and those on a GPU, from the JSON files given (read before any training, so
    that a wrong path fails at once)."""
    rows = []
    if args.serve_json:
        rows.append(serve_verdict(json.loads(args.serve_json.read_text())))
    if args.invariance_json:
        rows.append(invariance_verdict(json.loads(args.invariance_json.read_text())))
    if args.gpu_json:
        rows += gpu_rows(json.loads(args.gpu_json.read_text()))
    return rows


def plot(lstm: list[dict], transformer: list[dict], folder: Path) -> list[str]:
    return [
        plot_results(results, folder / f"{name}.png", f"{name}: the same number of updates per variant")
        for name, results in (("lstm", lstm), ("transformer", transformer))
        if results
    ]


def runs_table(results: list[dict]) -> Table:
    """Every run's key figures (and the LSTM probes, where the runs have them), variant by
    variant, repeat by repeat."""
    probed = any("first_position_gradient" in run for r in results for run in runs_of(r))
    columns = ["variant", "repeat", "real target tokens/s", "valid loss", "valid BLEU (greedy)", "peak RSS (MB)"]
    columns += ["first-position gradient", "state drift (post / pre)"] if probed else []
    rows = []
    for r in results:
        for repeat, run in enumerate(runs_of(r), 1):
            cells = [label(r), repeat, f"{run[SPEED]:.0f}", f"{run['valid_loss']:.3f}", f"{run['valid_bleu']:.2f}"]
            cells += [f"{run['peak_rss_mb']:.0f}"]
            rows.append(cells + (probe_cells(run) if probed else []))
    return Table(columns, rows)


def probe_cells(run: dict) -> list[str]:
    gradient = f"{run['first_position_gradient']:.3f}" if "first_position_gradient" in run else "-"
    drift = run.get("state_drift")
    return [gradient, f"{drift['post']:.1%} / {drift['pre']:.1%}" if drift else "-"]


def write_report(
    folder: Path, settings: dict, lstm: list[dict], transformer: list[dict], rows, plots, made=None
) -> None:
    """DIR/report.md beside the plots, and DIR/report.html with the plots embedded; `made` (grid ->
    records of every finished run, complete repeats or not) gives the tables of runs."""
    doc = Document("Batching claims, measured")
    doc.paragraph(
        f"Multi30k de->en, {settings['lstm_updates']} updates per LSTM variant and {settings['transformer_updates']} "
        f"per Transformer variant, --repeats {settings['repeats']} runs of each, interleaved round-robin on one kind "
        "of machine "
        f"(`python -m mtapp.bench claims`); complete repeats: LSTM {settings['complete']['lstm']}, Transformer "
        f"{settings['complete']['transformer']}; {settings['machine_hours']:.2f} hours of training in all (the "
        "runs' wall time). Intervals are paired 95% Student-t intervals over the repeats (ratios: "
        "the geometric mean of the per-repeat ratios). A claim holds when its whole interval lies on the claimed "
        "side of its threshold, does not hold when the interval lies wholly on the other side, and is undecided "
        "otherwise; rows of 1 run are single measurements, judged on their values. Validation BLEU is greedy."
    )
    doc.table(
        COLUMNS,
        [[r[key] for key in ("claim", "hardware", "threshold", "measured", "verdict", "numbers")] for r in rows],
    )
    made = made or {"lstm": lstm, "transformer": transformer}
    for title, name, results in (
        ("LSTM: encoder padding mode x pad side", "lstm", lstm),
        ("Transformer: batching strategies", "transformer", transformer),
    ):
        if not results and not made[name]:
            continue
        doc.heading(title)
        if results:
            doc.add(results_table(results))
        doc.paragraph("Each run (of the complete repeats and any beyond them):" if results else "Each run so far:")
        doc.add(runs_table(made[name]))
    for name in plots:
        doc.figure(name, name)
    doc.write(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench claims", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--report", type=Path, required=True, help="folder whose subfolder for this machine gets the runs and report"
    )
    p.add_argument("--repeats", type=int, default=3, help="runs of every variant, interleaved (default %(default)s)")
    p.add_argument(
        "--lstm-updates", type=int, default=UPDATES, help="updates of each LSTM run (default %(default)s: two epochs)"
    )
    p.add_argument(
        "--transformer-updates",
        type=int,
        default=UPDATES,
        help="updates of each Transformer run (default %(default)s: two epochs of token batches)",
    )
    p.add_argument(
        "--hours", type=float, default=0.0, help="start no run that would end past this many hours (0 = no limit)"
    )
    p.add_argument(
        "--grids",
        type=lambda s: s.split(","),
        default=list(GRIDS),
        help="the grids to train, in this order (default %(default)s); the others' finished runs are still judged",
    )
    p.add_argument("--no-train", action="store_true", help="train nothing: judge and report the finished runs")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep each run's checkpoints (default: deleted once probed)"
    )
    p.add_argument("--serve-json", type=Path, help="a `bench serve` serve.json: adds claim (h)")
    p.add_argument("--invariance-json", type=Path, help="a `bench invariance` invariance.json: adds claim (i)")
    p.add_argument("--gpu-json", type=Path, help="a scripts/gpu_check.sh gpu_check.json: adds rows on its GPU")
    args = p.parse_args(argv)
    if args.repeats < 1 or min(args.lstm_updates, args.transformer_updates) < 1:
        p.error("--repeats, --lstm-updates and --transformer-updates must be at least 1")
    if not args.grids or set(args.grids) - set(GRIDS) or len(set(args.grids)) < len(args.grids):
        p.error(f"--grids {','.join(args.grids)}: name each of {', '.join(GRIDS)} at most once")
    measured_once = single_measurements(args)
    hardware = this_cpu()
    folder = machine_folder(args.report, hardware)
    folder.mkdir(parents=True, exist_ok=True)
    lstm_jobs, transformer_jobs = jobs(folder, args.lstm_updates, args.transformer_updates)
    deadline = 0.0 if args.no_train else time.monotonic() + args.hours * 3600 if args.hours else None
    after = functools.partial(finish, keep_checkpoints=args.keep_checkpoints)
    # One grid after the other (--grids), each grid's repeats interleaved: a repeat of a grid (the
    # runs its paired ratios compare) spans only that grid's runs, and a sitting that ends early
    # leaves one grid complete rather than both half made. Once a grid left a run for the
    # deadline, the next trains nothing; a grid not named trains nothing either (deadline 0: its
    # finished runs are still read back).
    grids = {"lstm": lstm_jobs, "transformer": transformer_jobs}
    grid_runs: dict[str, list[list[dict]]] = {}
    for name in args.grids + [g for g in GRIDS if g not in args.grids]:
        left = any(complete(runs) < args.repeats for runs in grid_runs.values())
        chosen = name in args.grids and not left
        grid_runs[name] = run_jobs(
            grids[name], args.repeats, 0.0, resume=True, after=after, deadline=deadline if chosen else 0.0
        )
    lstm_runs, transformer_runs = grid_runs["lstm"], grid_runs["transformer"]
    runs = lstm_runs + transformer_runs
    done = {"lstm": complete(lstm_runs), "transformer": complete(transformer_runs)}
    lstm = [pool(r[: done["lstm"]]) for r in lstm_runs] if done["lstm"] else []
    transformer = [pool(r[: done["transformer"]]) for r in transformer_runs] if done["transformer"] else []
    rows = sorted(verdicts(lstm, transformer, hardware) + measured_once, key=lambda r: r["claim"][:3])
    plots = plot(lstm, transformer, folder)
    finished = [run for variant in runs for run in variant if run]
    settings = {
        "repeats": args.repeats,
        "complete": done,
        "lstm_updates": args.lstm_updates,
        "transformer_updates": args.transformer_updates,
        "machine_hours": sum(run["wall_seconds"] for run in finished) / 3600,
    }
    payload = {**settings, "hardware": hardware, "lstm": lstm, "transformer": transformer, "verdicts": rows}
    (folder / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    made = {
        name: [pool([r for r in v if r]) for v in grid if any(v)]
        for name, grid in (("lstm", lstm_runs), ("transformer", transformer_runs))
    }
    write_report(folder, settings, lstm, transformer, rows, plots, made)
    for r in rows:
        print(f"{r['claim']} [{r['hardware']}]: {r['verdict']} -- {r['measured']}")
    if min(done.values()) < args.repeats:
        print(
            f"complete repeats: LSTM {done['lstm']}, Transformer {done['transformer']} of {args.repeats}; "
            "rerun the same command to continue (finished runs are kept)"
        )
    print(f"report: {folder / 'report.md'}")
    return 0
