"""`python -m mtapp.bench claims --minutes N --report DIR`: settle five claims heard in the field
with measurements on Multi30k de->en, each experiment trained for the same wall-clock budget:

  (a) "post-padding trains about 30% faster than pre-padding for RNNs"
  (b) "an LSTM makes zero-padding harmless"
  (c) "packing is faster than padding"
  (d) "bucketing / token batching speeds training up"
  (e) "masking the loss matters"
  (f) "batching concurrent requests raises throughput without hurting latency at low load"
      (from a `python -m mtapp.bench serve` result, given with --serve-json)

Two grids of `bench train` variants: the LSTM config over encoder padding mode x pad side, and
the Transformer config over batching strategies (plus the loss without its pad mask). Writes
DIR/claims.json, DIR/report.md with the verdicts and tables, PNG plots beside it, and DIR/report.html
(one self-contained file).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from mtapp.batching import collate
from mtapp.bench.train import plot_results, results_table, run_variant, variants
from mtapp.checkpoint import load_checkpoint
from mtapp.config import config_from_dict
from mtapp.data import load_split
from mtapp.report.document import Document
from mtapp.train import DEFAULT_CONFIG
from mtapp.translator import Translator

CONFIGS = DEFAULT_CONFIG.parent
LSTM_GRID = ["model.encoder_padding=padded,masked,packed,unrolled", "batching.pad_side=post,pre"]
# Sentence-count strategies get ~4,096 padded slots per side like `tokens`: random batches of
# 112 Multi30k sentences are ~36 subwords wide.
RANDOM = ["batching.strategy=random", "batching.batch_size=112"]
SORTED = ["batching.strategy=sorted", "batching.batch_size=112"]
TOKENS = ["batching.strategy=tokens"]
PACKED = ["batching.strategy=packed_rows"]
UNMASKED = ["loss.mask_padding=false"]
TRANSFORMER_VARIANTS = [RANDOM, SORTED, TOKENS, PACKED, TOKENS + UNMASKED, RANDOM + UNMASKED]


def run_grid(config: Path, grid: list[list[str]], minutes: float, folder: Path) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for i, overrides in enumerate(grid):
        print(f"[{config.stem} {i + 1}/{len(grid)}] {' '.join(overrides)}", flush=True)
        run_dir = folder / f"variant{i:02d}"
        saved = run_dir / "result.json"  # a finished variant is not trained again when the bench reruns
        if saved.exists() and json.loads(saved.read_text())["overrides"] == overrides:
            r = json.loads(saved.read_text())
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            r = {**run_variant(config, overrides, minutes, run_dir), "run_dir": str(run_dir)}
            saved.write_text(json.dumps(r, indent=2))
        results.append(r)
        print(f"    {r['tgt_tokens_per_s']:.0f} target tokens/s, valid loss {r['valid_loss']:.3f}", flush=True)
    return results


def find(results: list[dict], *overrides: str) -> dict:
    """The one variant trained with exactly these overrides (in any order)."""
    matches = [r for r in results if sorted(r["overrides"]) == sorted(overrides)]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} variants match {overrides}")
    return matches[0]


@torch.no_grad()
def state_drift(run_dir: Path, sentences: int = 256) -> dict[str, float]:
    """Mean absolute change of the trained padded-mode LSTM's final encoder states when
    validation sentences are encoded in padded batches instead of one at a time, relative to
    the mean absolute state, for post- and pre-padding."""
    translator = Translator.from_checkpoint(run_dir / "checkpoint_last.pt", device="cpu")
    model, tokenizer = translator.model, translator.tokenizer
    cfg = config_from_dict(load_checkpoint(run_dir / "checkpoint_last.pt")["config"])
    ids = [np.array(s) for s in tokenizer.encode(load_split(cfg.data, cfg.data.valid_split).src[:sentences])]
    alone = torch.cat([model.encode(collate([s], None, [0])).h for s in ids], dim=1)  # (L, N, D)
    drift = {}
    for side in ("post", "pre"):
        chunks = [ids[i : i + 64] for i in range(0, len(ids), 64)]
        batched = torch.cat([model.encode(collate(c, None, range(len(c)), side)).h for c in chunks], dim=1)
        drift[side] = ((batched - alone).abs().mean() / alone.abs().mean()).item()
    return drift


def verdicts(lstm: list[dict], transformer: list[dict], drift: dict[str, float]) -> list[dict]:
    def run(mode: str, side: str) -> dict:
        return find(lstm, f"model.encoder_padding={mode}", f"batching.pad_side={side}")

    def speed(r: dict) -> float:
        return r["tgt_tokens_per_s"]

    rows = []
    gain = {m: speed(run(m, "post")) / speed(run(m, "pre")) - 1 for m in ("padded", "masked")}
    gap = {m: run(m, "pre")["valid_loss"] - run(m, "post")["valid_loss"] for m in ("padded", "masked")}
    rows.append(
        {
            "claim": "(a) post-padding trains ~30% faster than pre-padding for RNNs",
            "verdict": "holds" if min(gain.values()) >= 0.2 else "does not hold here",
            "numbers": f"post vs pre speed: padded {gain['padded']:+.1%}, masked {gain['masked']:+.1%}; valid loss "
            f"pre minus post: padded {gap['padded']:+.3f}, masked {gap['masked']:+.3f}",
        }
    )

    padded = min(run("padded", s)["valid_loss"] for s in ("post", "pre"))
    exact = min(run(m, "post")["valid_loss"] for m in ("masked", "packed"))
    rows.append(
        {
            "claim": "(b) an LSTM makes zero-padding harmless",
            "verdict": "holds" if padded - exact < 0.02 and max(drift.values()) < 0.01 else "does not hold",
            "numbers": f"the trained padded LSTM's final states move by {drift['post']:.1%} (post) / "
            f"{drift['pre']:.1%} (pre) of their size when batched; best valid loss padded {padded:.3f} vs "
            f"masked/packed {exact:.3f}",
        }
    )

    ratio = {s: speed(run("packed", s)) / speed(run("padded", s)) for s in ("post", "pre")}
    verdict = "holds" if min(ratio.values()) > 1.05 else ("no faster" if min(ratio.values()) > 0.95 else "slower")
    rows.append(
        {
            "claim": "(c) packing is faster than padding (CPU)",
            "verdict": verdict,
            "numbers": f"packed / padded LSTM speed: {ratio['post']:.2f}x (post), {ratio['pre']:.2f}x (pre), on "
            f"token-bucketed batches (padding efficiency {run('padded', 'post')['padding_efficiency']:.3f})",
        }
    )

    tok, rand, srt = find(transformer, *TOKENS), find(transformer, *RANDOM), find(transformer, *SORTED)
    rows.append(
        {
            "claim": "(d) bucketing / token batching speeds training up",
            "verdict": "holds" if speed(tok) > 1.2 * speed(rand) else "does not hold",
            "numbers": f"Transformer real target tokens/s: tokens {speed(tok):.0f}, sorted {speed(srt):.0f}, random "
            f"{speed(rand):.0f} ({speed(tok) / speed(rand):.2f}x); valid loss tokens {tok['valid_loss']:.3f}, random "
            f"{rand['valid_loss']:.3f}",
        }
    )

    tok_unmasked, rand_unmasked = find(transformer, *TOKENS, *UNMASKED), find(transformer, *RANDOM, *UNMASKED)
    harm = {
        "tokens": tok["valid_bleu"] - tok_unmasked["valid_bleu"],
        "random": rand["valid_bleu"] - rand_unmasked["valid_bleu"],
    }
    rows.append(
        {
            "claim": "(e) masking the loss matters",
            "verdict": "holds" if max(harm.values()) > 1.0 else "does not hold at this budget",
            "numbers": f"valid BLEU lost without the mask: {harm['random']:+.2f} with random batches (pads "
            f"{1 - rand['padding_efficiency']:.0%} of slots), {harm['tokens']:+.2f} with token batches (pads "
            f"{1 - tok['padding_efficiency']:.0%}); valid loss (random) {rand['valid_loss']:.3f} -> "
            f"{rand_unmasked['valid_loss']:.3f}",
        }
    )
    return rows


def serve_verdict(serve: dict) -> dict:
    """(f), from a `bench serve` payload: at 16 single-sentence clients the best batch window's
    throughput against the serialized server's, and that window's p99 latency at one client
    against the serialized server's (the same requests, one at a time)."""

    def cell(window: str, clients: int) -> dict:
        return next(c for c in serve["cells"] if (c["window"], c["size"], c["concurrency"]) == (window, 1, clients))

    windows = {c["window"] for c in serve["cells"]} - {"serialized"}
    best = max(windows, key=lambda w: cell(w, 16)["sentences_per_s"])
    gain = cell(best, 16)["sentences_per_s"] / cell("serialized", 16)["sentences_per_s"]
    latency = cell(best, 1)["p99_ms"] / cell("serialized", 1)["p99_ms"]
    return {
        "claim": "(f) batching concurrent requests raises throughput without hurting latency at low load",
        "verdict": "holds" if gain >= 2 and latency <= 1.3 else "does not hold",
        "numbers": f"16 single-sentence clients: {gain:.2f}x the serialized server's sentences/s (window {best} ms); "
        f"one client: p99 {cell(best, 1)['p99_ms']:.0f} ms against {cell('serialized', 1)['p99_ms']:.0f} ms "
        f"({latency:.2f}x)",
    }


