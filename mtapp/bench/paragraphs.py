"""`python -m mtapp.bench paragraphs`: does a line of several sentences translate as its sentences
do alone? The paragraph target of real text.

    python -m mtapp.bench paragraphs --run DIR [--split test_2016_flickr] [--lines 300] [--per-line 3]
        [--amp off] [model and decode flags as translate's] [--out DIR]

The split's first lines * per-line source sentences are joined, per-line at a time, with a space
into lines (sentence i*k .. i*k+k-1 into line i). Each line is translated the way `translate`
translates text (split into sentences, `mtapp.sentences`, translated, joined with a space), and
the sentences are translated alone, one a line. A line counts when its translation is exactly
the alone translations joined with a space; the splitter counts when it gives back exactly the
line's sentences. Decoding is float32 by default (`--amp off`): the same output whatever the
batch, so a difference comes from the splitting, not from arithmetic. Writes OUT/paragraphs.json
(the counts, the machine, every line that differs) and prints the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mtapp import inference
from mtapp.bench.machine import cpu_name
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.ct2 import ExportError
from mtapp.data import CorpusError, load_split
from mtapp.sentences import split_sentences


def measure(model: inference.LoadedModel, sentences: list[str], per_line: int) -> dict:
    """The counts (module docstring) for `sentences` joined `per_line` at a time."""
    groups = [sentences[i : i + per_line] for i in range(0, len(sentences) - per_line + 1, per_line)]
    lines = [" ".join(group) for group in groups]
    language = model.config.data.src_lang
    started = time.monotonic()
    joined = model.translator.with_sentences(True).translate(lines, progress=True)
    alone = model.translator.with_sentences(False).translate([s for g in groups for s in g], progress=True)
    expected = [" ".join(alone[i * per_line : (i + 1) * per_line]) for i in range(len(groups))]
    split = [split_sentences(line, language) == group for line, group in zip(lines, groups)]
    differ = [
        {"line": i + 1, "source": lines[i], "split": split_sentences(lines[i], language), "joined": joined[i]}
        | {"alone": expected[i]}
        for i in range(len(lines))
        if joined[i] != expected[i]
    ]
    return {
        "lines": len(lines),
        "per_line": per_line,
        "identical": len(lines) - len(differ),
        "split_exactly": sum(split),
        "seconds": round(time.monotonic() - started, 1),
        "differ": differ,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench paragraphs", description=__doc__.split("\n\n")[0])
    inference.add_model_args(p)
    p.add_argument("--split", default="test_2016_flickr", help="split of the run's corpus whose sources are joined")
    p.add_argument("--lines", type=int, default=300, help="lines to make")
    p.add_argument("--per-line", type=int, default=3, help="sentences per line")
    p.add_argument("--out", type=Path, default=Path("results/paragraphs"), help="where paragraphs.json goes")
    args = p.parse_args(argv)
    if min(args.lines, args.per_line) < 1:
        p.error("--lines and --per-line must be at least 1")
    args.amp = args.amp or "off"
    try:
        model = inference.load(args)
        sources = load_split(model.config.data, args.split).src
    except (CheckpointError, ConfigError, CorpusError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(sources) < args.lines * args.per_line:
        p.error(f"--split {args.split} has {len(sources)} sentences: fewer than --lines x --per-line")
    result = measure(model, sources[: args.lines * args.per_line], args.per_line)
    result |= {"split": args.split, "model": model.describe(), "cpu": cpu_name()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paragraphs.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        f"{result['identical']} of {result['lines']} lines of {args.per_line} {args.split} sentences translate "
        f"exactly as their sentences alone ({result['identical'] / result['lines']:.1%}); the splitter gave back "
        f"the sentences of {result['split_exactly']}; {result['seconds']} s; {args.out / 'paragraphs.json'}"
    )
    return 0
