"""`python -m mtapp.bench claims --report DIR`: settle claims heard in the field with measurements
on Multi30k de->en. Each claim states a threshold; the 95% interval of what was measured decides
it (holds / does not hold / undecided, `bench.verdicts`; an undecided verdict says what its
interval still rules out):

  (a) "post-padding trains about 30% faster than pre-padding for RNNs"     speed (+ loss over seeds)
  (b) "an LSTM makes zero-padding harmless"                                 quality, seeds
  (c) "packing is faster than padding"                                      speed
  (d) "bucketing / token batching speeds training up"                       speed
  (e) "masking the loss matters"                                            quality, seeds
  (f) "padding worsens vanishing gradients in RNNs"                         quality, seeds
  (g) "padding-free (packed rows) training is faster"                       speed
  (h) "batching concurrent requests raises throughput without hurting latency at low load"
      (one `python -m mtapp.bench serve` result, given with --serve-json)
  (i) "bf16 changes translations with the batch"
      (one `python -m mtapp.bench invariance` result, given with --invariance-json)
  (j) "dynamic unrolling is the most efficient LSTM mode"                  speed
  (k) "the time an update takes grows linearly with its padding"           speed

Speed is measured first, in one process (`bench speed`: every variant of a comparison built with
the same initial weights and alternated in short slices, one paired ratio per round), with the
A-vs-A control beside it. Quality is measured over seeds by whole training runs, each in its own
process, --repeats seeds per variant (repeat r with the config's seeds + r): the padded and the
packed LSTM at each pad side, and the Transformer on random batches with and without the loss
mask, every run the same number of updates (default two epochs), the seeds interleaved. A
finished run (its result.json, for its seeds) is not trained again when the bench reruns;
--grids picks the quality grids a sitting trains. --gpu-json (scripts/gpu_check.sh's
gpu_check.json) adds rows on its GPU for (a), (c), (d), (g) and (i). Writes DIR/claims.json,
DIR/report.md with the verdicts, a forest plot (forest.png: each claim's interval against its
threshold) and tables, and DIR/report.html (one self-contained file).

DIR here is a subfolder of --report named after the processor and the precision it trains in
(`machine_folder`), so that sittings on one kind of machine pool, and never with another kind's.
--speed-minutes adds rounds to the saved ones; --hours starts no training run that would end
past its budget; the verdicts use the seeds every variant of a grid has finished, and a rerun
continues. Once a run is probed its checkpoints and tokenizer are deleted (--keep-checkpoints
keeps them): its result.json and log.jsonl are what the claims read, small enough to commit.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
from pathlib import Path

import numpy as np

from mtapp.bench import speed
from mtapp.bench.machine import this_cpu, training_precision
from mtapp.bench.padding_probes import first_position_gradient, state_drift
from mtapp.bench.train import Job, label, plot_results, pool, results_table, run_jobs, runs_of, variants
from mtapp.bench.verdicts import (
    RANDOM,
    SPEED,
    UNMASKED,
    gpu_rows,
    invariance_verdict,
    quality_rows,
    serve_verdict,
    speed_rows,
)
from mtapp.config import BASE_CONFIG, config_path
from mtapp.report.document import Document, Table
from mtapp.report.plots import pyplot, save

LSTM_CONFIG = config_path("multi30k_de_en_lstm")
LSTM_GRID = ["model.encoder_padding=padded,masked,packed", "batching.pad_side=post,pre"]
PADDED_POST = ["model.encoder_padding=padded", "batching.pad_side=post"]  # the run whose state drift (b) reads
SORTED = ["batching.strategy=sorted", "batching.batch_size=112"]
TOKENS = ["batching.strategy=tokens"]
PACKED = ["batching.strategy=packed_rows"]
TRANSFORMER_VARIANTS = [RANDOM, SORTED, TOKENS, PACKED, TOKENS + UNMASKED, RANDOM + UNMASKED]
# The variants the quality claims need, of the grids above (whose order keeps the folder names
# variantNN that earlier sittings' runs are read back from): the padded and the packed (exact)
# LSTM at each pad side for (a)'s loss side, (b) and (f); random batches with and without the
# loss mask for (e). The speed claims come from `bench speed`, not from these runs.
QUALITY_LSTM_MODES = ("padded", "packed")
QUALITY_TRANSFORMER = [RANDOM, RANDOM + UNMASKED]
REPEATS = 5
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
        if overrides[0].split("=")[1] in QUALITY_LSTM_MODES
    ]
    transformer = [
        Job(BASE_CONFIG, overrides, folder / "transformer" / f"variant{i:02d}", transformer_updates)
        for i, overrides in enumerate(TRANSFORMER_VARIANTS)
        if overrides in QUALITY_TRANSFORMER
    ]
    return lstm, transformer


def machine_folder(report: Path, hardware: str) -> Path:
    """DIR/<processor and precision>: the speed rounds and the report of one kind of machine,
    pooled over its sittings and never with another kind's."""
    return report / (re.sub(r"[^a-z0-9]+", "-", hardware.lower()).strip("-") or "machine")