def plot(lstm: list[dict], transformer: list[dict], folder: Path) -> list[str]:
    return [
        plot_results(results, folder / f"{name}.png", f"{name}: same wall-clock budget per variant")
        for name, results in (("lstm", lstm), ("transformer", transformer))
    ]


def write_report(folder: Path, minutes: float, lstm, transformer, drift, rows, plots) -> None:
    """DIR/report.md beside the plots, and DIR/report.html with the plots embedded."""
    doc = Document("Batching claims, measured")
    doc.paragraph(
        f"Multi30k de->en, {minutes:g} minutes of training per variant, one after another on one machine "
        "(`python -m mtapp.bench claims`). Validation BLEU is greedy."
    )
    doc.table(["claim", "verdict", "numbers"], [[r["claim"], r["verdict"], r["numbers"]] for r in rows])
    doc.heading("LSTM: encoder padding mode x pad side")
    doc.add(results_table(lstm))
    doc.heading("Transformer: batching strategies")
    doc.add(results_table(transformer))
    doc.paragraph(f"Trained padded-mode LSTM, final encoder state drift when batched: {json.dumps(drift)}")
    for name in plots:
        doc.figure(name, name)
    doc.write(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True, help="training budget of each variant")
    p.add_argument("--report", type=Path, required=True, help="folder for the runs, report.md and plots")
    p.add_argument("--serve-json", type=Path, help="a `bench serve` serve.json: adds claim (f)")
    args = p.parse_args(argv)
    args.report.mkdir(parents=True, exist_ok=True)
    lstm = run_grid(CONFIGS / "multi30k_de_en_lstm.yaml", variants(LSTM_GRID), args.minutes, args.report / "lstm")
    transformer = run_grid(DEFAULT_CONFIG, TRANSFORMER_VARIANTS, args.minutes, args.report / "transformer")
    drift = state_drift(Path(find(lstm, "model.encoder_padding=padded", "batching.pad_side=post")["run_dir"]))
    rows = verdicts(lstm, transformer, drift)
    if args.serve_json:
        rows.append(serve_verdict(json.loads(args.serve_json.read_text())))
    plots = plot(lstm, transformer, args.report)
    payload = {"minutes": args.minutes, "lstm": lstm, "transformer": transformer, "drift": drift, "verdicts": rows}
    (args.report / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    write_report(args.report, args.minutes, lstm, transformer, drift, rows, plots)
    for r in rows:
        print(f"{r['claim']}: {r['verdict']} -- {r['numbers']}")
    print(f"report: {args.report / 'report.md'}")
    return 0
