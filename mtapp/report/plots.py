"""PNG plots with matplotlib's Agg backend: shared helpers (used by the bench reports too) and
the comparison report's length-bucket and training-curve figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (PNG files, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, title: str | None = None) -> str:
    """Write the figure as a PNG and close it; returns the file name (for the report)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path.name


def bars(ax, names: list[str], values: list[float], title: str, errors: list[float] | None = None) -> None:
    """One bar per name, names as slanted tick labels; `errors`: symmetric error bars (half-widths)."""
    ax.bar(range(len(values)), values, color="tab:blue", yerr=errors, capsize=3 if errors else 0)
    ax.set_xticks(range(len(values)), names, rotation=35, ha="right", fontsize=8)
    ax.set_title(title)


def grouped_bars(ax, groups: list[str], series: dict[str, list[float]], title: str) -> None:
    """For each group, one bar per series side by side, with a legend of the series."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_title(title)
    top = max((max(v, default=0) for v in series.values()), default=0)
    ax.set_ylim(0, top * 1.18 or 1)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=len(series), loc="upper center")


def bucket_plot(rows: list[dict], systems: list[str], path: Path) -> str:
    """Corpus BLEU and chrF per source-length bucket, one bar per system; counts under the labels."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = [f"{r['bucket']}\n({r['sentences']})" for r in rows]
    for ax, metric, name in zip(axes, ("bleu", "chrf"), ("BLEU", "chrF")):
        series = {s: [r["scores"][s][metric] for r in rows] for s in systems}
        grouped_bars(ax, groups, series, f"{name} by source length")
        ax.set_xlabel("source words (sentences)")
    return save(fig, path)


def curves_plot(curves: dict[str, dict[str, list[dict]]], path: Path) -> str:
    """Training loss (solid), validation loss (dashed) and validation BLEU per system, against
    wall-clock minutes (top row) and real target tokens seen (bottom row). `curves` maps a system
    to {"train": points, "valid": points}, each point a dict with seconds, tokens, loss, bleu."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    axis = (("seconds", 1 / 60, "wall-clock minutes"), ("tokens", 1e-6, "real target tokens seen (millions)"))
    for k, (name, points) in enumerate(curves.items()):
        scored = [p for p in points["valid"] if p["bleu"] is not None]
        for (loss, bleu), (key, scale, label) in zip(axes, axis):

            def xy(ps: list[dict], y: str) -> tuple[list[float], list[float]]:
                return [p[key] * scale for p in ps], [p[y] for p in ps]  # noqa: B023 (used at once)

            loss.plot(*xy(points["train"], "loss"), color=f"C{k}", lw=1, label=f"{name} train")
            loss.plot(*xy(points["valid"], "loss"), "--o", color=f"C{k}", ms=3, label=f"{name} valid")
            bleu.plot(*xy(scored, "bleu"), "-o", color=f"C{k}", ms=3, label=name)
            loss.set(xlabel=label, ylabel="loss per target token", title="training and validation loss")
            bleu.set(xlabel=label, ylabel="BLEU", title="validation BLEU")
    for ax in axes.flat:
        ax.legend(fontsize=7)
    return save(fig, path)
