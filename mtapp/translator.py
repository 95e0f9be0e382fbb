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
from mtapp.search import Hypothesis, beam_search_nbest, greedy
from mtapp.sentences import split_sentences
from mtapp.tokenization import Tokenizer

log = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class Scored:
    text: str
    score: float  # log-probability / (output subwords + 1) ** decode.length_penalty (0.0 for an empty line)


class Translator:
    sentences: str | None = None  # split lines into sentences of this language first (`with_sentences`)
    source_lang: str = ""  # the run's source language (data.src_lang)

    def __init__(
        self, model: Seq2Seq, tokenizer: Tokenizer, decode: DecodeConfig, max_source: int, pad_side: str = "post"
    ):
        self.model, self.tokenizer, self.decode = model.eval(), tokenizer, decode
        self.max_source = max_source  # subwords a source may have (the model's position limit)
        self.pad_side = pad_side  # of source batches; the run's batching.pad_side
        self.device = next(model.parameters()).device
        self.dtype = amp_dtype(self.device, decode.amp)  # autocast dtype, None = float32

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
        device_ = select_device(device)
        if quantize not in (None, "int8"):
            raise ConfigError(f"--quantize {quantize}: the torch engine has int8 (dynamic quantization) only")
        if quantize and device_.type != "cpu":
            raise ConfigError("--quantize int8 runs on the CPU (PyTorch's dynamic int8 kernels): add --device cpu")
        content = load_checkpoint(path)  # on the CPU: the tokenizer is read as bytes, the model moved below
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
        model = build_model(cfg.model, tokenizer.vocab_size)
        model.load_state_dict(content["model"])
        if quantize:
            quantize_int8(model)
            decode = replace(decode, amp="off")  # int8 weights, float32 activations: no autocast
        model.to(device_)
        translator = cls(model, tokenizer, decode, cfg.model.max_positions - 1, cfg.batching.pad_side)
        translator.source_lang = cfg.data.src_lang
        return translator

    def with_decode(self, decode: DecodeConfig) -> Translator:
        """This translator (its model shared, not copied) decoding with `decode`, a checked
        DecodeConfig (`config.decode_with`) with this one's amp: the autocast dtype is set once."""
        if decode.amp != self.decode.amp:
            raise ValueError(f"decode.amp {decode.amp} differs from the translator's ({self.decode.amp}): load it anew")
        other = copy.copy(self)
        other.decode = decode
        return other

    def with_sentences(self, split: bool = True) -> Translator:
        """This translator (its model shared) splitting each line into sentences of its source
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
        ids: list[list[int]] | None = None,
    ) -> list[list[Scored]]:
        """Each line's `nbest` (default decode.nbest) best translations with their scores, best
        first; `ids`: the lines' subwords when the caller encoded them already."""
        beam, nbest = beam or self.decode.beam, nbest or self.decode.nbest
        owner, pieces = self.pieces(lines, ids)
        found = self.search_ids(pieces, beam, nbest, progress)
        results: list[list[list[Scored]]] = [[] for _ in lines]  # per line, per piece
        for line, hyps in zip(owner, found):
            texts = self.tokenizer.decode([h.tokens for h in hyps])
            results[line].append(
                [Scored(t, _normalised(h, beam, self.decode.length_penalty)) for t, h in zip(texts, hyps)]
            )
        return [join_pieces(p) if p else [Scored("", 0.0)] for p in results]

    def pieces(self, lines: list[str], ids: list[list[int]] | None = None) -> tuple[list[int], list[list[int]]]:
        """(line of each piece, subword ids of each piece): with `sentences`, one piece per sentence;
        else one per non-blank line that fits the model, several for a longer one (module
        docstring); a blank line has none. `ids`: the lines' subwords, when encoded already."""
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
        encoded = ids if ids is not None else self.tokenizer.encode(lines)
        for i, (line, line_ids) in enumerate(zip(lines, encoded)):
            if not line.strip():
                continue
            parts = [line_ids] if len(line_ids) <= self.max_source else self.split(line)
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
            if out and len(out[-1]) + len(ids) <= self.max_source:
                out[-1] = out[-1] + ids
            else:
                out += self.chunks(ids)
        return out

    def chunks(self, ids: list[int]) -> list[list[int]]:
        """`ids` in chunks of at most `max_source` subwords (one chunk when it fits)."""
        return [ids[i : i + self.max_source] for i in range(0, len(ids), self.max_source)] or [ids]

    def search_ids(self, src: list[list[int]], beam: int, nbest: int, progress: bool) -> list[list[Hypothesis]]:
        lengths = np.array([len(s) for s in src], dtype=np.int64)
        results: list[list[Hypothesis]] = [[] for _ in src]
        batches = inference_batches(lengths, self.decode.max_tokens) if len(src) else []
        for idx in tqdm(batches, desc="translating", unit="batch", disable=not progress, **bar_settings()):
            batch = collate([np.asarray(src[i]) for i in idx], None, idx, self.pad_side).to(self.device)
            for i, hyps in zip(idx.tolist(), self._search(batch, beam, nbest)):
                results[i] = hyps
        return results

    @torch.no_grad()
    def _search(self, batch, beam: int, nbest: int) -> list[list[Hypothesis]]:
        d = self.decode
        with autocast(self.device, self.dtype):
            if beam == 1:
                return [[h] for h in greedy(self.model, batch, d.max_len_a, d.max_len_b, d.min_len)]
            return beam_search_nbest(
                self.model, batch, beam, nbest, d.length_penalty, d.max_len_a, d.max_len_b, d.min_len
            )


def _normalised(hyp: Hypothesis, beam: int, length_penalty: float) -> float:
    """Beam search's score is normalised by length already; greedy's is a plain log-probability."""
    return hyp.score if beam > 1 else hyp.score / (len(hyp.tokens) + 1) ** length_penalty


def join_pieces(pieces: list[list[Scored]]) -> list[Scored]:
    """The k-th hypotheses of a line's pieces joined, for every k all pieces have; the score of
    a joined hypothesis is the mean of its pieces' scores."""
    if len(pieces) == 1:
        return pieces[0]
    ranks = min(len(p) for p in pieces)
    return [
        Scored(" ".join(p[k].text for p in pieces), sum(p[k].score for p in pieces) / len(pieces)) for k in range(ranks)
    ]
