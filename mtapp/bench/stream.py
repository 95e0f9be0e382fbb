"""`python -m mtapp.bench stream`: peak memory and speed of `python -m mtapp.translate` on inputs
of different lengths, to show memory stays bounded as the input grows.

    python -m mtapp.bench stream --run DIR [--lines 1000,100000] [--beam 1] [--amp off] [--out DIR] \\
        [-- TRANSLATE FLAGS, e.g. --buffer-lines 2000]

Each input cycles the source lines of the run's training split up to its line count (written
under OUT); each is translated by its own `python -m mtapp.translate` process, whose peak RSS
(from wait4), wall seconds (start-up and model loading included) and output line count are
recorded. Prints a table and writes OUT/stream.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mtapp.bench.invariance import ints, machine, machine_line, precision, run_config
from mtapp.data import load_split
from mtapp.report.document import markdown_table


def write_input(lines: list[str], count: int, path: Path) -> Path:
    """`count` lines cycling through `lines`."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in itertools.islice(itertools.cycle(lines), count))
    return path


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def translate(run: Path, source: Path, beam: int, amp: str, extra: list[str]) -> dict:
    """Translate `source` in a child process; its peak RSS, wall seconds and output line count."""
    output = source.with_suffix(".out")
    cmd = [sys.executable, "-m", "mtapp.translate", "--run", str(run), "--input", str(source)]
    cmd += ["--output", str(output), "--beam", str(beam), "--amp", amp, *extra]
    started = time.monotonic()
    with open(source.with_suffix(".log"), "w") as log:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (wait status {status}); see {source.with_suffix('.log')}")
    lines = count_lines(source)
    return {
        "lines": lines,
        "output_lines": count_lines(output),
        "wall_seconds": seconds,
        "lines_per_s": lines / seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "command": cmd,
    }


def table(results: list[dict]) -> str:
    columns = ["input lines", "output lines", "wall s", "lines/s", "peak RSS (MB)", f"RSS vs {results[0]['lines']}"]
    rows = [
        [r["lines"], r["output_lines"], f"{r['wall_seconds']:.1f}", f"{r['lines_per_s']:.1f}"]
        + [f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}x"]
        for r in results
    ]
    return markdown_table(columns, rows)


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """(this benchmark's arguments, translate's): they are separated by `--`."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="run folder (its checkpoint_best.pt)")
    p.add_argument("--lines", type=ints, default=[1000, 100000], help="input sizes in lines")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--amp", default="off", choices=["auto", "off", "bf16", "fp16"], help="decoding precision")
    p.add_argument("--out", type=Path, default=Path("results/stream"))
    argv = sys.argv[1:] if argv is None else argv
    own, extra = split_passthrough(argv)
    args = p.parse_args(own)
    if "--amp" in extra or "--beam" in extra:
        p.error("give --amp and --beam before `--`: they are recorded with the figures")
    cfg = run_config(args.run)
    sources = load_split(cfg.data, cfg.data.train_split).src
    args.out.mkdir(parents=True, exist_ok=True)
    m = machine() | {"threads": len(os.sched_getaffinity(0))}  # the child's (mtapp.runtime.set_threads)
    results = []
    for count in sorted(args.lines):
        print(f"translating {count} lines ...", flush=True)
        results.append(
            translate(args.run, write_input(sources, count, args.out / f"in_{count}.txt"), args.beam, args.amp, extra)
        )
    text = f"{machine_line(m)}; {precision(args.amp)}, beam {args.beam}, translate flags {' '.join(extra) or '-'}\n\n"
    text += table(results)
    bad = [r["lines"] for r in results if r["output_lines"] != r["lines"]]
    text += f"\nERROR: output line count differs from the input's for {bad} lines\n" if bad else ""
    payload = {"command": [sys.executable, "-m", "mtapp.bench", "stream", *argv], "machine": m, "run": str(args.run)}
    payload |= {"beam": args.beam, "amp": args.amp, "precision": precision(args.amp), "translate_flags": extra}
    payload |= {"results": results}
    (args.out / "stream.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)
    return 1 if bad else 0
