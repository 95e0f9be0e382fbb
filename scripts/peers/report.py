"""The table of the peers benchmark: every system's figures, mtapp's ratio to each peer and to the best
peer of each column, and the targets of issue #7 (training tokens/s ≥ 1.5× the best peer's,
beam-5 sentences/s ≥ 2×, BLEU ≥; sentences/s also at equal work, every output the same
length) — computed from the JSON payload `peers.main` writes."""

from __future__ import annotations

from mtapp.report.document import markdown_table

TARGETS = (  # (figure, what mtapp must reach relative to the best peer, label)
    ("tgt_tokens_per_s", 1.5, "training: real target tokens/s ≥ 1.5× the best peer's"),
    ("sentences_per_s", 2.0, "translation (beam 5, decoding): sentences/s ≥ 2× the best peer's"),
    ("fixed_sentences_per_s", 2.0, "the same at equal work (every output the same length) ≥ 2×"),
    ("bleu", None, "BLEU after the same budget ≥ the best peer's"),
)
HIGHER_IS_BETTER = {
    "tgt_tokens_per_s": True,
    "sentences_per_s": True,
    "output_pieces_per_s": True,
    "fixed_sentences_per_s": True,
    "bleu": True,
    "peak_rss_mb": False,
}


def utilisation(result: dict, flops_per_token: float, peak_flops: float) -> float:
    """Useful training FLOP/s (real target tokens/s × FLOPs per token) over a matmul peak."""
    return result["tgt_tokens_per_s"] * flops_per_token / peak_flops


def best_peer(peers: list[dict], key: str) -> dict | None:
    """The peer with the best value of `key` (highest, or lowest for memory); None if none has it."""
    have = [p for p in peers if p.get(key) is not None]
    if not have:
        return None
    pick = max if HIGHER_IS_BETTER[key] else min
    return pick(have, key=lambda p: p[key])


def comparison(mtapp: dict, peer: dict, key: str) -> float | None:
    """mtapp ÷ peer (a difference, mtapp − peer, for BLEU); None when either lacks the figure."""
    if mtapp.get(key) is None or peer.get(key) is None:
        return None
    if key == "bleu":
        return mtapp[key] - peer[key]
    return mtapp[key] / peer[key] if peer[key] else None


def targets(systems: list[dict]) -> list[dict]:
    """Each target of issue #7: mtapp's figure, the best peer's, their ratio (BLEU: difference), met?"""
    mtapp = next((s for s in systems if s["system"] == "mtapp" and "error" not in s), None)
    peers = [s for s in systems if not s["system"].startswith("mtapp") and "error" not in s]
    rows = []
    for key, factor, label in TARGETS:
        best = best_peer(peers, key)
        value = None if mtapp is None or best is None else comparison(mtapp, best, key)
        met = None if value is None else (value >= 0 if factor is None else value >= factor)
        rows.append(
            {
                "target": label,
                "key": key,
                "mtapp": None if mtapp is None else mtapp.get(key),
                "best_peer": None if best is None else best["system"],
                "best_value": None if best is None else best[key],
                "comparison": value,
                "met": met,
            }
        )
    return rows


def markdown(payload: dict) -> str:
    systems, m = payload["systems"], payload["machine"]
    s = payload["settings"]
    per_token = payload["flops_per_target_token"]
    lines = [
        f"## mtapp and its peers: Multi30k de→en, {s['minutes']:g} minutes of training each",
        "",
        f"{m['processor']}, {m['cpus']} cores, torch {m['torch']} ({m['threads']} threads); measured matmul peak "
        f"{m['fp32_peak_flops'] / 1e9:.0f} GFLOP/s fp32, {m['bf16_peak_flops'] / 1e9:.0f} GFLOP/s bf16. "
        f"Transformer {s['layers']}+{s['layers']} layers, d_model {s['d_model']}, {s['heads']} heads, "
        f"FFN {s['ffn_dim']}; {per_token / 1e6:.1f} MFLOP of useful training work per real target token. "
        f"{rounds_text(s.get('decode_rounds', 1))}",
        "",
    ]
    columns = [
        "system",
        "precision, intra-op threads",
        "updates",
        "real target tokens/s",
        "its log's tokens/s",
        "peak RSS MB (process / tree)",
        "sentences/s, beam 5 (decoding / command)",
        "output subwords per sentence; per second of decoding",
        equal_work_column(s.get("fixed_length", 0)),
        "BLEU",
        "chrF",
        "MFU: of the peak of the precision that trained (fp32 unless it says bf16)",
    ]
    lines.append(markdown_table(columns, [system_row(r, per_token, m) for r in systems]))
    lines += [ratio_table(systems), target_table(systems)]
    signature = next((r["bleu_signature"] for r in systems if "bleu_signature" in r), None)
    if signature:
        lines.append(f"BLEU: `{signature}`\n")
    return "\n".join(lines)