def quality_folder(report: Path, precision: str) -> Path:
    """DIR/quality-<precision>: the quality runs of every machine that trains in `precision`.
    A quality run's figures depend on its seeds and precision, not on the processor: the same
    seeds gave valid losses 3.8102 (AMD EPYC, bf16), 3.8098 (Intel Xeon, bf16) and 3.8096 (AMD
    EPYC, float32) for the Transformer, against 3.7914-3.8098 over three seeds (docs/claims.md)."""
    return report / f"quality-{precision}"


def processor(run: dict) -> str:
    """The processor and vector capability a run was trained on, as `this_cpu` named them."""
    return run.get("hardware", "processor not recorded").split(",")[0]


def pool_label(precision: str, runs: list[dict]) -> str:
    """The quality rows' hardware: the precision and the processors whose runs they pool."""
    cpus = sorted({processor(run) for run in runs})
    return f"{precision} training on {', '.join(cpus) or 'no run yet'} (quality runs pooled by precision)"


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
    columns = ["variant", "repeat", "trained on", "real target tokens/s", "valid loss", "valid BLEU (greedy)"]
    columns += ["peak RSS (MB)"]
    columns += ["first-position gradient", "state drift (post / pre)"] if probed else []
    rows = []
    for r in results:
        for repeat, run in enumerate(runs_of(r), 1):
            cells = [
                label(r),
                repeat,
                processor(run),
                f"{run[SPEED]:.0f}",
                f"{run['valid_loss']:.3f}",
                f"{run['valid_bleu']:.2f}",
            ]
            cells += [f"{run['peak_rss_mb']:.0f}"]
            rows.append(cells + (probe_cells(run) if probed else []))
    return Table(columns, rows)


def probe_cells(run: dict) -> list[str]:
    gradient = f"{run['first_position_gradient']:.3f}" if "first_position_gradient" in run else "-"
    drift = run.get("state_drift")
    return [gradient, f"{drift['post']:.1%} / {drift['pre']:.1%}" if drift else "-"]


VERDICT_COLOURS = {"holds": "tab:green", "does not hold": "tab:red", "passes": "tab:blue", "fails": "tab:purple"}
RATIO_TICKS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
KIND_AXES = {
    "ratio": "ratio (log scale)",
    "loss": "valid loss difference",
    "bleu": "valid BLEU lost",
    "share": "state drift",
    "slope": "a pad slot's time / a real token's",
    "r2": "R²",
    "lines": "lines changed",
}


def forest_plot(rows: list[dict], path: Path) -> str:
    """`forest_figure` as a PNG; its file name."""
    title = "Batching claims: 95% intervals (bars), thresholds (black ticks), verdicts (colour)"
    return save(forest_figure(rows), path, title)


