"""CTranslate2: a trained Transformer converted into the inference engine's format, and translation
with the converted model under the same contract and decode settings as the torch engine.

An exported folder holds the CTranslate2 model (model.bin, config.json, shared_vocabulary.json),
the run's SentencePiece model (spm.model) and `mtapp.json` (the run's config, hence its decode
settings, and how the folder was made): the folder alone can translate.

The conversion maps mtapp's pre-norm Transformer onto `ctranslate2.specs.TransformerSpec`:
self-attention [q; kv] fused into CTranslate2's [q; k; v], cross-attention q and kv as they are,
one embedding table for source, target and output projection, mtapp's own sinusoid table (sin
and cos interleaved, positions from 0; CTranslate2's built-in table differs), source eos added,
`<s>` as the decoder start, PyTorch's layer-norm epsilon (1e-5). LSTM and hybrid models have no
CTranslate2 form (it has no recurrent layers).

Decoding matches mtapp's search: the length penalty counts the end token (`return_end_token`);
the output limit a * source length + b is per sentence, while CTranslate2's `max_decoding_length`
is per call and counts the end token: a batch is decoded with its largest limit, and a sentence
whose hypotheses break its own limit is decoded again alone with it (a call per limit halved the
speed in a one-off measurement, session 9: 12.1 against 6.0 s for test_2016_flickr, int8). One case is not caught: mtapp
makes a beam that reaches its limit end there, and that ended beam may win, where CTranslate2,
running to the batch's larger limit, continues it and may return another hypothesis within the
limit; it needs a beam still alive after a * source + b subwords. `min_len` counts subwords
before the end token, as `min_decoding_length` does;
CTranslate2's silent truncation of long inputs is off (lines that do not fit are split before,
as `Translator` does). In float32 both engines give the same hypotheses (tests/test_export.py).
"""

from __future__ import annotations

import functools
import json
import os
from itertools import groupby
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mtapp.batching.inference import inference_batches
from mtapp.checkpoint import CheckpointError, load_checkpoint, tokenizer_from_tensor
from mtapp.config import Config, DecodeConfig, config_from_dict, decode_with
from mtapp.models import build_model
from mtapp.models.transformer import sinusoids
from mtapp.progress import bar_settings
from mtapp.runtime import missing_extra
from mtapp.search import Hypothesis
from mtapp.specials import EOS, model_limits
from mtapp.tokenization import Tokenizer
from mtapp.translator import Translator

EXPORT_FILE = "mtapp.json"
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float16", "bfloat16", "float32")
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, which mtapp's layers use


class ExportError(ValueError):
    """A run cannot be exported, or a folder is not an export."""


def _layer_norm(spec, norm) -> None:
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _linear(spec, *layers) -> None:
    """`spec` = the rows of `layers` stacked (one layer: itself)."""
    spec.weight = np.concatenate([_array(layer.weight) for layer in layers])
    spec.bias = np.concatenate([_array(layer.bias) for layer in layers])


def _array(parameter) -> np.ndarray:
    return parameter.detach().cpu().float().numpy()


def _ctranslate2(needs: str):
    """The ctranslate2 module, or an ExportError saying how to install it."""
    try:
        import ctranslate2
    except ModuleNotFoundError as e:
        raise ExportError(missing_extra("engines", e, needs)) from None
    return ctranslate2


