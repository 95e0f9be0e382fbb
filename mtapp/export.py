"""`python -m mtapp.export`: a trained Transformer run as a folder an inference engine loads alone.

python -m mtapp.export --run DIR [--checkpoint FILE] --out DIR|FILE.argosmodel [--format ctranslate2|argos]
                       [--quantize int8|int8_float32|int16|float16|bfloat16|float32] [--force]

ctranslate2 (default): a folder with the CTranslate2 model, its vocabulary, the SentencePiece model
and the run's config (its decode settings): `python -m mtapp.translate --run DIR` and
`mtapp.evaluate` then decode with CTranslate2 (see mtapp/ct2.py). argos: the same model as an Argos
Translate package, a .argosmodel file for `argostranslate.package.install_from_path` and so for
LibreTranslate (see mtapp/argos.py). LSTM and hybrid runs have no CTranslate2 form; their fast CPU
path is the torch engine's `--quantize int8`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from mtapp import argos, rundir
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.ct2 import QUANTIZATIONS, ExportError, export


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.export", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run directory (its checkpoint_best.pt)")
    which.add_argument("--checkpoint", type=Path, help="a checkpoint file")
    p.add_argument("--out", type=Path, required=True, help="the folder (ctranslate2) or .argosmodel file (argos)")
    p.add_argument("--format", default="ctranslate2", choices=["ctranslate2", "argos"], help="default: %(default)s")
    p.add_argument("--quantize", default="float32", choices=QUANTIZATIONS, help="weight type (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    checkpoint = args.checkpoint or rundir.checkpoint_file(args.run)
    started = time.monotonic()
    try:
        if args.format == "argos":
            out = argos.package(checkpoint, args.out, args.quantize, args.force)
        else:
            out = export(checkpoint, args.out, args.quantize, args.force)
    except (CheckpointError, ConfigError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.format == "argos":
        print(
            f"packaged {checkpoint} for Argos Translate ({args.quantize}) as {out} ({out.stat().st_size / 1e6:.1f} MB, "
            f'{time.monotonic() - started:.1f} s); install with: python -c "import argostranslate.package as p; '
            f"p.install_from_path('{out}')\""
        )
        return 0
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(
        f"exported {checkpoint} as CTranslate2 ({args.quantize}) to {out} ({size / 1e6:.1f} MB, "
        f"{time.monotonic() - started:.1f} s); translate with: python -m mtapp.translate --run {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
