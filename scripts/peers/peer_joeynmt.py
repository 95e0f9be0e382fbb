"""JoeyNMT 2.3.0 in the peers benchmark: its config, its commands and what its logs report.

The model and recipe are the shared ones (`Shared`); everything else is JoeyNMT's default or
what its Transformer configs use (Xavier initialisation, scaled embeddings, token
normalisation), with pre-norm layers as in the other two systems. It reads the piece files as
they are (`level: word` splits at spaces). Validation is never due, so none of the budget goes
to it; its `warmupinversesquareroot` schedule is mtapp's learning-rate curve. Its token batches
are cut from the shuffled corpus without bucketing — JoeyNMT has none.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mtapp.bench.child import Command
from scripts.peers.data import Pieces
from scripts.peers.settings import Shared

KEY, NAME, VERSION = "joeynmt", "JoeyNMT", "2.3.0"
# JoeyNMT 2.3.0 reads `testing.min_output_length` and logs it, but `prediction.predict` never
# passes it to the search, so eos stays allowed from the first step. `python -c` with this, then
# the length and JoeyNMT's own arguments, runs JoeyNMT with the value handed to the search.
_MIN_LENGTH = """\
import functools, runpy, sys
import joeynmt.prediction
joeynmt.prediction.search = functools.partial(joeynmt.prediction.search, min_output_length=int(sys.argv[1]))
sys.argv = ["joeynmt", *sys.argv[2:]]
runpy.run_module("joeynmt", run_name="__main__", alter_sys=True)
"""


def write_config(folder: Path, pieces: Pieces, shared: Shared) -> Path:
    """JoeyNMT's config for the shared settings, as folder/joeynmt.yaml; the model goes to folder/model."""
    side = {"level": "word", "lowercase": False, "normalize": False, "voc_file": str(pieces.vocab)}
    layers = {
        "type": "transformer",
        "num_layers": shared.layers,
        "num_heads": shared.heads,
        "embeddings": {"embedding_dim": shared.d_model, "scale": True, "dropout": shared.dropout},
        "hidden_size": shared.d_model,
        "ff_size": shared.ffn_dim,
        "dropout": shared.dropout,
        "layer_norm": "pre",
    }
    model_dir = folder / "model"
    config = {
        "name": "bench-peers",
        "joeynmt_version": VERSION,
        "model_dir": str(model_dir),
        "use_cuda": False,
        "random_seed": shared.seed,
        "data": {
            "train": str(pieces.prefix("train")),
            "dev": str(pieces.prefix("val")),
            "dataset_type": "plain",
            "src": {"lang": pieces.src_lang, **side},
            "trg": {"lang": pieces.tgt_lang, **side},
        },
        "training": {
            "model_dir": str(model_dir),
            "overwrite": True,
            "optimizer": "adam",
            "adam_betas": list(shared.betas),
            "scheduling": "warmupinversesquareroot",
            "learning_rate": shared.lr,
            "learning_rate_warmup": shared.warmup,
            "learning_rate_min": 1.0e-9,  # below it JoeyNMT stops training
            "clip_grad_norm": shared.clip_norm,
            "label_smoothing": shared.label_smoothing,
            "loss": "crossentropy",
            "normalization": "tokens",
            "batch_type": "token",
            "batch_size": shared.max_tokens,
            "epochs": 1000,  # the wall-clock budget ends training
            "logging_freq": 50,
            "validation_freq": 50 * 10**7,  # never: no budget spent on validation
            "keep_best_ckpts": 1,
            "shuffle": True,
        },
        "testing": {
            "load_model": str(model_dir / "latest.ckpt"),
            "beam_size": shared.beam,
            "beam_alpha": 1.0,
            "batch_type": "token",
            "batch_size": shared.max_tokens,
            "eval_metrics": ["bleu"],
        },
        "model": {
            "initializer": "xavier_uniform",
            "embed_initializer": "xavier_uniform",
            "embed_init_gain": 1.0,
            "init_gain": 1.0,
            "bias_initializer": "zeros",
            "tied_embeddings": True,
            "tied_softmax": True,
            "encoder": layers,
            "decoder": layers,
        },
    }
    path = folder / "joeynmt.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train_args(config: Path) -> list[str]:
    return ["train", str(config), "--skip-test"]


def checkpoint(folder: Path) -> Path:
    path = folder / "model" / "latest.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"JoeyNMT wrote no checkpoint ({path})")
    return path.resolve()


def translate_command(
    venv: Path, config: Path, model: Path, pieces: Pieces, output: Path, shared: Shared, length: int = 0
) -> Command:
    """Beam search over stdin (the test pieces) into `output` (pieces) from its stdout, the log
    beside it from stderr; its `-o` option fails in 2.3.0. The model and the beam are in `config`
    (`testing.load_model`, `testing.beam_size`). With `length` > 0 a copy of `config` makes
    the search run `length` + 1 steps, as mtapp's (`Shared.fixed_length`): eos blocked for the
    first `length`, the search ended after one more."""
    python = str(venv / "bin" / "python")
    if length:
        options = yaml.safe_load(config.read_text())
        options["testing"] |= {"min_output_length": length, "max_output_length": length + 1}
        config = config.with_name(f"{config.stem}_{length}.yaml")
        config.write_text(yaml.safe_dump(options, sort_keys=False))
        args = [python, "-c", _MIN_LENGTH, str(length), "translate", str(config)]
    else:
        args = [python, "-m", "joeynmt", "translate", str(config)]
    source = pieces.path("test", pieces.src_lang)
    log = output.with_suffix(".log")
    return Command(args, log, stdin=source, stdout=output, env=shared.thread_env(), cwd=config.parent)


# "2024-05-01 10:00:00,000 - INFO - joeynmt.training - Epoch   1, Step:       50, Batch Loss:     7.1,
#  Batch Acc: 0.05, Tokens per Sec:     2000, Lr: 0.000063"
_STEP = re.compile(r"Epoch\s+\d+, Step:\s+(\d+),.*?Tokens per Sec:\s+(\d+)")
_DECODE = re.compile(r"Generation took ([\d.]+)\[sec\]")


def reported_tokens_per_s(log: str) -> float | None:
    """JoeyNMT's own figure: the mean of its per-interval `Tokens per Sec` (each interval is
    `logging_freq` updates; it counts non-pad target tokens after the shift, eos included)."""
    rates = [float(m[2]) for m in _STEP.finditer(log)]
    return sum(rates) / len(rates) if rates else None


def decode_seconds(log: str) -> float | None:
    """Its own decoding time (model loaded, data read: search only)."""
    m = _DECODE.search(log)
    return float(m[1]) if m else None
