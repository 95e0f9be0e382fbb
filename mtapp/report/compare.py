"""The report on runs' translations of a test set: one run, or several with the first the baseline.

`compare(...)` computes every figure (returned as a JSON-ready dict) and `document(...)` lays
them out as a `Document`: scores by split (when several are given), systems and scores,
significance (several runs only), length buckets, training curves, batching settings and sample
translations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mtapp.report import analysis, plots
from mtapp.report.document import Document
from mtapp.report.runs import Run, training_curves, training_summary
from mtapp.scoring import score


@dataclass(frozen=True)
class Options:
    seed: int = 12345  # sacrebleu's default bootstrap seed
    resamples: int = 1000
    bounds: tuple[int, ...] = (10, 15, 20, 25)  # source-length bucket upper bounds, in words
    samples: int = 3  # sentences shown for each of best / median / worst
    command: str = ""  # the command line that made the report


def compare(runs: list[Run], split: str, sources: list[str], references: list[str], options: Options) -> dict:
    """Every number of the report, keyed by section; "significance" is None for a single run."""
    systems = {run.name: run.hypotheses for run in runs}
    buckets = analysis.length_buckets(sources, list(options.bounds))
    chrf = {name: analysis.sentence_chrf(hyps, references) for name, hyps in systems.items()}
    return {
        "split": split,
        "sentences": len(references),
        "systems": [system_record(run) | {"scores": score(run.hypotheses, references)} for run in runs],
        "significance": significance(runs, references, options),
        "buckets": analysis.bucket_scores(buckets, systems, references),
        "samples": sample_records(sources, references, systems, chrf, options.samples),
        "command": options.command,
    }


def significance(runs: list[Run], references: list[str], options: Options) -> dict | None:
    """Paired bootstrap of every run against the first; None for one run (nothing to compare)."""
    if len(runs) < 2:
        return None
    systems = {run.name: run.hypotheses for run in runs}
    signatures, rows = analysis.paired_bootstrap(systems, references, options.seed, options.resamples)
    for row, run in zip(rows[1:], runs[1:]):
        row["identical_to_baseline"] = run.hypotheses == runs[0].hypotheses
    return {"seed": options.seed, "resamples": options.resamples, "signatures": signatures, "rows": rows}


def split_scores(loaded: dict[str, tuple[list[Run], list[str]]]) -> dict:
    """Each run's scores on each split: {"names": splits, "systems": [{"name", "scores": {split: ...}}]}.
    `loaded` maps a split to (its runs, its references)."""
    splits = list(loaded)
    names = [run.name for run in loaded[splits[0]][0]]
    scores = {split: {run.name: score(run.hypotheses, refs) for run in runs} for split, (runs, refs) in loaded.items()}
    return {"names": splits, "systems": [{"name": n, "scores": {s: scores[s][n] for s in splits}} for n in names]}


def system_record(run: Run) -> dict:
    """What a run is: path, model, decoding and batching settings, training figures."""
    e, d, b = run.evaluation, run.config.decode, run.config.batching
    return {
        "name": run.name,
        "path": str(run.path),
        "model": run.config.model.type,
        "decoding": {
            "beam": e.get("beam", d.beam),
            "length_penalty": e.get("length_penalty", d.length_penalty),
            "max_len_a": e.get("max_len_a", d.max_len_a),
            "max_len_b": e.get("max_len_b", d.max_len_b),
            "min_len": e.get("min_len", d.min_len),
            "translate_seconds": e.get("translate_seconds"),
            "sentences_per_second": e.get("sentences_per_second"),
        },
        "batching": {
            "strategy": b.strategy,
            "max_tokens": b.max_tokens,
            "batch_size": b.batch_size,
            "row_tokens": b.row_tokens,
            "pad_side": b.pad_side,
            "encoder_padding": run.config.model.encoder_padding,
        },
        "training": training_summary(run.records),
        "curves": dict(zip(("train", "valid"), ([asdict(p) for p in ps] for ps in training_curves(run.records)))),
    }


def sample_records(sources, references, systems: dict[str, list[str]], chrf: dict, n: int) -> dict:
    """Best, median and worst sentences by the baseline's sentence chrF, with every system's output."""
    baseline = next(iter(systems))
    picked = analysis.pick_samples(chrf[baseline], n)
    return {
        which: [
            {
                "line": i + 1,
                "source": sources[i],
                "reference": references[i],
                "outputs": {name: {"text": hyps[i], "chrf": chrf[name][i]} for name, hyps in systems.items()},
            }
            for i in indices
        ]
        for which, indices in picked.items()
    }


# ---- layout -------------------------------------------------------------------------------------


def document(result: dict, folder: Path) -> Document:
    """The report laid out; its PNG figures are written into `folder`."""
    names = [s["name"] for s in result["systems"]]
    splits = result["splits"]["names"] if "splits" in result else [result["split"]]
    doc = Document(f"Translation report: {', '.join(names)} on {', '.join(splits)}")
    baseline = f"; the baseline is **{names[0]}**" if len(names) > 1 else ""
    doc.paragraph(
        f"{result['sentences']} test sentences of `{result['split']}`{baseline}. "
        "Scores are corpus-level sacreBLEU on detokenised output, computed here from each run's "
        "`eval/<split>.hyp`."
    )
    if result["command"]:
        doc.paragraph("Regenerate with:")
        doc.code(result["command"])
    if "splits" in result:
        splits_section(doc, result)
    systems_section(doc, result)
    if result["significance"]:
        significance_section(doc, result)
    buckets_section(doc, result, folder)
    curves_section(doc, result, folder)
    batching_section(doc, result)
    samples_section(doc, result)
    return doc


def splits_section(doc: Document, result: dict) -> None:
    table = result["splits"]
    doc.heading("Scores by test split")
    doc.paragraph(
        "Corpus BLEU / chrF of each system on each test split, then BLEU on lowercased text (sacreBLEU "
        "`lowercase=True`, 13a tokenization) to set beside published lowercased figures. The sections "
        f"below are on `{result['split']}`."
    )
    for label, cell in (
        ("BLEU / chrF", lambda sc: f"{sc['bleu']:.2f} / {sc['chrf']:.2f}"),
        ("BLEU (lowercased)", lambda sc: f"{sc['bleu_lowercase']:.2f}"),
    ):
        rows = [[s["name"], *(cell(s["scores"][split]) for split in table["names"])] for s in table["systems"]]
        doc.table(["system", *(f"{split} {label}" for split in table["names"])], rows)


def systems_section(doc: Document, result: dict) -> None:
    doc.heading("Systems")
    rows = []
    for s in result["systems"]:
        sc, d, t = s["scores"], s["decoding"], s["training"]
        rows.append(
            [
                s["name"],
                s["model"],
                f"{sc['bleu']:.2f}",
                f"{sc['chrf']:.2f}",
                f"{sc['ter']:.2f}",
                f"{sc['bleu_lowercase']:.2f}",
                decoding_text(d),
                _seconds(d),
                *_training_cells(t),
            ]
        )
    columns = ["system", "model", "BLEU", "chrF", "TER", "BLEU (lowercased)", "decoding", "test translation"]
    columns += ["training (min)", "epochs", "updates", "real target tokens/s", "best valid BLEU (greedy)"]
    doc.table(columns, rows)
    sc = result["systems"][0]["scores"]
    doc.paragraph("Signatures (the same sacrebleu settings for every system):")
    metrics = (("BLEU", "bleu"), ("chrF", "chrf"), ("TER", "ter"), ("BLEU (lowercased)", "bleu_lowercase"))
    doc.table(["metric", "signature"], [[label, sc[f"{key}_signature"]] for label, key in metrics])


def decoding_text(d: dict) -> str:
    """A run's search settings, e.g. "beam 5, length penalty 1, max 1.5·n+10" (", min 20" if set)."""
    text = f"beam {d['beam']}, length penalty {d['length_penalty']:g}, max {d['max_len_a']:g}·n+{d['max_len_b']}"
    return text + (f", min {d['min_len']}" if d["min_len"] else "")