def transformer_spec(model, cfg: Config, tokenizer: Tokenizer):
    """The CTranslate2 spec of an mtapp Transformer (float32 weights; quantized when saved)."""
    ctranslate2 = _ctranslate2("exporting to CTranslate2")

    m = cfg.model
    spec = ctranslate2.specs.TransformerSpec.from_config((m.encoder_layers, m.decoder_layers), m.heads, pre_norm=True)
    model = model.float().eval()
    embed, table = _array(model.embed.weight), sinusoids(m.max_positions, m.d_model).numpy()
    spec.encoder.embeddings[0].weight = embed
    spec.decoder.embeddings.weight = embed
    spec.decoder.projection.weight = embed  # tied output embedding, no bias
    for side in (spec.encoder, spec.decoder):
        side.scale_embeddings = True  # embeddings * sqrt(d_model), as mtapp
        side.position_encodings.encodings = table
    for layer_spec, layer in zip(spec.encoder.layer, model.encoder):
        _layer_norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _linear(layer_spec.self_attention.linear[0], layer.attn.q, layer.attn.kv)
        _linear(layer_spec.self_attention.linear[1], layer.attn.out)
        _ffn(layer_spec.ffn, layer.norm2, layer.ffn)
    for layer_spec, layer in zip(spec.decoder.layer, model.decoder):
        _layer_norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.q, layer.self_attn.kv)
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.out)
        _layer_norm(layer_spec.attention.layer_norm, layer.norm2)
        _linear(layer_spec.attention.linear[0], layer.cross_attn.q)
        _linear(layer_spec.attention.linear[1], layer.cross_attn.kv)
        _linear(layer_spec.attention.linear[2], layer.cross_attn.out)
        _ffn(layer_spec.ffn, layer.norm3, layer.ffn)
    _layer_norm(spec.encoder.layer_norm, model.encoder_norm)
    _layer_norm(spec.decoder.layer_norm, model.decoder_norm)
    vocabulary = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.config.add_source_eos = True
    spec.config.decoder_start_token = "<s>"
    spec.config.layer_norm_epsilon = LAYER_NORM_EPSILON
    return spec


def _ffn(spec, norm, ffn) -> None:
    _layer_norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ffn[0])
    _linear(spec.linear_1, ffn[3])


