"""`python -m mtapp.translate`: translate text with a trained run, one output line per input line.

python -m mtapp.translate --run DIR [--input FILE] [--output FILE] [--beam 5] ...
echo "Ein Hund läuft." | python -m mtapp.translate --run runs/multi30k_de_en_transformer
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.data.corpora import CorpusError, decode_lines, read_lines
from mtapp.runtime import keep_freed_memory, set_threads
from mtapp.translator import Translator


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """Options shared by translate and evaluate: which model, and how to decode."""
    which = p.add_mutually_exclusive_group(required=required)
    which.add_argument("--run", type=Path, help="run directory (uses its checkpoint_best.pt)")
    which.add_argument("--checkpoint", type=Path, help="a checkpoint file")
    p.add_argument("--beam", type=int, help="beam size; 1 = greedy (default: the run's decode.beam)")
    p.add_argument("--length-penalty", type=float, help="score = log-prob / length ** this")
    p.add_argument("--max-len-a", type=float, help="output length limit = a * source length + b")
    p.add_argument("--max-len-b", type=int, help="output length limit = a * source length + b")
    p.add_argument("--min-len", type=int, help="no output ends with fewer subwords (unless its limit is lower)")
    p.add_argument("--max-tokens", type=int, help="inference batch budget in padded source tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--amp", choices=["auto", "off", "bf16", "fp16"], help="decoding precision (default: the run's decode.amp)"
    )


def load_translator(args: argparse.Namespace) -> Translator:
    set_threads()
    keep_freed_memory()
    path = args.checkpoint or args.run / "checkpoint_best.pt"
    return Translator.from_checkpoint(
        path,
        device=args.device,
        beam=args.beam,
        length_penalty=args.length_penalty,
        max_len_a=args.max_len_a,
        max_len_b=args.max_len_b,
        min_len=args.min_len,
        max_tokens=args.max_tokens,
        amp=args.amp,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.translate", description="Translate text, line by line.")
    add_model_args(p)
    p.add_argument("--input", type=Path, help="input file, plain or .gz (default: standard input)")
    p.add_argument("--output", type=Path, help="output file (default: standard output)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        translator = load_translator(args)
        # bytes, split like files: str.splitlines would also break at \r, \x0c, \x85, \u2028, ...
        lines = read_lines(args.input) if args.input else decode_lines(sys.stdin.buffer.read(), "standard input")
    except (CheckpointError, ConfigError, CorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    outputs = translator.translate(lines, progress=args.output is not None)
    text = "".join(line + "\n" for line in outputs).encode("utf-8")  # UTF-8 out, as in, whatever the locale
    if args.output:
        args.output.write_bytes(text)
    else:
        sys.stdout.buffer.write(text)
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