def forest_figure(rows: list[dict]):
    """One line per comparison of every claim: its 95% interval (a dot for a single run), the
    mean, and its threshold as a black tick; coloured by the comparison's verdict (green holds,
    red does not hold, grey undecided; the A-vs-A control blue when it passes, purple when it
    fails). One panel per kind of figure, since ratios, losses and BLEU share no axis."""
    plt = pyplot()
    lines = [(r, c) for r in rows for c in r["comparisons"]]
    kinds = [k for k in KIND_AXES if any(c["kind"] == k for _, c in lines)]
    heights = [sum(c["kind"] == k for _, c in lines) + 1 for k in kinds]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(11, 0.36 * sum(heights) + 1.2), height_ratios=heights)
    for ax, k in zip(np.atleast_1d(axes), kinds):
        mine = [(r, c) for r, c in lines if c["kind"] == k]
        for y, (_, c) in enumerate(reversed(mine)):
            colour = VERDICT_COLOURS.get(c["verdict"], "tab:gray")
            low, high = (c["low"], c["high"]) if np.isfinite(c["high"]) else (c["mean"], c["mean"])
            ax.plot([low, high], [y, y], color=colour, linewidth=3, solid_capstyle="butt")
            ax.plot([c["mean"]], [y], "o", color=colour, markersize=5)
            if c["threshold"] or k != "ratio":
                ax.plot([c["threshold"]], [y], "|", color="black", markersize=14, markeredgewidth=2)
        ax.set_yticks(range(len(mine)), [f"{letter(r)} {c['name']}" for r, c in reversed(mine)], fontsize=8)
        ax.set_ylim(-0.7, len(mine) - 0.3)
        if k == "ratio":
            ax.set_xscale("log")
            ax.axvline(1.0, color="lightgray", linewidth=1, zorder=0)
            ticks = [t for t in RATIO_TICKS if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
            ax.minorticks_off()
        ax.set_xlabel(KIND_AXES[k], fontsize=8)
        ax.grid(axis="x", color="whitesmoke")
    handles = [plt.Line2D([], [], color=colour, linewidth=3) for colour in VERDICT_COLOURS.values()]
    handles.append(plt.Line2D([], [], color="tab:gray", linewidth=3))
    labels = [*VERDICT_COLOURS, "undecided"]
    np.atleast_1d(axes)[0].legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
    )
    return fig


def letter(row: dict) -> str:
    """A row's claim letter, "(a)", or "control"."""
    match = re.match(r"\([a-z]\)", row["claim"])
    return match.group(0) if match else "control"


def speed_table(summary: dict) -> Table:
    """Each `bench speed` comparison: ratio, interval, half-width, rounds."""
    rows = [
        [
            f"({c['claim']}) {c['name']}",
            f"{c['a']} / {c['b']}",
            f"{c['mean']:.3f}x",
            f"[{c['low']:.3f}, {c['high']:.3f}]",
        ]
        + [f"±{(c['high'] - c['low']) / 2 / c['mean']:.1%}", c["n"]]
        for c in summary["comparisons"]
    ]
    return Table(["claim", "variants", "ratio", "95% interval", "half-width", "rounds"], rows)


def groups_table(summary: dict) -> Table:
    """Each variant of each `bench speed` group: median real target tokens/s over rounds and its pads."""
    rows = [
        [name, variant, f"{tokens:.0f}", f"{g['pad_fraction'][variant]:.1%}", g["rounds"]]
        for name, g in summary["groups"].items()
        for variant, tokens in g["median_tgt_tokens_per_s"].items()
    ]
    return Table(["group", "variant", "median real target tokens/s", "padded slots", "rounds"], rows)