def export(checkpoint: Path, out: Path, quantization: str = "float32", force: bool = False) -> Path:
    """Convert a Transformer checkpoint into an exported folder `out` (module docstring)."""
    ctranslate2 = _ctranslate2("python -m mtapp.export")

    content = load_checkpoint(checkpoint)
    for key in ("model", "config", "tokenizer"):
        if key not in content:
            raise CheckpointError(f"{checkpoint} has no {key}: it is not a complete mtapp checkpoint")
    cfg = config_from_dict(content["config"])
    if cfg.model.type != "transformer":
        raise ExportError(
            f"{checkpoint}: model.type is {cfg.model.type}; CTranslate2 has no recurrent layers, so only Transformer "
            "runs can be exported. Translate it with the torch engine instead, int8 included: "
            "python -m mtapp.translate --run RUN --quantize int8"
        )
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"--quantize {quantization}: choose one of {', '.join(QUANTIZATIONS)}")
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} exists and is not empty: choose another --out, or pass --force to replace it")
    tokenizer = Tokenizer(tokenizer_from_tensor(content["tokenizer"]))
    model = build_model(cfg.model, tokenizer.vocab_size)
    model.load_state_dict(content["model"])
    spec = transformer_spec(model, cfg, tokenizer)

    class _FromMtapp(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    _FromMtapp().convert(str(out), quantization=quantization, force=True)
    tokenizer.save(out / "spm.model")
    about = {"format": "ctranslate2", "quantization": quantization, "ctranslate2": ctranslate2.__version__}
    about |= {"checkpoint": str(checkpoint), "config": cfg.to_dict()}
    (out / EXPORT_FILE).write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    return out


def is_export(folder: Path) -> bool:
    return (folder / EXPORT_FILE).is_file()


def export_config(folder: Path) -> Config:
    """The run's config, as the exported folder keeps it."""
    try:
        about = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{folder / EXPORT_FILE} cannot be read ({e}): export the run again") from None
    return config_from_dict(about["config"])


def load_export(
    folder: Path,
    device: str = "auto",
    compute_type: str = "default",
    flags: dict[str, str] | None = None,
    config: Config | None = None,
    **decode_overrides,
) -> Translator:
    """A `Translator` searching with the exported model in CTranslate2, with its run's decode
    settings (`decode_overrides` applied, checked as decode.* keys); `compute_type` as
    CTranslate2 takes it (default: as exported); `config`: the folder's (`export_config`), when
    read already."""
    ctranslate2 = _ctranslate2("the ctranslate2 engine (--engine ctranslate2)")

    cfg = config or export_config(folder)
    decode = decode_with(cfg.decode, decode_overrides, flags)
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    engine = ctranslate2.Translator(
        str(folder), device=device, compute_type=compute_type, inter_threads=1, intra_threads=threads
    )
    tokenizer = Tokenizer.load(folder / "spm.model")
    limits = model_limits(cfg.model.type, cfg.model.max_positions)
    translator = Translator(CTranslate2Searcher(engine, tokenizer, *limits), tokenizer, decode)
    translator.source_lang = cfg.data.src_lang
    return translator


class CTranslate2Searcher:
    """`translator.Searcher` in CTranslate2: the exported model's engine, its subword pieces, and
    the limits of the model it was exported from."""

    def __init__(self, engine, tokenizer: Tokenizer, max_source: int | None, max_output: int | None):
        self.engine, self.max_source, self.max_output = engine, max_source, max_output
        self.pieces_of = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
        self.ids_of = {piece: i for i, piece in enumerate(self.pieces_of)}

    def search(
        self, src: list[list[int]], beam: int, nbest: int, decode: DecodeConfig, progress: bool
    ) -> list[list[Hypothesis]]:
        """Token-budget batches as the torch engine's, one CTranslate2 call each with the batch's
        largest limit; a sentence whose hypotheses break its own limits (longer than its output
        limit, or shorter than its min_len) is searched again in a call of its limit alone."""
        lengths = np.array([len(s) for s in src], dtype=np.int64)
        results: list[list[Hypothesis]] = [[] for _ in src]
        batches = inference_batches(lengths, decode.max_tokens) if len(src) else []  # as the torch engine's
        limit_of = functools.partial(self.limit, decode=decode)
        for idx in tqdm(batches, desc="translating", unit="batch", disable=not progress, **bar_settings()):
            idx = idx.tolist()
            limits = [limit_of(len(src[i])) for i in idx]
            found = self._search([src[i] for i in idx], beam, nbest, decode, max(limits), min(limits))
            again = []
            for i, limit, hyps in zip(idx, limits, found):
                shortest = min(decode.min_len, limit)
                if all(shortest <= len(h.tokens) <= limit for h in hyps):
                    results[i] = hyps
                else:
                    again.append(i)
            for limit, run in groupby(sorted(again, key=lambda i: len(src[i])), key=lambda i: limit_of(len(src[i]))):
                run = list(run)
                for i, hyps in zip(run, self._search([src[i] for i in run], beam, nbest, decode, limit, limit)):
                    results[i] = hyps
        return results

    def _search(
        self, src: list[list[int]], beam: int, nbest: int, d: DecodeConfig, limit: int, lowest: int
    ) -> list[list[Hypothesis]]:
        """One call: outputs of at most `limit` subwords, min_len as for a sentence whose limit is `lowest`."""
        penalty = d.length_penalty if beam > 1 else 0.0  # greedy: plain log-probabilities
        found = self.engine.translate_batch(
            [[self.pieces_of[t] for t in s] for s in src],
            beam_size=beam,
            num_hypotheses=nbest,
            length_penalty=penalty,
            return_end_token=True,  # the length penalty counts it, as mtapp's does
            max_decoding_length=limit + 1,  # + 1: the end token
            min_decoding_length=min(d.min_len, lowest),  # subwords before the end token may come
            max_input_length=0,  # no truncation: long lines were split before
            return_scores=True,
        )
        return [[self.hypothesis(h, s, limit, penalty) for h, s in zip(r.hypotheses, r.scores)] for r in found]

    def limit(self, length: int, decode: DecodeConfig) -> int:
        """Most output subwords (end token excluded) for a source of `length` subwords (eos excluded)."""
        limit = int(decode.max_len_a * length + decode.max_len_b)
        return limit if self.max_output is None else min(limit, self.max_output)

    def hypothesis(self, pieces: list[str], score: float, limit: int, penalty: float) -> Hypothesis:
        """Without the end token; one that reached its limit without it (CTranslate2 stops there,
        where mtapp's search makes it end) keeps `limit` subwords. `score` is normalised by the
        length (end token counted) ** `penalty`, as `search.normalised` does: undone here."""
        ids = [self.ids_of[p] for p in pieces]
        tokens = ids[: ids.index(EOS)] if EOS in ids else ids[:limit]
        return Hypothesis(tokens, score * len(ids) ** penalty)

    def score_ids(self, src: list[list[int]], tgt: list[list[int]]) -> list[list[float]]:
        """Teacher-forced log-probabilities of each target subword and of the end token."""
        found = self.engine.score_batch(
            [[self.pieces_of[t] for t in s] for s in src], [[self.pieces_of[t] for t in t_] for t_ in tgt]
        )
        return [list(r.log_probs) for r in found]
