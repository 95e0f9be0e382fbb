"""A trained model loaded for inference, once, the same way for every command.

`add_model_args` gives a command the options that name a model (--run, --checkpoint) and set how
it decodes; `load(args)` reads the checkpoint (or the exported folder) once and returns a
`LoadedModel`: the translator, the run's config, the engine and the weights' file, which is all
that `translate`, `evaluate` and `serve` need. `load_config(args)` reads only the config, for a
command that scores given output against a split of the run's corpus.

    model = inference.load(args)
    model.translator.translate(["Ein Hund läuft."])
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from mtapp import rundir
from mtapp.checkpoint import load_checkpoint
from mtapp.config import Config, ConfigError, config_from_dict
from mtapp.ct2 import export_config, is_export, load_export
from mtapp.data.download import file_sha256
from mtapp.runtime import memory_policy, set_threads
from mtapp.translator import Translator

ENGINES = ("torch", "ctranslate2")

# decode.* key -> the flag that overrides it (the flags are checked as the keys are)
DECODE_FLAGS = {
    "beam": "--beam",
    "length_penalty": "--length-penalty",
    "max_len_a": "--max-len-a",
    "max_len_b": "--max-len-b",
    "min_len": "--min-len",
    "max_tokens": "--max-tokens",
    "nbest": "--nbest",
    "amp": "--amp",
}


@dataclass(frozen=True)
class LoadedModel:
    translator: Translator  # splitting lines into sentences unless --no-split-sentences
    config: Config  # the run's
    engine: str  # "torch" (a checkpoint) or "ctranslate2" (an exported folder)
    weights: Path  # the file holding the weights: the checkpoint, or the export's model.bin
    quantize: str | None  # as --quantize asked

    def describe(self) -> dict:
        """The languages, model, engine, weights (and their SHA-256) and decode settings."""
        return {
            "source_language": self.config.data.src_lang,
            "target_language": self.config.data.tgt_lang,
            "model_type": self.config.model.type,
            "engine": self.engine,
            "quantize": self.quantize,
            "weights": str(self.weights),
            "weights_sha256": file_sha256(self.weights),
            "decode": asdict(self.translator.decode),
        }


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """Options shared by translate, evaluate and serve: which model, and how to decode."""
    which = p.add_mutually_exclusive_group(required=required)
    which.add_argument(
        "--run", type=Path, help="run directory (its checkpoint_best.pt), or a folder `python -m mtapp.export` wrote"
    )
    which.add_argument(
        "--checkpoint", type=Path, help="a checkpoint file (e.g. RUN/checkpoint_avg.pt, `python -m mtapp.average`)"
    )
    p.add_argument("--beam", type=int, help="beam size; 1 = greedy (default: the run's decode.beam)")
    p.add_argument("--length-penalty", type=float, help="score = log-prob / length ** this")
    p.add_argument("--max-len-a", type=float, help="output length limit = a * source length + b")
    p.add_argument("--max-len-b", type=int, help="output length limit = a * source length + b")
    p.add_argument("--min-len", type=int, help="no output ends with fewer subwords (unless its limit is lower)")
    p.add_argument("--max-tokens", type=int, help="inference batch budget in padded source tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="torch (a run or checkpoint) or ctranslate2 (an exported folder); default: what --run holds",
    )
    p.add_argument(
        "--quantize",
        help="torch: int8 (dynamic quantization, CPU); ctranslate2: a compute type (int8, int8_float32, "
        "float32, ...; default: as exported)",
    )
    p.add_argument(
        "--amp",
        choices=["auto", "off", "bf16", "fp16"],
        help="decoding precision (default: the run's decode.amp; off = float32, the same output whatever the batch)",
    )
    p.add_argument(
        "--no-split-sentences",
        action="store_true",
        help="translate each line whole (text already one sentence per line); default: a line is split into "
        "sentences of the run's source language, each translated, the translations joined with a space",
    )


def engine_of(args: argparse.Namespace) -> str:
    """The engine what --run/--checkpoint holds needs; --engine, when given, must agree."""
    held = "ctranslate2" if args.run is not None and is_export(args.run) else "torch"
    if args.engine and args.engine != held:
        if held == "torch":
            raise ConfigError(
                f"--engine ctranslate2 needs an exported folder; {args.run or args.checkpoint} is a training run: "
                f"export it first (python -m mtapp.export --run {args.run or 'RUN'} --out EXPORT_DIR) and pass "
                "--run EXPORT_DIR"
            )
        raise ConfigError(f"--engine torch needs a training run; {args.run} is a CTranslate2 export (drop --engine)")
    return held


def checkpoint_path(args: argparse.Namespace) -> Path:
    """The checkpoint --checkpoint names, or --run's checkpoint_best.pt."""
    return args.checkpoint or rundir.checkpoint_file(args.run)


def load_config(args: argparse.Namespace) -> Config:
    """The config of the run that --run/--checkpoint names (an exported folder keeps its run's),
    without building its model."""
    if engine_of(args) == "ctranslate2":
        return export_config(args.run)
    return config_from_dict(load_checkpoint(checkpoint_path(args))["config"])


def load(args: argparse.Namespace) -> LoadedModel:
    """The model --run/--checkpoint names, read once, decoding as the flags say (`add_model_args`)."""
    set_threads()
    memory_policy()
    overrides = {key: getattr(args, key, None) for key in DECODE_FLAGS}
    if engine_of(args) == "ctranslate2":
        config = export_config(args.run)
        compute_type = args.quantize or "default"
        translator = load_export(args.run, args.device, compute_type, DECODE_FLAGS, config=config, **overrides)
        weights = args.run / "model.bin"
    else:
        weights = checkpoint_path(args)
        content = load_checkpoint(weights)
        translator = Translator.from_content(
            content, weights, device=args.device, flags=DECODE_FLAGS, quantize=args.quantize, **overrides
        )
        config = config_from_dict(content["config"])
    translator = translator.with_sentences(not args.no_split_sentences)
    return LoadedModel(translator, config, engine_of(args), weights, args.quantize)
