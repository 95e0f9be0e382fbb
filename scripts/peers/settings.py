"""The settings every system of the peers benchmark trains and decodes with (issue #7): one model size,
one recipe, one budget. Each system's config is written from these."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml


def available_cores() -> int:
    """Cores this process may run on (affinity aware): the threads every system computes with,
    as mtapp's `runtime.set_threads` chooses them for a single process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Shared:
    minutes: float = 10.0  # wall-clock training budget, from the first batch
    d_model: int = 256
    heads: int = 4
    layers: int = 3  # encoder layers, and as many decoder layers
    ffn_dim: int = 1024
    dropout: float = 0.1  # embeddings and residual branches
    attention_dropout: float = 0.0
    label_smoothing: float = 0.1
    lr: float = 5e-4  # peak learning rate: linear warmup to it, then inverse square root decay
    warmup: int = 400  # updates
    betas: tuple[float, float] = (0.9, 0.98)  # Adam
    clip_norm: float = 1.0  # gradient norm clipping
    max_tokens: int = 4096  # batch budget in padded token slots (training and decoding)
    beam: int = 5
    # Decoding at equal work: every system writes this many subwords for every sentence (end of
    # sentence blocked before, the search stopped after one more step), so that every beam of
    # every sentence runs fixed_length + 1 decoder steps in every system. 0 = not measured.
    fixed_length: int = 20
    # Every system decodes this many times (the systems in turn, after all have trained); the
    # decoding figures are those of the median round.
    decode_rounds: int = 3
    seed: int = 1
    threads: int = field(default_factory=available_cores)  # intra-op threads of every system

    def thread_env(self) -> dict[str, str]:
        """Environment of every command: the peers' torch (and OpenMP) take their intra-op thread
        count from it; mtapp sets the same count itself (`runtime.set_threads`)."""
        return {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}

    def mtapp_overrides(self) -> list[str]:
        """`--set` overrides that give mtapp's default Transformer config these settings."""
        values = {
            "model.type": "transformer",
            "model.d_model": self.d_model,
            "model.heads": self.heads,
            "model.encoder_layers": self.layers,
            "model.decoder_layers": self.layers,
            "model.ffn_dim": self.ffn_dim,
            "model.dropout": self.dropout,
            "model.attention_dropout": self.attention_dropout,
            "loss.label_smoothing": self.label_smoothing,
            "train.lr": self.lr,
            "train.warmup_steps": self.warmup,
            "train.betas": list(self.betas),
            "train.clip_norm": self.clip_norm,
            "train.max_minutes": float(self.minutes),
            "train.max_epochs": 1000,
            "train.patience": 0,
            "train.seed": self.seed,
            "batching.max_tokens": self.max_tokens,
            "decode.beam": self.beam,
            "decode.max_tokens": self.max_tokens,
            "tokenizer.vocab_size": 8000,
            "tokenizer.joint": True,
        }
        return [f"{key}={yaml_value(value)}" for key, value in values.items()]


def yaml_value(value) -> str:
    """A value as YAML reads it back with the same type (`5e-4` would read as a string)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...").strip()