def _seconds(decoding: dict) -> str:
    if decoding["translate_seconds"] is None:
        return "-"
    return f"{decoding['translate_seconds']:.1f} s ({decoding['sentences_per_second']:.1f} sentences/s)"


def _training_cells(t: dict) -> list[str]:
    if not t["epochs"]:
        return ["-"] * 5
    return [
        f"{t['minutes']:.1f}",
        str(t["epochs"]),
        f"{t['updates']:,}",
        f"{t['tgt_tokens_per_s']:,.0f}",
        f"{t['best_valid_bleu']:.2f}",
    ]


def significance_section(doc: Document, result: dict) -> None:
    sig = result["significance"]
    doc.heading("Significance against the baseline")
    doc.paragraph(
        f"sacreBLEU's paired bootstrap resampling ({sig['resamples']} resamples, seed {sig['seed']}; "
        "`sacrebleu --paired-bs`). Each cell: the score, the bootstrap mean ± the half-width of its 95% "
        "confidence interval, and the p-value of the difference from the baseline."
    )
    rows = []
    for row in sig["rows"]:
        cells = [row["name"]]
        for key in analysis.METRICS:
            r = row[key]
            p = "baseline" if r["p"] is None else f"p = {r['p']:.4f}" + (" *" if r["p"] < 0.05 else "")
            cells.append(f"{r['score']:.2f} (μ = {r['mean']:.2f} ± {r['ci']:.2f}) {p}")
        rows.append(cells)
    doc.table(["system", "BLEU", "chrF", "TER"], rows)
    for row in sig["rows"][1:]:
        if row["identical_to_baseline"]:
            doc.paragraph(
                f"**{row['name']}**'s output is identical to the baseline's: there is no difference to test, "
                "although sacrebleu's paired bootstrap then reports its smallest p-value, 1 / (resamples + 1)."
            )
    doc.paragraph("`*`: the difference from the baseline is significant at p < 0.05. Signatures of the test:")
    doc.table(["metric", "signature"], [[k, v] for k, v in sig["signatures"].items()])