def write_report(folder: Path, settings: dict, speed_payload: dict | None, grids: dict, rows, plots) -> None:
    """DIR/report.md beside the plots, and DIR/report.html with the plots embedded. `grids`:
    name -> (pooled records of the complete repeats, pooled records of every finished run)."""
    doc = Document("Batching claims, measured")
    doc.paragraph(
        f"Multi30k de->en on {settings['hardware']} (`python -m mtapp.bench claims`). Speed claims come from "
        "`bench speed`: every variant of a comparison in one process, the same initial weights, alternated in "
        "turns of one update, the order changed every pass; a ratio is the geometric mean over rounds with its 95% "
        f"interval ({settings['speed_rounds']}). Quality claims come from whole training runs, pooled by the "
        f"precision they train in ({settings['quality_pool']}), "
        f"{settings['lstm_updates']} updates per LSTM run and {settings['transformer_updates']} per Transformer "
        f"run, one per seed (--repeats {settings['repeats']}; complete: LSTM {settings['complete']['lstm']}, "
        f"Transformer {settings['complete']['transformer']}; {settings['machine_hours']:.2f} hours of training). "
        "A claim holds when its whole interval lies on the claimed side of its threshold, does not hold when it "
        "lies wholly on the other side; otherwise it is undecided, and the verdict says what the interval rules "
        "out. Rows of 1 run are single measurements, judged on their values. Validation BLEU is greedy."
    )
    doc.table(
        COLUMNS,
        [[r[key] for key in ("claim", "hardware", "threshold", "measured", "verdict", "numbers")] for r in rows],
    )
    for name in plots[:1]:
        doc.figure(name, "forest plot")
    if speed_payload and speed_payload.get("summary", {}).get("comparisons"):
        summary = speed_payload["summary"]
        doc.heading("Speed, in one process (`bench speed`)")
        costs = {name: g["switch_cost"] for name, g in summary["groups"].items() if g.get("switch_cost")}
        if costs:  # measured only where turns drop their first update (--drop)
            doc.paragraph(
                "What a switch costs, the first update of a turn over the same batch repeated at once: "
                + "; ".join(f"{name} {c['mean']:.3f}x [{c['low']:.3f}, {c['high']:.3f}]" for name, c in costs.items())
                + "."
            )
        doc.add(speed_table(summary))
        doc.add(groups_table(summary))
    for title, name in (("LSTM quality runs", "lstm"), ("Transformer quality runs", "transformer")):
        complete_, made = grids[name]
        if not complete_ and not made:
            continue
        doc.heading(title)
        if complete_:
            doc.add(results_table(complete_))
        doc.paragraph("Each run (of the complete repeats and any beyond them):" if complete_ else "Each run so far:")
        doc.add(runs_table(made))
    for name in plots[1:]:
        doc.figure(name, name)
    doc.write(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench claims", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--report", type=Path, required=True, help="folder whose subfolder for this machine gets the runs and report"
    )
    p.add_argument(
        "--speed-minutes",
        type=float,
        help="minutes of `bench speed` rounds this sitting (default: 20 unless every group has rounds saved, else 0)",
    )
    p.add_argument("--repeats", type=int, default=REPEATS, help="seeds of every quality variant (default %(default)s)")
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
        "--hours",
        type=float,
        default=0.0,
        help="after the speed rounds, start no training run that would end past this many hours (0 = no limit)",
    )
    p.add_argument(
        "--grids",
        type=lambda s: s.split(","),
        default=list(GRIDS),
        help="quality grids to train, in this order (default %(default)s); the others' finished runs are still judged",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="quality runs trained at once, each on its share of the cores (default %(default)s)",
    )
    p.add_argument("--no-train", action="store_true", help="measure nothing: judge and report what is saved")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep each run's checkpoints (default: deleted once probed)"
    )
    p.add_argument("--serve-json", type=Path, help="a `bench serve` serve.json: adds claim (h)")
    p.add_argument("--invariance-json", type=Path, help="a `bench invariance` invariance.json: adds claim (i)")
    p.add_argument("--gpu-json", type=Path, help="a scripts/gpu_check.sh gpu_check.json: adds rows on its GPU")
    args = p.parse_args(argv)
    if min(args.repeats, args.lstm_updates, args.transformer_updates, args.parallel) < 1:
        p.error("--repeats, --lstm-updates, --transformer-updates and --parallel must be at least 1")
    if not args.grids or set(args.grids) - set(GRIDS) or len(set(args.grids)) < len(args.grids):
        p.error(f"--grids {','.join(args.grids)}: name each of {', '.join(GRIDS)} at most once")
    measured_once = single_measurements(args)
    hardware, precision = this_cpu(), training_precision()
    folder = machine_folder(args.report, hardware)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Speed first, on a quiet machine: in one process, alternating the variants (`bench speed`);
    # 20 minutes unless every group has saved rounds (--speed-minutes adds more).
    speed_args = speed.parse(["--out", str(folder / "speed")])
    measured = speed.saved_rounds(speed_args)
    minutes = 0.0 if args.no_train else args.speed_minutes
    minutes = (0.0 if min(measured.values()) >= 2 else speed.DEFAULT_MINUTES) if minutes is None else minutes
    speed_args.minutes = minutes
    speed_payload = speed.measure(speed_args) if minutes > 0 or any(measured.values()) else None
    # Quality: whole training runs, one per seed, each in its own process; --hours counts from here.
    lstm_jobs, transformer_jobs = jobs(
        quality_folder(args.report, precision), args.lstm_updates, args.transformer_updates
    )
    deadline = 0.0 if args.no_train else time.monotonic() + args.hours * 3600 if args.hours else None
    after = functools.partial(finish, keep_checkpoints=args.keep_checkpoints)
    # One grid after the other (--grids), each grid's seeds interleaved: a sitting that ends
    # early leaves one grid complete rather than both half made. Once a grid left a run for the
    # deadline, the next trains nothing; a grid not named trains nothing either (deadline 0: its
    # finished runs are still read back).
    grid_jobs = {"lstm": lstm_jobs, "transformer": transformer_jobs}
    grid_runs: dict[str, list[list[dict]]] = {}
    for name in args.grids + [g for g in GRIDS if g not in args.grids]:
        left = any(complete(runs) < args.repeats for runs in grid_runs.values())
        chosen = name in args.grids and not left
        grid_runs[name] = run_jobs(
            grid_jobs[name],
            args.repeats,
            0.0,
            resume=True,
            after=after,
            deadline=deadline if chosen else 0.0,
            workers=args.parallel,
        )
    done = {name: complete(runs) for name, runs in grid_runs.items()}
    pooled = {name: [pool(r[: done[name]]) for r in runs] if done[name] else [] for name, runs in grid_runs.items()}
    finished = [run for runs in grid_runs.values() for variant in runs for run in variant if run]
    rows = quality_rows(pooled["lstm"], pooled["transformer"], pool_label(precision, finished))
    if speed_payload:
        rows += speed_rows(speed_payload["summary"], hardware, pooled["lstm"])
    rows = sorted(rows + measured_once, key=lambda r: r["claim"][:3])
    plots = [forest_plot(rows, folder / "forest.png")] if rows else []
    plots += plot(pooled["lstm"], pooled["transformer"], folder)
    speed_rounds = speed_payload["summary"]["groups"] if speed_payload else {}
    settings = {
        "hardware": hardware,
        "quality_pool": pool_label(precision, finished),
        "repeats": args.repeats,
        "complete": done,
        "lstm_updates": args.lstm_updates,
        "transformer_updates": args.transformer_updates,
        "machine_hours": sum(run["wall_seconds"] for run in finished) / 3600,
        "speed_rounds": ", ".join(f"{name}: {g['rounds']} rounds" for name, g in speed_rounds.items()) or "none yet",
        "sitting_minutes": (time.monotonic() - started) / 60,
    }
    payload = {**settings, **pooled, "speed": speed_payload and speed_payload["summary"], "verdicts": rows}
    (folder / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    made = {name: [pool([r for r in v if r]) for v in runs if any(v)] for name, runs in grid_runs.items()}
    write_report(folder, settings, speed_payload, {n: (pooled[n], made[n]) for n in GRIDS}, rows, plots)
    for r in rows:
        print(f"{r['claim']} [{r['hardware']}]: {r['verdict']} -- {r['measured']}")
    if min(done.values()) < args.repeats:
        print(
            f"complete seeds: LSTM {done['lstm']}, Transformer {done['transformer']} of {args.repeats}; "
            "rerun the same command to continue (finished runs are kept)"
        )
    print(f"report: {folder / 'report.md'} ({settings['sitting_minutes']:.1f} minutes this sitting)")
    return 0
