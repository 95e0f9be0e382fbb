"""Corpus-level sacreBLEU metrics on detokenised text, each with its signature.

BLEU (cased, 13a), chrF and TER as sacrebleu computes them by default; also `bleu_lowercase`,
sacreBLEU with `lowercase=True, tokenize="13a"` (signature `case:lc`), labelled as such, to set
beside published Multi30k figures, which are often lowercased and tokenized. BLEU's brevity
penalty (`bleu_bp`) and length ratio (`bleu_length_ratio`, hypothesis / reference length in 13a
tokens) are given on their own: outputs shorter than the references lower BLEU through them.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER


def score(hypotheses: list[str], references: list[str]) -> dict[str, float | str | int]:
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
    return result
