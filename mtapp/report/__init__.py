"""Reports: markdown + self-contained HTML documents, PNG plots, and the comparison of runs
(`python -m mtapp.report`, see `__main__.py`).

    document.py  blocks -> report.md and report.html (images as data URIs); markdown tables
    plots.py     matplotlib (Agg) helpers and the report's figures
    runs.py      reading a run directory; training summary and curves from its log
    analysis.py  paired bootstrap (sacrebleu), length buckets, sentence chrF samples
    compare.py   the comparison report's numbers and layout
"""
