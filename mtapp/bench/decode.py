"""`python -m mtapp.bench decode`: every way mtapp can decode a run, timed in interleaved rounds.

    python -m mtapp.bench decode --run DIR [--run DIR ...] [--split test_2016_flickr] [--beam 5]
        [--rounds 3] [--out results/decode]

Per run: torch float32, torch bf16 (where the CPU has bf16 instructions), torch int8 (dynamic
quantization) and, for a Transformer, CTranslate2 float32 and int8 (the run exported once into
OUT/exports). Each decode is one `python -m mtapp.evaluate` process on the CPU; every round runs
every variant once, one after another, so a slow spell of a shared host falls on all of them.
Per variant: the median round's decoding seconds and sentences/s, BLEU, the lines identical to
torch float32's, the model's size on disk and the peak RSS of the process. Writes OUT/decode.json
and OUT/decode.md (the table it prints).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import torch

from mtapp import ct2, rundir
from mtapp.bench.child import Command, run
from mtapp.bench.invariance import machine, machine_line, run_config
from mtapp.checkpoint import load_checkpoint
from mtapp.report.document import markdown_table
from mtapp.runtime import cpu_has_native_bf16
from mtapp.translator import Translator


def variants(run_dir: Path, model_type: str, exports: Path) -> dict[str, list[str]]:
    """Variant name -> the model and precision flags of `mtapp.evaluate`."""
    torch_run = ["--run", str(run_dir), "--amp", "off"]
    found = {"torch float32": torch_run}
    if cpu_has_native_bf16():
        found["torch bf16"] = ["--run", str(run_dir), "--amp", "bf16"]
    found["torch int8"] = [*torch_run, "--quantize", "int8"]
    if model_type == "transformer":
        for quantization in ("float32", "int8"):
            found[f"ctranslate2 {quantization}"] = ["--run", str(exports / f"{run_dir.name}-{quantization}")]
    return found


def export_all(run_dir: Path, exports: Path) -> dict[str, float]:
    """The run's CTranslate2 folders (float32 and int8); the seconds each export took."""
    seconds, checkpoint = {}, rundir.checkpoint_file(run_dir)
    for quantization in ("float32", "int8"):
        started = time.monotonic()
        ct2.export(checkpoint, exports / f"{run_dir.name}-{quantization}", quantization, force=True)
        seconds[quantization] = time.monotonic() - started
    return seconds


def model_megabytes(run_dir: Path, name: str, flags: list[str]) -> float:
    """What the variant's weights take on disk: a torch state dict (float32, or quantized), or
    the CTranslate2 model.bin."""
    if name.startswith("ctranslate2"):
        return (Path(flags[1]) / "model.bin").stat().st_size / 1e6
    if "int8" in name:
        translator = Translator.from_checkpoint(rundir.checkpoint_file(run_dir), device="cpu", quantize="int8")
        buffer = io.BytesIO()
        torch.save(translator.searcher.model.state_dict(), buffer)
        return buffer.tell() / 1e6
    weights = load_checkpoint(rundir.checkpoint_file(run_dir))["model"]
    return sum(t.numel() * t.element_size() for t in weights.values()) / 1e6


def decode(flags: list[str], split: str, beam: int, out: Path) -> dict:
    """One `mtapp.evaluate` process: its JSON (scores, seconds), translations and peak RSS."""
    args = [sys.executable, "-m", "mtapp.evaluate", *flags, "--split", split, "--beam", str(beam)]
    args += ["--device", "cpu", "--json", str(out)]
    finished = run(Command(args, out.with_suffix(".log")), timeout=3600)
    if finished.status != 0:
        raise SystemExit(f"decoding failed (exit {finished.status}): {' '.join(args)}; see {out.with_suffix('.log')}")
    found = rundir.read_eval(out)
    return found | {"peak_rss_mb": finished.peak_rss_mb, "hyps": rundir.read_hyps(out)}


def summary(decodes: list[dict], reference: list[str]) -> dict:
    """The median round by decoding seconds (of an even count, the lower middle one)."""
    ranked = sorted(decodes, key=lambda d: d["translate_seconds"])
    median = ranked[(len(ranked) - 1) // 2]
    return {
        "decode_seconds": median["translate_seconds"],
        "sentences_per_s": len(median["hyps"]) / median["translate_seconds"],
        "seconds_rounds": [d["translate_seconds"] for d in decodes],
        "bleu": median["bleu"],
        "identical_to_float32": sum(a == b for a, b in zip(median["hyps"], reference)),
        "lines": len(reference),
        "peak_rss_mb": max(d["peak_rss_mb"] for d in decodes),
        "same_every_round": all(d["hyps"] == decodes[0]["hyps"] for d in decodes),
    }


def table(results: list[dict]) -> str:
    columns = ["run", "model", "engine / precision", "decode s (median)", "sentences/s", "× torch fp32", "BLEU"]
    columns += ["identical to fp32", "model MB", "peak RSS MB"]
    rows = []
    for r in results:
        base = next(x for x in results if x["run"] == r["run"] and x["variant"] == "torch float32")
        rows.append(
            [Path(r["run"]).name, r["model"], r["variant"], f"{r['decode_seconds']:.2f}", f"{r['sentences_per_s']:.1f}"]
            + [f"{r['sentences_per_s'] / base['sentences_per_s']:.2f}×", f"{r['bleu']:.2f}"]
            + [f"{r['identical_to_float32']} of {r['lines']}", f"{r['model_mb']:.1f}", f"{r['peak_rss_mb']:.0f}"]
        )
    return markdown_table(columns, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench decode", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, action="append", required=True, help="a run folder (repeatable)")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("results/decode"))
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    started = time.monotonic()
    (args.out / "decodes").mkdir(parents=True, exist_ok=True)
    plan, exported = {}, {}
    for run_dir in args.run:
        model_type = run_config(run_dir).model.type
        if model_type == "transformer":
            exported[str(run_dir)] = export_all(run_dir, args.out / "exports")
        plan[run_dir] = (model_type, variants(run_dir, model_type, args.out / "exports"))
    done: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        for run_dir, (_, found) in plan.items():
            for name, flags in found.items():
                print(f"round {r + 1} of {args.rounds}: {run_dir.name} {name}", flush=True)
                out = args.out / "decodes" / f"{run_dir.name}-{name.replace(' ', '-')}-{r + 1}.json"
                done.setdefault((str(run_dir), name), []).append(decode(flags, args.split, args.beam, out))
    results = []
    for run_dir, (model_type, found) in plan.items():
        reference = done[(str(run_dir), "torch float32")][0]["hyps"]
        for name, flags in found.items():
            row = {"run": str(run_dir), "model": model_type, "variant": name, "flags": flags}
            row |= summary(done[(str(run_dir), name)], reference)
            results.append(row | {"model_mb": model_megabytes(run_dir, name, flags)})
    m = machine()
    text = f"{machine_line(m)}; {args.split}, beam {args.beam}, {args.rounds} interleaved rounds\n\n" + table(results)
    payload = {"command": [sys.executable, "-m", "mtapp.bench", "decode", *argv], "machine": m}
    payload |= {"split": args.split, "beam": args.beam, "rounds": args.rounds, "export_seconds": exported}
    payload |= {"results": results, "seconds": time.monotonic() - started}
    (args.out / "decode.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "decode.md").write_text(text + "\n")
    print(text + f"\n({payload['seconds']:.0f} s)")
    return 0
