"""`python -m mtapp.bench train`: the same model and data trained for the same wall-clock budget
under each variant of a config, one after another, each in its own process (so peak memory is
the variant's own), with the figures collected into one JSON file and a markdown table.

    python -m mtapp.bench train --config configs/multi30k_de_en_lstm.yaml --minutes 3 \\
        --vary model.encoder_padding=padded,masked,packed,unrolled --vary batching.pad_side=pre,post \\
        --json results/lstm_modes.json --report results/lstm_modes
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

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


def run_variant(config: Path, overrides: list[str], minutes: float, run_dir: Path) -> dict:
    """Train one variant in a child process; its last epoch record plus peak RSS and wall time."""
    cmd = [sys.executable, "-m", "mtapp.train", "--config", str(config), "--run-dir", str(run_dir)]
    cmd += ["--max-minutes", str(minutes), "--set", "train.patience=0", "--set", "train.max_epochs=1000"]
    cmd += ["--set", f"train.valid_every_minutes={minutes / 6:.4f}"]  # points for the validation curve
    for item in overrides:
        cmd += ["--set", item]
    started = time.monotonic()
    with open(run_dir.with_suffix(".log"), "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"variant {overrides} failed (exit status {status}); see {run_dir.with_suffix('.log')}")
    return {
        "overrides": overrides,
        **summarize(run_dir),
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "wall_seconds": time.monotonic() - started,
    }


def summarize(run_dir: Path) -> dict:
    """A run's figures from its log.jsonl: over every epoch record, target tokens and sentences per
    second of training, padding efficiency; the last epoch's losses and BLEU; the validation curve."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
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
    """One row per variant: speed, padding efficiency, losses, BLEU and memory."""
    columns = ["variant", "epochs", "real target tokens/s", "sentences/s", "padding efficiency", "train loss"]
    columns += ["valid loss", "valid BLEU (greedy)", "peak RSS (MB)"]
    rows = [
        [label(r), r["epochs"], f"{r['tgt_tokens_per_s']:.0f}", f"{r['sentences_per_s']:.1f}"]
        + [f"{r['padding_efficiency']:.3f}", f"{r['train_loss']:.3f}", f"{r['valid_loss']:.3f}"]
        + [f"{r['valid_bleu']:.2f}", f"{r['peak_rss_mb']:.0f}"]
        for r in results
    ]
    return Table(columns, rows)


def label(result: dict) -> str:
    return " ".join(o.split(".", 1)[1] for o in result["overrides"]) or "(config as is)"


def plot_results(results: list[dict], path: Path, title: str) -> str:
    """One PNG: throughput, padding efficiency and peak RSS per variant; validation loss over time."""
    fig, axes = pyplot().subplots(1, 4, figsize=(20, 4.8))
    names = [label(r) for r in results]
    for ax, key, heading in zip(
        axes,
        ("tgt_tokens_per_s", "padding_efficiency", "peak_rss_mb"),
        ("real target tokens / s", "padding efficiency", "peak RSS (MB)"),
    ):
        bars(ax, names, [r[key] for r in results], heading)
    for r, name in zip(results, names):
        curve = sorted(r["valid_curve"])
        axes[3].plot([t / 60 for t, _ in curve], [loss for _, loss in curve], marker="o", label=name)
    axes[3].set(title="validation loss", xlabel="wall-clock minutes")
    axes[3].legend(fontsize=7)
    return save(fig, path, title)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="a config key and its values")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config value for every variant",
    )
    p.add_argument("--minutes", type=float, required=True, help="training budget of each variant")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--report", type=Path, required=True, help="folder for runs and the markdown table")
    args = p.parse_args(argv)
    args.report.mkdir(parents=True, exist_ok=True)
    results = []
    for i, combo in enumerate(variants(args.vary)):
        run_dir = args.report / f"variant{i:02d}"
        print(f"[{i + 1}] {' '.join(combo)}: training {args.minutes:g} min ...", flush=True)
        results.append(run_variant(args.config, [*args.overrides, *combo], args.minutes, run_dir))
        print(f"    {results[-1]['tgt_tokens_per_s']:.0f} target tokens/s, valid loss {results[-1]['valid_loss']:.3f}")
    machine = {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    payload = {"config": str(args.config), "minutes": args.minutes, "machine": machine, "variants": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    title = f"{args.config.stem}: {args.minutes:g} minutes per variant"
    table = results_table(results)
    doc = Document(f"bench train: {title}", [table])
    doc.figure(plot_results(results, args.report / "bench.png", title), "bench")
    (args.report / "table.md").write_text(table.markdown() + "\n![bench](bench.png)\n")
    doc.write(args.report)  # report.md and a self-contained report.html beside table.md
    print(table.markdown())
    return 0