def rounds_text(rounds: int) -> str:
    if rounds == 1:  # also a payload from before the rounds
        return "Decoding: one round, each system right after its training."
    return (
        f"Decoding: {rounds} rounds after all systems trained, the systems in turn in each round; "
        "each decoding figure is that of the median round."
    )


def equal_work_column(length: int) -> str:
    if not length:  # skipped (--fixed-length 0), or a payload from before the equal-work decode
        return "equal work: not measured"
    return f"equal work: sentences/s, every output {length} subwords (subwords written)"


def system_row(r: dict, per_token: float, machine: dict) -> list[str]:
    name = r.get("version", r["system"])
    name = r["system"] if name == "this checkout" else name
    if "error" in r:
        return [name, f"not measured: {r['error']}"] + [""] * 10
    if r["precision"].startswith("bf16"):  # against the peak of the precision that ran
        mfu = f"{utilisation(r, per_token, machine['bf16_peak_flops']):.1%} of the bf16 peak"
    else:
        mfu = f"{utilisation(r, per_token, machine['fp32_peak_flops']):.1%}"
    return [
        name,
        f"{r['precision']}, {fmt(r.get('threads'), '{:d}')} threads",
        f"{r['updates']:,}",
        f"{r['tgt_tokens_per_s']:,.0f}",
        fmt(r.get("reported_tokens_per_s"), "{:,.0f}"),
        f"{r['peak_rss_mb']:,.0f} / {r['tree_peak_mb']:,.0f}",
        f"{fmt(r['sentences_per_s'], '{:.1f}')} / {r['sentences_per_s_command']:.1f}",
        f"{r['output_pieces_per_sentence']:.1f}; {fmt(r['output_pieces_per_s'], '{:,.0f}')}",
        f"{fmt(r.get('fixed_sentences_per_s'), '{:.1f}')} ({fmt(r.get('fixed_output_pieces_per_sentence'), '{:.1f}')})",
        f"{r['bleu']:.2f}",
        f"{r['chrf']:.2f}",
        mfu,
    ]


def ratio_table(systems: list[dict]) -> str:
    mtapps = [
        s for s in systems if s["system"] != "mtapp-fp32" and s["system"].startswith("mtapp") and "error" not in s
    ]
    peers = [s for s in systems if not s["system"].startswith("mtapp") and "error" not in s]
    if not mtapps or not peers:
        return "(no ratios: mtapp or every peer is missing)\n"
    speeds = ("tgt_tokens_per_s", "sentences_per_s", "output_pieces_per_s", "fixed_sentences_per_s")
    keys = (*speeds, "bleu", "peak_rss_mb")
    rows = []
    for mtapp in mtapps:  # mtapp, and its model decoded by CTranslate2 (same training)
        label = "" if mtapp["system"] == "mtapp" else f" ({mtapp['system']})"
        rows += [[peer["system"] + label, *(ratio_cell(mtapp, peer, k) for k in keys)] for peer in peers]
        cells = []
        for key in keys:
            best = best_peer(peers, key)
            cells.append("–" if best is None else f"{ratio_cell(mtapp, best, key)} ({best['system']})")
        rows.append(["best peer" + label, *cells])
    columns = [
        "mtapp ÷",
        "training tokens/s",
        "translation sentences/s",
        "translation output subwords/s",
        "translation sentences/s at equal work",
        "BLEU (difference)",
        "peak RSS (process)",
    ]
    return markdown_table(columns, rows)


def ratio_cell(mtapp: dict, peer: dict, key: str) -> str:
    value = comparison(mtapp, peer, key)
    return "–" if value is None else comparison_text(value, key)


def comparison_text(value: float, key: str) -> str:
    return f"{value:+.2f}" if key == "bleu" else f"{value:.2f}×"


def target_table(systems: list[dict]) -> str:
    rows = []
    for t in targets(systems):
        shown = "–" if t["comparison"] is None else comparison_text(t["comparison"], t["key"])
        best = "–" if t["best_peer"] is None else f"{fmt(t['best_value'], '{:,.1f}')} ({t['best_peer']})"
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        rows.append([t["target"], fmt(t["mtapp"], "{:,.1f}"), best, shown, met])
    columns = ["issue #7 target", "mtapp", "best peer", "mtapp ÷ best (BLEU: difference)", "met"]
    return markdown_table(columns, rows)


def fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)
