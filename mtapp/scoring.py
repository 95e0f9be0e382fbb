"""Corpus-level sacreBLEU metrics on detokenised text, each with its signature.

BLEU (cased, 13a), chrF and TER as sacrebleu computes them by default; also `bleu_lowercase`,
sacreBLEU with `lowercase=True, tokenize="13a"` (signature `case:lc`), labelled as such, to set
beside published Multi30k figures, which are often lowercased and tokenized. BLEU's brevity
penalty (`bleu_bp`) and length ratio (`bleu_length_ratio`, hypothesis / reference length in 13a
tokens) are given on their own: outputs shorter than the references lower BLEU through them.

Given the target language, `bleu_tok_lc` is BLEU as the Multi30k papers score it: hypotheses and
references tokenized by the Moses tokenizer (sacremoses, no escaping), then lowercased and scored
with no further tokenization (sacreBLEU `case:lc|tok:none`, as multi-bleu.perl -lc). It reads a
few points above cased sacreBLEU and is only for setting mtapp beside published tables; cased
detokenized sacreBLEU is the headline.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER


def score(hypotheses: list[str], references: list[str], lang: str | None = None) -> dict[str, float | str | int]:
    """The metrics of the module docstring; `bleu_tok_lc` too when `lang` (the target language) is given."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    metrics = {"bleu": BLEU(), "chrf": CHRF(), "ter": TER(), "bleu_lowercase": BLEU(lowercase=True, tokenize="13a")}
    result: dict[str, float | str | int] = {"num_sentences": len(hypotheses)}
    for name, metric in metrics.items():
        value = metric.corpus_score(hypotheses, [references])
        result[name] = round(value.score, 2)
        result[f"{name}_signature"] = str(metric.get_signature())
        if name == "bleu":
            result["bleu_bp"] = round(value.bp, 3)
            result["bleu_length_ratio"] = round(value.ratio, 3)
            result["bleu_detail"] = str(value)
    if lang is not None:
        papers = BLEU(lowercase=True, tokenize="none", force=True)  # force: the text is tokenized on purpose
        hyps, refs = moses_tokenized(hypotheses, lang), moses_tokenized(references, lang)
        result["bleu_tok_lc"] = round(papers.corpus_score(hyps, [refs]).score, 2)
        result["bleu_tok_lc_signature"] = f"moses:{lang}|{papers.get_signature()}"
    return result


def moses_tokenized(lines: list[str], lang: str) -> list[str]:
    """`lines` tokenized by the Moses tokenizer for `lang` (no escaping), tokens joined by spaces."""
    from sacremoses import MosesTokenizer  # only here: scoring without it needs no Moses tables

    tokenizer = MosesTokenizer(lang=lang)
    return [tokenizer.tokenize(line, escape=False, return_str=True) for line in lines]
