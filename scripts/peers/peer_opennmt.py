"""OpenNMT-py 3.5.1 in the peers benchmark: its config, its commands and what its logs report.

The model and recipe are the shared ones (`Shared`); everything else is OpenNMT-py's default or
what its documentation recommends for Transformers (Glorot initialisation, token
normalisation, pre-norm layers, sinusoidal positions), except its data loading (see
`write_config`). No validation set is given, so none of the budget goes to validation; the
learning rate follows its `noam` schedule scaled so that it peaks at `Shared.lr` after
`Shared.warmup` updates, the same curve as mtapp's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from mtapp.bench.child import Command
from scripts.peers.data import Pieces
from scripts.peers.settings import Shared

KEY, NAME, VERSION = "opennmt", "OpenNMT-py", "3.5.1"
# torch >= 2.6 loads checkpoints with weights_only=True by default, which OpenNMT-py 3.5.1's
# checkpoints (they hold its options object) do not pass.
TRANSLATE_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def write_config(folder: Path, pieces: Pieces, shared: Shared) -> Path:
    """OpenNMT-py's training options for the shared settings, as folder/opennmt.yaml."""
    src, tgt = pieces.src_lang, pieces.tgt_lang
    options = {
        "data": {"corpus_1": {"path_src": str(pieces.path("train", src)), "path_tgt": str(pieces.path("train", tgt))}},
        "src_vocab": str(pieces.vocab),
        "tgt_vocab": str(pieces.vocab),
        "share_vocab": True,
        "overwrite": True,
        "n_sample": 0,
        "save_model": str(folder / "model"),
        "save_checkpoint_steps": 10**9,  # one checkpoint, at the end
        "train_steps": 10**9,  # the wall-clock budget ends training
        "seed": shared.seed,
        "world_size": 1,
        "gpu_ranks": [],
        "report_every": 50,
        # One data-loader worker, and buckets of one pass over the corpus. The defaults (2 workers,
        # buckets of 262,144 examples: 9 copies of Multi30k, whose duplicates a batch drops) made
        # the first batches of the second worker wait ~70 s, inside the budget, on 2 cores.
        "num_workers": 1,
        "bucket_size": len(pieces.src_lengths),
        # model
        "encoder_type": "transformer",
        "decoder_type": "transformer",
        "position_encoding": True,
        "enc_layers": shared.layers,
        "dec_layers": shared.layers,
        "heads": shared.heads,
        "hidden_size": shared.d_model,
        "word_vec_size": shared.d_model,
        "transformer_ff": shared.ffn_dim,
        "dropout": [shared.dropout],
        "attention_dropout": [shared.attention_dropout],
        "share_embeddings": True,
        "share_decoder_embeddings": True,
        "param_init": 0.0,
        "param_init_glorot": True,
        # recipe
        "batch_type": "tokens",
        "batch_size": shared.max_tokens,
        "normalization": "tokens",
        "accum_count": [1],
        "optim": "adam",
        "adam_beta1": shared.betas[0],
        "adam_beta2": shared.betas[1],
        "decay_method": "noam",  # lr · d^-0.5 · min(step^-0.5, step · warmup^-1.5)
        "learning_rate": shared.lr * math.sqrt(shared.d_model * shared.warmup),
        "warmup_steps": shared.warmup,
        "max_grad_norm": shared.clip_norm,
        "label_smoothing": shared.label_smoothing,
    }
    path = folder / "opennmt.yaml"
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def train_args(config: Path) -> list[str]:
    return ["-config", str(config)]


def checkpoint(folder: Path) -> Path:
    """The last checkpoint written (model_step_N.pt with the largest N)."""
    found = sorted(folder.glob("model_step_*.pt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if not found:
        raise FileNotFoundError(f"OpenNMT-py wrote no checkpoint in {folder}")
    return found[-1]


def translate_command(
    venv: Path, config: Path, model: Path, pieces: Pieces, output: Path, shared: Shared, length: int = 0
) -> Command:
    """Beam search over the test pieces into `output` (pieces); the log beside it. With
    `length` > 0 the search runs `length` + 1 steps, as mtapp's (`Shared.fixed_length`): eos
    blocked for the first `length`, the search ended after one more."""
    if length:
        limits = ["-max_length_ratio", "0", "-min_length", str(length), "-max_length", str(length + 1)]
    else:
        # outputs up to 1.5 x the longest source of the batch + 5 (its default ratio is 1.25):
        # mtapp allows 1.5 x each source + 10, JoeyNMT 1.5 x the longest source of the batch
        limits = ["-max_length_ratio", "1.5"]
    args = [
        str(venv / "bin" / "onmt_translate"),
        "-model", str(model),
        "-src", str(pieces.path("test", pieces.src_lang)),
        "-output", str(output),
        "-beam_size", str(shared.beam),
        *limits,
        "-batch_type", "tokens",
        "-batch_size", str(shared.max_tokens),
        "-gpu", "-1",
        "-report_time",
    ]  # fmt: skip
    env = {**TRANSLATE_ENV, **shared.thread_env()}
    return Command(args, output.with_suffix(".log"), env=env, cwd=config.parent)


# "[2024-05-01 10:00:00,000 INFO] Step 50/1000000000; acc: 10.1; ppl: 2000.0; xent: 7.6; lr: 0.00006;
#  sents: 12000; bsz: 2900/2800/240; 2480/2390 tok/s; 59 sec;"
_STEP = re.compile(r"Step\s+(\d+)(?:/\s*\d+)?;.*?bsz:\s*(\d+)/\s*(\d+)/\s*\d+;.*?tok/s;\s*(\d+) sec")
_DECODE = re.compile(r"Total translation time \(s\): ([\d.]+)")


def reported_tokens_per_s(log: str) -> float | None:
    """OpenNMT-py's own figures, from its report lines: target tokens per batch (`bsz`: non-pad
    target tokens after the shift, eos included) × the batches since the previous report, over
    the seconds between the first and the last report (its `sec` counts from the start of the
    training loop, so the wait for the first batches is left out); None before two reports."""
    reports = [(int(m[1]), int(m[3]), float(m[4])) for m in _STEP.finditer(log)]
    if len(reports) < 2 or reports[-1][2] <= reports[0][2]:
        return None
    tokens = sum(per_batch * (step - before[0]) for before, (step, per_batch, _) in zip(reports, reports[1:]))
    return tokens / (reports[-1][2] - reports[0][2])


def decode_seconds(log: str) -> float | None:
    """Its own decoding time (model loaded, data read: search only)."""
    m = _DECODE.search(log)
    return float(m[1]) if m else None