def buckets_section(doc: Document, result: dict, folder: Path) -> None:
    names = [s["name"] for s in result["systems"]]
    doc.heading("By source length")
    doc.paragraph(
        "Test sentences grouped by the number of whitespace-separated words in the source; corpus BLEU "
        "and chrF of each system on each group."
    )
    rows = []
    for r in result["buckets"]:
        scores = [f"{r['scores'][n]['bleu']:.2f} / {r['scores'][n]['chrf']:.2f}" for n in names]
        rows.append([r["bucket"], r["sentences"], *scores])
    doc.table(["source words", "sentences", *(f"{n} BLEU / chrF" for n in names)], rows)
    doc.figure(plots.bucket_plot(result["buckets"], names, folder / "length_buckets.png"), "BLEU and chrF by length")


def curves_section(doc: Document, result: dict, folder: Path) -> None:
    doc.heading("Training curves")
    doc.paragraph(
        "From each run's `log.jsonl`: training loss every `train.log_every` updates (its wall-clock time "
        "interpolated within the epoch), validation loss and greedy validation BLEU at each epoch's end "
        "(and validation loss every `train.valid_every_minutes`). Losses are label-smoothed cross-entropy "
        "per real target token."
    )
    curves = {s["name"]: s["curves"] for s in result["systems"]}
    doc.figure(plots.curves_plot(curves, folder / "training_curves.png"), "Training curves")


def batching_section(doc: Document, result: dict) -> None:
    doc.heading("Batching and padding")
    rows = []
    for s in result["systems"]:
        b, t, sc = s["batching"], s["training"], s["scores"]
        size = f"{b['max_tokens']} tokens" if b["strategy"] in ("tokens", "packed_rows") else f"{b['batch_size']}"
        if b["strategy"] == "packed_rows":
            size += f", rows of {b['row_tokens']}"
        efficiency = (
            f"{t['padding_efficiency']:.3f} ({t['src_padding_efficiency']:.3f} / {t['tgt_padding_efficiency']:.3f})"
            if t["epochs"]
            else "-"
        )
        speed = f"{t['tgt_tokens_per_s']:,.0f}" if t["epochs"] else "-"
        encoder = b["encoder_padding"] if s["model"] != "transformer" else "-"
        rows.append([s["name"], b["strategy"], size, b["pad_side"], encoder, efficiency, speed])
        rows[-1] += [f"{sc['bleu']:.2f}", f"{sc['chrf']:.2f}"]
    columns = ["system", "strategy", "batch", "pad side", "encoder padding", "padding efficiency (source / target)"]
    doc.table(columns + ["real target tokens/s", "BLEU", "chrF"], rows)
    doc.paragraph(
        "Padding efficiency: real tokens / padded slots of the training batches, averaged over epochs "
        "weighted by target tokens."
    )


def samples_section(doc: Document, result: dict) -> None:
    doc.heading("Sample translations")
    baseline = result["systems"][0]["name"]
    doc.paragraph(f"The best, median and worst test sentences by {baseline}'s sentence-level chrF.")
    for which, samples in result["samples"].items():
        doc.heading(f"{which.capitalize()} by {baseline}'s chrF", 3)
        for s in samples:
            rows = [["source", s["source"], ""], ["reference", s["reference"], ""]]
            rows += [[name, o["text"], f"{o['chrf']:.1f}"] for name, o in s["outputs"].items()]
            doc.paragraph(f"Line {s['line']}:")
            doc.table(["", "text", "chrF"], rows)
