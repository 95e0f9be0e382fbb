"""Text in, text out: a trained model, its tokenizer and decoding settings.

Lines are encoded, sorted into length-bucketed batches within a token budget, searched,
detokenised and put back in input order. Every input line gives exactly one output line (or
`decode.nbest` hypotheses); an empty (or whitespace-only) line gives an empty line.

With `sentences` set (the source language; `with_sentences`), every line is split into its
sentences (`mtapp.sentences`), which are translated like lines of their own and their
translations joined with a space, in order: models are trained on single sentences. Without it
(pre-split corpora, validation) a line is translated whole, unless it is longer than the model's
source limit (its position table): such a line is not truncated but split at sentence ends (.
! ? and their full-width forms, followed by a space) into pieces that fit. Either way a sentence
that alone is too long is cut into chunks of the limit's length in subwords.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from mtapp.batching import collate
from mtapp.batching.inference import inference_batches
from mtapp.checkpoint import CheckpointError, load_checkpoint, tokenizer_from_tensor
from mtapp.config import ConfigError, DecodeConfig, config_from_dict, decode_with
from mtapp.models import Seq2Seq, build_model
from mtapp.models.quantize import int8 as quantize_int8
from mtapp.progress import bar_settings
from mtapp.runtime import amp_dtype, autocast, select_device
from mtapp.search import Hypothesis, beam_search_nbest, greedy, normalised
from mtapp.sentences import split_sentences
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class Scored:
    text: str
    score: float  # `search.normalised` (log-prob / (subwords + 1) ** length_penalty); a line of several
    # pieces: the mean of theirs; a blank line: 0.0


class Searcher(Protocol):
    """What a `Translator` searches with: the torch model (`TorchSearcher`) or a CTranslate2
    engine (`ct2.CTranslate2Searcher`). Each source's hypotheses, best first, with their
    log-probabilities."""

    max_source: int | None  # subwords a source may have, eos excluded (None: no limit)

    def search(
        self, src: list[list[int]], beam: int, nbest: int, decode: DecodeConfig, progress: bool
    ) -> list[list[Hypothesis]]: ...


class TorchSearcher:
    """Search with the torch model: token-budget batches (`inference_batches`), padded on the
    model's side, under autocast in `amp`'s precision."""

    def __init__(self, model: Seq2Seq, amp: str):
        self.model = model.eval()
        self.max_source = model.max_source_tokens
        self.device = next(model.parameters()).device
        self.dtype = amp_dtype(self.device, amp)  # autocast dtype, None = float32

    def search(
        self, src: list[list[int]], beam: int, nbest: int, decode: DecodeConfig, progress: bool
    ) -> list[list[Hypothesis]]:
        lengths = np.array([len(s) for s in src], dtype=np.int64)
        results: list[list[Hypothesis]] = [[] for _ in src]
        batches = inference_batches(lengths, decode.max_tokens) if len(src) else []
        side = self.model.source_pad_side
        for idx in tqdm(batches, desc="translating", unit="batch", disable=not progress, **bar_settings()):
            batch = collate([np.asarray(src[i]) for i in idx], None, idx, side).to(self.device)
            for i, hyps in zip(idx.tolist(), self._search(batch, beam, nbest, decode)):
                results[i] = hyps
        return results

    @torch.no_grad()
    def _search(self, batch, beam: int, nbest: int, d: DecodeConfig) -> list[list[Hypothesis]]:
        with autocast(self.device, self.dtype):
            if beam == 1:
                return [[h] for h in greedy(self.model, batch, d.max_len_a, d.max_len_b, d.min_len)]
            return beam_search_nbest(
                self.model, batch, beam, nbest, d.length_penalty, d.max_len_a, d.max_len_b, d.min_len
            )


class Translator:
    sentences: str | None = None  # split lines into sentences of this language first (`with_sentences`)
    source_lang: str = ""  # the run's source language (data.src_lang)

    def __init__(self, searcher: Searcher, tokenizer: Tokenizer, decode: DecodeConfig):
        self.searcher, self.tokenizer, self.decode = searcher, tokenizer, decode
        self.max_source = searcher.max_source

    @classmethod
    def of_model(cls, model: Seq2Seq, tokenizer: Tokenizer, decode: DecodeConfig) -> Translator:
        """A translator searching with `model` (its limits and pad side are the model's)."""
        return cls(TorchSearcher(model, decode.amp), tokenizer, decode)

    @classmethod
    def from_checkpoint(
        cls,
        path: Path,
        device: str = "auto",
        flags: dict[str, str] | None = None,
        quantize: str | None = None,
        **decode_overrides,
    ) -> Translator:
        """The run's model with its decode settings, `decode_overrides` (None = keep) applied and
        checked as decode.* keys are; errors name an override by `flags[key]` when given.
        `quantize` "int8": dynamic int8 quantization (`models.quantize`; CPU, float32 activations)."""
        return cls.from_content(load_checkpoint(path), path, device, flags, quantize, **decode_overrides)

    @classmethod
    def from_content(
        cls,
        content: dict,
        path: Path,
        device: str = "auto",
        flags: dict[str, str] | None = None,
        quantize: str | None = None,
        **decode_overrides,
    ) -> Translator:
        """`from_checkpoint` of a checkpoint read already (`checkpoint.load_checkpoint(path)`)."""
        device_ = select_device(device)
        if quantize not in (None, "int8"):
            raise ConfigError(f"--quantize {quantize}: the torch engine has int8 (dynamic quantization) only")
        if quantize and device_.type != "cpu":
            raise ConfigError("--quantize int8 runs on the CPU (PyTorch's dynamic int8 kernels): add --device cpu")
        missing = [key for key in ("model", "config", "tokenizer") if key not in content]
        if missing:
            raise CheckpointError(f"{path} has no {', '.join(missing)}: it is not a complete mtapp checkpoint")
        cfg = config_from_dict(content["config"])
        decode = decode_with(cfg.decode, decode_overrides, flags)
        tokenizer = Tokenizer(tokenizer_from_tensor(content["tokenizer"]))
        trained_vocab = content["model"]["embed.weight"].shape[0]
        if trained_vocab != tokenizer.vocab_size:
            raise CheckpointError(
                f"{path}: the model was trained with {trained_vocab} vocabulary entries but the checkpoint's "
                f"tokenizer has {tokenizer.vocab_size}; the file was assembled from different runs"
            )
        model = build_model(cfg.model, tokenizer.vocab_size, cfg.batching.pad_side)
        model.load_state_dict(content["model"])
        if quantize:
            quantize_int8(model)
            decode = replace(decode, amp="off")  # int8 weights, float32 activations: no autocast
        model.to(device_)
        translator = cls.of_model(model, tokenizer, decode)
        translator.source_lang = cfg.data.src_lang
        return translator

    def with_decode(self, decode: DecodeConfig) -> Translator:
        """This translator (its searcher shared, not copied) decoding with `decode`, a checked
        DecodeConfig (`config.decode_with`) with this one's amp: the autocast dtype is set once."""
        if decode.amp != self.decode.amp:
            raise ValueError(f"decode.amp {decode.amp} differs from the translator's ({self.decode.amp}): load it anew")
        other = copy.copy(self)
        other.decode = decode
        return other

    def with_sentences(self, split: bool = True) -> Translator:
        """This translator (its searcher shared) splitting each line into sentences of its source
        language before translating (`split`), or translating lines whole."""
        other = copy.copy(self)
        other.sentences = (self.source_lang or "en") if split else None
        return other

    def translate(self, lines: list[str], beam: int | None = None, progress: bool = False) -> list[str]:
        """The best translation of each line, in input order."""
        return [found[0].text for found in self.translate_nbest(lines, beam, 1, progress)]

    def translate_nbest(
        self,
        lines: list[str],
        beam: int | None = None,
        nbest: int | None = None,
        progress: bool = False,
        prepared: tuple[list[int], list[list[int]]] | None = None,
    ) -> list[list[Scored]]:
        """Each line's `nbest` (default decode.nbest) best translations with their scores, best
        first; `prepared`: the lines' `pieces`, when the caller made them already."""
        beam, nbest = beam or self.decode.beam, nbest or self.decode.nbest
        owner, pieces = prepared or self.pieces(lines)
        found = self.search_ids(pieces, beam, nbest, progress)
        results: list[list[list[Scored]]] = [[] for _ in lines]  # per line, per piece
        penalty = self.decode.length_penalty
        for line, hyps in zip(owner, found):
            texts = self.tokenizer.decode([h.tokens for h in hyps])
            results[line].append([Scored(t, normalised(h, penalty)) for t, h in zip(texts, hyps)])
        return [join_pieces(p) if p else [Scored("", 0.0)] for p in results]

    def search_ids(self, src: list[list[int]], beam: int, nbest: int, progress: bool = False) -> list[list[Hypothesis]]:
        """Each source's hypotheses (subword ids in), best first (`Searcher.search`)."""
        return self.searcher.search(src, beam, nbest, self.decode, progress)

    def fits(self, ids: list[int]) -> bool:
        return self.max_source is None or len(ids) <= self.max_source

    def pieces(self, lines: list[str]) -> tuple[list[int], list[list[int]]]:
        """(line of each piece, subword ids of each piece): with `sentences`, one piece per sentence;
        else one per non-blank line that fits the model, several for a longer one (module
        docstring); a blank line has none."""
        owner, pieces, split = [], [], 0
        if self.sentences:
            sentences = [(i, s) for i, line in enumerate(lines) for s in split_sentences(line, self.sentences)]
            for (i, _), ids_ in zip(sentences, self.tokenizer.encode([s for _, s in sentences])):  # one call
                parts = self.chunks(ids_)
                split += len(parts) > 1
                owner += [i] * len(parts)
                pieces += parts
            self._warn_split(split, "sentence(s)")
            return owner, pieces
        for i, (line, line_ids) in enumerate(zip(lines, self.tokenizer.encode(lines))):
            if not line.strip():
                continue
            parts = [line_ids] if self.fits(line_ids) else self.split(line)
            split += len(parts) > 1
            owner += [i] * len(parts)
            pieces += parts
        self._warn_split(split, "input line(s)")
        return owner, pieces

    def _warn_split(self, split: int, what: str) -> None:
        if split:
            log.warning(
                "%d %s longer than the model's limit of %d subwords were split at sentence ends "
                "(or into %d-subword chunks), translated in pieces and joined",
                split,
                what,
                self.max_source,
                self.max_source,
            )

    def split(self, line: str) -> list[list[int]]:
        """Pieces of at most `max_source` subwords: whole sentences where they fit, joined
        greedily; a longer sentence in chunks of `max_source` subwords."""
        out: list[list[int]] = []
        for ids in self.tokenizer.encode(SENTENCE_END.split(line.strip())):
            if out and self.fits(out[-1] + ids):
                out[-1] = out[-1] + ids
            else:
                out += self.chunks(ids)
        return out

    def chunks(self, ids: list[int]) -> list[list[int]]:
        """`ids` in chunks of at most `max_source` subwords (one chunk when it fits)."""
        if self.fits(ids):
            return [ids]
        return [ids[i : i + self.max_source] for i in range(0, len(ids), self.max_source)]


def join_pieces(pieces: list[list[Scored]]) -> list[Scored]:
    """The k-th hypotheses of a line's pieces joined, for every k all pieces have; the score of
    a joined hypothesis is the mean of its pieces' scores."""
    if len(pieces) == 1:
        return pieces[0]
    ranks = min(len(p) for p in pieces)
    return [
        Scored(" ".join(p[k].text for p in pieces), sum(p[k].score for p in pieces) / len(pieces)) for k in range(ranks)
    ]
