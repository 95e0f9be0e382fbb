"""Text in, text out: a trained model, its tokenizer and decoding settings.

Lines are encoded, sorted into length-bucketed batches within a token budget, searched,
detokenised and put back in input order. Every input line gives exactly one output line;
an empty (or whitespace-only) line gives an empty line.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mtapp.batching import collate
from mtapp.batching.inference import inference_batches
from mtapp.checkpoint import CheckpointError, load_checkpoint, tokenizer_from_tensor
from mtapp.config import DecodeConfig, config_from_dict
from mtapp.models import Seq2Seq, build_model
from mtapp.runtime import amp_dtype, autocast, select_device
from mtapp.search import beam_search, greedy
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)


class Translator:
    def __init__(
        self, model: Seq2Seq, tokenizer: Tokenizer, decode: DecodeConfig, max_source: int, pad_side: str = "post"
    ):
        self.model, self.tokenizer, self.decode = model.eval(), tokenizer, decode
        self.max_source = max_source  # subwords a source may have (the model's position limit)
        self.pad_side = pad_side  # of source batches; the run's batching.pad_side
        self.device = next(model.parameters()).device
        self.dtype = amp_dtype(self.device, decode.amp)  # autocast dtype, None = float32

    @classmethod
    def from_checkpoint(cls, path: Path, device: str = "auto", **decode_overrides) -> Translator:
        device_ = select_device(device)
        content = load_checkpoint(path, map_location=device_)
        missing = [key for key in ("model", "config", "tokenizer") if key not in content]
        if missing:
            raise CheckpointError(f"{path} has no {', '.join(missing)}: it is not a complete mtapp checkpoint")
        cfg = config_from_dict(content["config"])
        tokenizer = Tokenizer(tokenizer_from_tensor(content["tokenizer"]))
        trained_vocab = content["model"]["embed.weight"].shape[0]
        if trained_vocab != tokenizer.vocab_size:
            raise CheckpointError(
                f"{path}: the model was trained with {trained_vocab} vocabulary entries but the checkpoint's "
                f"tokenizer has {tokenizer.vocab_size}; the file was assembled from different runs"
            )
        model = build_model(cfg.model, tokenizer.vocab_size)
        model.load_state_dict(content["model"])
        model.to(device_)
        decode = replace(cfg.decode, **{k: v for k, v in decode_overrides.items() if v is not None})
        return cls(model, tokenizer, decode, cfg.model.max_positions - 1, cfg.batching.pad_side)

    def translate(self, lines: list[str], beam: int | None = None, progress: bool = False) -> list[str]:
        ids = self.tokenizer.encode(lines)
        empty = [not line.strip() for line in lines]
        too_long = sum(len(s) > self.max_source for s in ids)
        if too_long:
            log.warning(
                "%d input line(s) longer than %d subwords were truncated to fit the model",
                too_long,
                self.max_source,
            )
        ids = [s[: self.max_source] for s in ids]
        todo = [i for i, e in enumerate(empty) if not e]
        outputs = self.translate_ids([ids[i] for i in todo], beam, progress)
        texts = [""] * len(lines)
        for i, text in zip(todo, self.tokenizer.decode(outputs)):
            texts[i] = text
        return texts

    def translate_ids(self, src: list[list[int]], beam: int | None = None, progress: bool = False) -> list[list[int]]:
        """Output ids for each source id list (no bos/eos), in input order."""
        beam = beam or self.decode.beam
        lengths = np.array([len(s) for s in src], dtype=np.int64)
        results: list[list[int]] = [[] for _ in src]
        batches = inference_batches(lengths, self.decode.max_tokens) if len(src) else []
        for idx in tqdm(batches, desc="translating", unit="batch", disable=not progress):
            batch = collate([np.asarray(src[i]) for i in idx], None, idx, self.pad_side).to(self.device)
            for i, hyp in zip(idx.tolist(), self._search(batch, beam)):
                results[i] = hyp.tokens
        return results

    @torch.no_grad()
    def _search(self, batch, beam: int):
        d = self.decode
        with autocast(self.device, self.dtype):
            if beam == 1:
                return greedy(self.model, batch, d.max_len_a, d.max_len_b, d.min_len)
            return beam_search(self.model, batch, beam, d.length_penalty, d.max_len_a, d.max_len_b, d.min_len)
