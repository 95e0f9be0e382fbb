"""`python -m mtapp.bench invariance`: whether a line's translation depends on the batch it is
decoded in, as "model x precision x beam -> lines changed out of N".

    python -m mtapp.bench invariance --run DIR [--run DIR ...] [--splits test_2016_flickr,test_2017_flickr]
        [--budgets 1,64,4096,8192] [--beams 1,5] [--amps off,bf16] [--limit N] [--out DIR]

For each run (a folder with checkpoint_best.pt), decoding precision (off = float32, bf16 =
forced bf16 autocast) and beam, the source lines of the splits (the first --limit of each) are
translated once per budget: decode.max_tokens, the padded source slots of an inference batch;
budget 1 puts every sentence in a batch of its own and is the reference. A line has changed
when the budgets do not all give it the same output. Writes OUT/invariance.json (every count,
every decode's seconds, the machine) and OUT/invariance.md (the table it prints).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from mtapp import rundir
from mtapp.bench.machine import cpu_name
from mtapp.checkpoint import CheckpointError, load_checkpoint
from mtapp.config import Config, config_from_dict
from mtapp.data import load_split
from mtapp.data.corpora import CorpusError
from mtapp.progress import bar_settings
from mtapp.report.document import markdown_table
from mtapp.runtime import amp_dtype, cpu_has_native_bf16, select_device, set_threads
from mtapp.translator import Translator

REFERENCE = 1  # the budget of one sentence per batch


def machine() -> dict:
    """What every figure depends on: processor, bf16 support, torch, threads, device."""
    device = select_device("auto")
    return {
        "cpu": cpu_name(),
        "native_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "platform": platform.platform(),
    }


def machine_line(m: dict) -> str:
    bf16 = "native bf16" if m["native_bf16"] else "no native bf16"
    return f"{m['cpu']} ({bf16}), torch {m['torch']}, {m['threads']} threads, device {m['device']}"


def precision(amp: str, device: str = "auto") -> str:
    """The dtype decoding with decode.amp=`amp` computes in on `device`."""
    dtype = amp_dtype(select_device(device), amp)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def model_name(cfg: Config) -> str:
    return f"lstm ({cfg.model.encoder_padding})" if cfg.model.type == "lstm" else cfg.model.type


def source_lines(cfg: Config, splits: list[str], limit: int | None) -> list[str]:
    """The source side of each split, the first `limit` lines of each, concatenated."""
    return [line for split in splits for line in load_split(cfg.data, split).src[:limit]]


def count_changes(outputs: dict[int, list[str]]) -> dict:
    """`outputs`: budget -> one output per line. Lines whose budgets disagree (`changed`), and per
    budget the lines that differ from the smallest budget's output (`differ`)."""
    reference = outputs[min(outputs)]
    return {
        "lines": len(reference),
        "changed": sum(len(set(line)) > 1 for line in zip(*outputs.values())),
        "differ": {budget: sum(a != b for a, b in zip(out, reference)) for budget, out in outputs.items()},
    }


def decode(
    checkpoint: Path, lines: list[str], amp: str, beam: int, budget: int, device: str = "auto"
) -> tuple[list[str], float]:
    translator = Translator.from_checkpoint(checkpoint, device, amp=amp, beam=beam, max_tokens=budget)
    started = time.monotonic()
    outputs = translator.translate(lines)
    return outputs, time.monotonic() - started


def run_config(run: Path) -> Config:
    return config_from_dict(load_checkpoint(rundir.checkpoint_file(run))["config"])


def measure_run(
    run: Path, cfg: Config, lines: list[str], grid: dict[str, list], bar: tqdm, device: str = "auto"
) -> list[dict]:
    """One result per (amp, beam) of `grid` ({"amps": [...], "beams": [...], "budgets": [...]}) for one run."""
    checkpoint = rundir.checkpoint_file(run)
    results = []
    for amp in grid["amps"]:
        for beam in grid["beams"]:
            outputs, seconds = {}, {}
            for budget in grid["budgets"]:
                bar.set_postfix_str(f"{run.name} {amp} beam {beam} budget {budget}")
                outputs[budget], seconds[budget] = decode(checkpoint, lines, amp, beam, budget, device)
                bar.update()
            row = {"run": str(run), "model": model_name(cfg), "amp": amp, "precision": precision(amp, device)}
            results.append(row | {"beam": beam} | count_changes(outputs) | {"seconds": seconds})
    return results


def table(results: list[dict], budgets: list[int]) -> str:
    reference, *others = sorted(budgets)
    against = "1/batch" if reference == REFERENCE else f"budget {reference}"
    columns = ["model", "precision", "beam", "lines changed (of N)"]
    columns += [f"differ at {b} vs {against}" for b in others]
    columns += [f"decode s ({' / '.join(map(str, budgets))})"]
    rows = [
        [r["model"], r["precision"], r["beam"], f"{r['changed']} (of {r['lines']})"]
        + [r["differ"][b] for b in others]
        + [" / ".join(f"{r['seconds'][b]:.1f}" for b in budgets)]
        for r in results
    ]
    return markdown_table(columns, rows)


def emulated_bf16_note(amps: list[str], m: dict) -> str:
    """A warning when bf16 timings come from a CPU that emulates bf16 ('' otherwise)."""
    if "bf16" not in amps or m["device"] != "cpu" or m["native_bf16"]:
        return ""
    return (
        f"note: {m['cpu']} has no native bf16 instructions: bf16 is emulated in software, slower than "
        "float32; its seconds say nothing about bf16 speed on CPUs that have them."
    )


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench invariance", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, action="append", required=True, help="a run folder (repeatable)")
    p.add_argument("--splits", type=lambda s: s.split(","), default=["test_2016_flickr", "test_2017_flickr"])
    p.add_argument("--budgets", type=ints, default=[1, 64, 4096, 8192], help="max_tokens values; 1 always included")
    p.add_argument("--beams", type=ints, default=[1, 5])
    p.add_argument("--amps", type=lambda s: s.split(","), default=["off", "bf16"], help="decode.amp values")
    p.add_argument("--limit", type=int, help="the first N lines of each split")
    p.add_argument("--out", type=Path, default=Path("results/invariance"))
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    args.budgets = sorted({REFERENCE, *args.budgets})
    set_threads()
    m = machine()
    note = emulated_bf16_note(args.amps, m)
    if note:
        print(note, flush=True)
    started = time.monotonic()
    try:  # every run's lines before any decoding: a missing split or checkpoint fails at once
        configs = {run: run_config(run) for run in args.run}
        sources = {run: source_lines(cfg, args.splits, args.limit) for run, cfg in configs.items()}
    except (CheckpointError, CorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    decodes = len(args.run) * len(args.amps) * len(args.beams) * len(args.budgets)
    with tqdm(total=decodes, desc="decoding", unit="decode", **bar_settings()) as bar:
        grid = {"amps": args.amps, "beams": args.beams, "budgets": args.budgets}
        results = [r for run in args.run for r in measure_run(run, configs[run], sources[run], grid, bar)]
    text = f"{machine_line(m)}; splits {','.join(args.splits)}, limit {args.limit}\n\n" + table(results, args.budgets)
    text += f"\n{note}\n" if note else ""
    payload = {"command": [sys.executable, "-m", "mtapp.bench", "invariance", *argv]}
    payload |= {"machine": m, "splits": args.splits, "limit": args.limit, "budgets": args.budgets, "note": note}
    payload |= {"results": results, "seconds": time.monotonic() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "invariance.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "invariance.md").write_text(text)
    print(text + f"({payload['seconds']:.0f} s)")
    return 0
