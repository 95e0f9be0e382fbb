"""What a trained LSTM does with padding, measured on its checkpoint and validation sentences (the
probes behind claims (b) and (f) of `bench claims`):

  state_drift              how far the final encoder states move when sentences are batched
  first_position_gradient  how much training gradient reaches the first real source tokens

Both run on the CPU in float32 with dropout off, on the first validation sentences in corpus
order (mixed lengths, so batches carry the padding the claims are about).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mtapp import rundir
from mtapp.batching import Batch, collate
from mtapp.checkpoint import load_checkpoint
from mtapp.config import Config, LossConfig, config_from_dict
from mtapp.data import load_split
from mtapp.loss import batch_loss
from mtapp.models.base import Seq2Seq
from mtapp.tokenization import Tokenizer
from mtapp.translator import Translator


def load_run(run_dir: Path) -> tuple[Seq2Seq, Tokenizer, Config]:
    """The run's last model (eval mode, CPU), its tokenizer and its config."""
    path = rundir.checkpoint_file(run_dir, rundir.LAST)
    content = load_checkpoint(path)
    translator = Translator.from_content(content, path, device="cpu")
    return translator.searcher.model, translator.tokenizer, config_from_dict(content["config"])


def validation_ids(cfg: Config, tokenizer: Tokenizer, sentences: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Source and target ids of the first `sentences` validation pairs."""
    split = load_split(cfg.data, cfg.data.valid_split)
    src, tgt = (tokenizer.encode(side[:sentences]) for side in (split.src, split.tgt))
    return [np.array(s) for s in src], [np.array(t) for t in tgt]


@torch.no_grad()
def state_drift(run_dir: Path, sentences: int = 256) -> dict[str, float]:
    """Mean absolute change of the trained LSTM's final encoder states when validation sentences
    are encoded in padded batches of 64 instead of one at a time, relative to the mean absolute
    state, for post- and pre-padding (0 for the exact modes; the claim is about `padded`)."""
    model, tokenizer, cfg = load_run(run_dir)
    ids, _ = validation_ids(cfg, tokenizer, sentences)
    alone = torch.cat([model.encode(collate([s], None, [0])).h for s in ids], dim=1)  # (L, N, D)
    drift = {}
    for side in ("post", "pre"):
        chunks = [ids[i : i + 64] for i in range(0, len(ids), 64)]
        batched = torch.cat([model.encode(collate(c, None, range(len(c)), side)).h for c in chunks], dim=1)
        drift[side] = ((batched - alone).abs().mean() / alone.abs().mean()).item()
    return drift


def first_position_gradient(
    run_dir: Path, sentences: int = 256, batch_size: int = 64, pad_side: str | None = None
) -> float:
    """How much of the training gradient reaches a sentence's first real source token, against
    its other tokens: for each of the first `sentences` validation pairs, the norm of
    d loss / d x at the first real source position, x (B, S, E) the source embeddings the encoder
    reads, divided by the mean of that norm over the sentence's real positions (eos included);
    the geometric mean over the sentences.

    The loss is the run's (label smoothing, pad mask), summed over batches of `batch_size` pairs
    padded on `pad_side` (default the run's batching.pad_side). 1 means the first token gets an
    average share; well below 1, the gradient fades on its way to the start of the sentence, e.g.
    through pads between the first token and the backward LSTM's final state (pre-padding,
    `padded` mode), from which the decoder starts. LSTM runs only."""
    model, tokenizer, cfg = load_run(run_dir)
    if cfg.model.type != "lstm":
        raise ValueError(f"{run_dir}: first_position_gradient probes LSTM encoders, not {cfg.model.type}")
    src, tgt = validation_ids(cfg, tokenizer, sentences)
    side = pad_side or cfg.batching.pad_side
    logs = []
    for i in range(0, len(src), batch_size):
        rows = slice(i, i + batch_size)
        batch = collate(src[rows], tgt[rows], range(len(src[rows])), side)
        norms = source_gradient_norms(model, batch, cfg.loss)
        logs.append(first_over_mean(norms, batch.src_pad_mask).log())
    return torch.cat(logs).mean().exp().item()


def source_gradient_norms(model: Seq2Seq, batch: Batch, loss: LossConfig) -> torch.Tensor:
    """(B, S) norm over E of d loss / d x, x (B, S, E) the embedded source `model.encoder` reads."""
    seen = []

    def keep(module, args):
        args[0].retain_grad()
        seen.append(args[0])

    hook = model.encoder.register_forward_pre_hook(keep)
    try:
        total, _, _ = batch_loss(model, batch, loss.label_smoothing, loss.mask_padding)
        total.backward()
    finally:
        hook.remove()
    model.zero_grad(set_to_none=True)
    return seen[0].grad.norm(dim=-1)


def first_over_mean(norms: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """(B,) each row's value at its first real position over its mean at the real positions;
    norms, pad_mask (B, S), pad_mask True at pads (before or after the real tokens)."""
    real = ~pad_mask
    first = real.int().argmax(dim=1)  # the first True of each row
    mean = (norms * real).sum(dim=1) / real.sum(dim=1)
    return norms.gather(1, first[:, None]).squeeze(1) / mean
