"""`python -m mtapp.report`: runs compared on one test set, written as markdown and self-contained HTML."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sacrebleu.metrics import BLEU, CHRF

from mtapp import evaluate, train
from mtapp.report import __main__ as report
from mtapp.report import compare
from mtapp.report.analysis import length_buckets, paired_bootstrap, pick_samples
from mtapp.report.document import Document, inline_html, markdown_table
from mtapp.report.runs import training_curves
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus

TEST_SIZE = 60


def damaged(references: list[str]) -> list[str]:
    """A strong second system: the reference itself for two lines in three, the rest without its last word."""
    return [r if i % 3 else " ".join(r.split()[:-1]) for i, r in enumerate(references)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny trained and evaluated run (the baseline) and a copy of it with better output."""
    tmp = tmp_path_factory.mktemp("report")
    corpus = tmp / "corpus"
    for split, n, seed, longest in (("train", 300, 1, 9), ("val", 20, 2, 9), ("test", TEST_SIZE, 3, 30)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed, max_len=longest))
    config = tmp / "tiny.yaml"
    sections = {
        "train": {"max_epochs": 2, "log_every": 2, "valid_every_minutes": 0.003},
        "batching": {"max_tokens": 256},
    }
    config.write_text(yaml.safe_dump(tiny_config(tmp, **sections)))
    base = tmp / "base"
    assert train.main(["--config", str(config), "--run-dir", str(base)]) == 0
    assert evaluate.main(["--run", str(base), "--split", "test", "--beam", "1"]) == 0
    better = tmp / "better"
    shutil.copytree(base, better, ignore=shutil.ignore_patterns("checkpoint_*.pt"))
    references = (corpus / "test.yy").read_text().splitlines()
    (better / "eval" / "test.hyp").write_text("\n".join(damaged(references)) + "\n")
    out = tmp / "out"
    assert report.main([str(base), str(better), "--out", str(out), "--samples", "2", "--buckets", "5,10,20"]) == 0
    return tmp, [base, better], references, out


def test_report_lists_systems_scores_and_signatures(runs):
    _, paths, references, out = runs
    result = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in result["systems"]] == ["base", "better"]
    for path, system in zip(paths, result["systems"]):
        hyps = (path / "eval" / "test.hyp").read_text().splitlines()
        assert system["scores"]["bleu"] == pytest.approx(BLEU().corpus_score(hyps, [references]).score, abs=0.01)
        assert system["training"]["epochs"] == 2 and system["training"]["tgt_tokens_per_s"] > 0
        assert 0 < system["training"]["padding_efficiency"] <= 1
        train_points, valid_points = system["curves"]["train"], system["curves"]["valid"]
        assert len(train_points) >= 2 and sum(p["bleu"] is not None for p in valid_points) == 2
        assert len(valid_points) > 2  # mid-epoch validation records (train.valid_every_minutes) too
        for points in (train_points, valid_points):
            assert all(a["tokens"] <= b["tokens"] and a["seconds"] <= b["seconds"] for a, b in zip(points, points[1:]))
    markdown = (out / "report.md").read_text()
    for expected in ("nrefs:1\\|case:mixed", "BLEU (lowercased)", "beam 1", "| tokens | 256 tokens | post |"):
        assert expected in markdown
    assert f"python -m mtapp.report {paths[0]} {paths[1]} --out {out}" in markdown


def test_html_is_self_contained_and_embeds_every_figure(runs):
    _, _, _, out = runs
    markdown, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", markdown)
    assert sorted(figures) == ["length_buckets.png", "training_curves.png"]
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert re.search(r"url\((?!data:)", page) is None
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    for name in figures:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png).decode() in embedded, name


def test_bootstrap_is_reproducible_with_a_fixed_seed(runs):
    _, paths, references, _ = runs
    systems = {p.name: (p / "eval" / "test.hyp").read_text().splitlines() for p in paths}
    first = paired_bootstrap(systems, references, seed=7, samples=200)
    assert paired_bootstrap(systems, references, seed=7, samples=200) == first
    signatures, rows = first
    assert "seed:7" in signatures["bleu"] and "bs:200" in signatures["bleu"]
    assert rows[0]["bleu"]["p"] is None and 0 < rows[1]["bleu"]["p"] < 0.05  # "better" differs by far
    _, other = paired_bootstrap(systems, references, seed=8, samples=200)
    assert [r["bleu"]["score"] for r in other] == [r["bleu"]["score"] for r in rows]  # scores are not resampled
    assert [(r["bleu"]["mean"], r["bleu"]["ci"]) for r in other] != [(r["bleu"]["mean"], r["bleu"]["ci"]) for r in rows]
    assert "SACREBLEU_SEED" not in os.environ or os.environ["SACREBLEU_SEED"] != "8"
    with pytest.raises(ValueError, match="positive"):
        paired_bootstrap(systems, references, seed=0)


def test_bootstrap_agrees_with_the_sacrebleu_command_line_tool(runs):
    tmp, paths, references, out = runs
    (tmp / "ref.txt").write_text("\n".join(references) + "\n")
    sacrebleu = Path(sys.executable).parent / "sacrebleu"
    hyps = [str(p / "eval" / "test.hyp") for p in paths]
    cli = subprocess.run(
        [str(sacrebleu), str(tmp / "ref.txt"), "-i", *hyps, "-m", "bleu", "chrf", "ter", "--paired-bs"]
        + ["-w", "4", "-f", "text"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "SACREBLEU_SEED": "12345"},
    )
    cells = [tuple(map(float, m)) for m in re.findall(r"([\d.]+) \(([\d.]+) ± ([\d.]+)\)", cli.stdout)]
    p_values = [float(p) for p in re.findall(r"\(p = ([\d.]+)\)", cli.stdout)]
    rows = json.loads((out / "report.json").read_text())["significance"]["rows"]
    ours = [(r[k]["score"], r[k]["mean"], r[k]["ci"]) for r in rows for k in ("bleu", "chrf", "ter")]
    assert len(cells) == 6 and len(p_values) == 3
    assert [c for cell in cells for c in cell] == pytest.approx([c for cell in ours for c in cell], abs=1e-4)
    assert p_values == pytest.approx([rows[1][k]["p"] for k in ("bleu", "chrf", "ter")], abs=1e-4)


def test_length_buckets_cover_the_test_set_by_source_words(runs):
    tmp, _, references, out = runs
    result = json.loads((out / "report.json").read_text())
    buckets = result["buckets"]
    assert sum(b["sentences"] for b in buckets) == TEST_SIZE
    sources = (tmp / "corpus" / "test.xx").read_text().splitlines()
    lengths = [len(s.split()) for s in sources]
    expected = {"1-5": sum(n <= 5 for n in lengths), "6-10": sum(5 < n <= 10 for n in lengths)}
    expected |= {"11-20": sum(10 < n <= 20 for n in lengths), "21+": sum(n > 20 for n in lengths)}
    assert {b["bucket"]: b["sentences"] for b in buckets} == {k: v for k, v in expected.items() if v}
    markdown = (out / "report.md").read_text()
    assert "| 6-10 | " + str(expected["6-10"]) + " |" in markdown


def test_length_bucket_boundaries_and_empty_buckets():
    sources = ["w " * n for n in (0, 1, 10, 11, 15, 16, 40)]
    buckets = length_buckets(sources, [10, 15, 20, 25])
    assert [(b.label, b.indices) for b in buckets] == [
        ("1-10", [0, 1, 2]),
        ("11-15", [3, 4]),
        ("16-20", [5]),
        ("26+", [6]),
    ]
    with pytest.raises(ValueError):
        length_buckets(sources, [10, 10])


def test_samples_are_best_median_and_worst_by_baseline_chrf(runs):
    _, paths, references, out = runs
    samples = json.loads((out / "report.json").read_text())["samples"]
    baseline = (paths[0] / "eval" / "test.hyp").read_text().splitlines()
    better = (paths[1] / "eval" / "test.hyp").read_text().splitlines()
    chrf = sorted(CHRF().sentence_score(h, [r]).score for h, r in zip(baseline, references))
    shown = {which: [s["outputs"]["base"]["chrf"] for s in rows] for which, rows in samples.items()}
    assert shown["best"] == pytest.approx(chrf[::-1][:2])
    assert shown["worst"] == pytest.approx(chrf[:2])
    assert shown["median"] == pytest.approx(chrf[29:31])
    for s in [s for rows in samples.values() for s in rows]:
        assert s["reference"] == references[s["line"] - 1]
        assert s["outputs"]["better"]["text"] == better[s["line"] - 1]


def test_pick_samples_breaks_ties_by_position():
    picked = pick_samples([5.0, 1.0, 5.0, 3.0, 1.0], 2)
    assert picked == {"best": [2, 0], "median": [4, 3], "worst": [1, 4]}


def test_a_run_without_translations_is_refused_with_the_command_to_make_them(runs, tmp_path, capsys):
    _, paths, _, _ = runs
    bare = tmp_path / "bare"
    shutil.copytree(paths[1], bare)
    shutil.rmtree(bare / "eval")
    assert report.main([str(paths[0]), str(bare), "--out", str(tmp_path / "out")]) == 2
    assert f"python -m mtapp.evaluate --run {bare} --split test" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_training_curves_place_log_records_in_time_and_tokens():
    records = [
        {"event": "train", "epoch": 1, "update": 2, "loss": 5.0, "tgt_tokens": 100, "seconds": 10.0},
        {"event": "valid", "epoch": 1, "update": 3, "elapsed": 16.0, "valid_loss": 4.5, "tgt_tokens_seen": 150},
        {"event": "train", "epoch": 1, "update": 4, "loss": 4.0, "tgt_tokens": 100, "seconds": 10.0},
        {"event": "epoch", "epoch": 1, "update": 4, "tgt_tokens": 250, "seconds": 25.0, "elapsed": 30.0}
        | {"valid_loss": 4.2, "valid_bleu": 3.0, "valid_seconds": 5.0},
        {"event": "train", "epoch": 2, "update": 6, "loss": 3.0, "tgt_tokens": 120, "seconds": 20.0},
        {"event": "epoch", "epoch": 2, "update": 7, "tgt_tokens": 240, "seconds": 40.0, "elapsed": 75.0}
        | {"valid_loss": 3.5, "valid_bleu": 9.0, "valid_seconds": 5.0},
    ]
    train_points, valid_points = training_curves(records)
    # Epoch 1 runs 0..30 s over 25 training seconds; epoch 2 from 35 s (after validation) to 75 s over 40.
    assert [(p.seconds, p.tokens, p.loss) for p in train_points] == [
        pytest.approx((12.0, 100, 5.0)),
        pytest.approx((24.0, 200, 4.0)),
        pytest.approx((55.0, 370, 3.0)),
    ]
    assert [(p.seconds, p.tokens, p.loss, p.bleu) for p in valid_points] == [
        (16.0, 150, 4.5, None),
        (30.0, 250, 4.2, 3.0),
        (75.0, 490, 3.5, 9.0),
    ]


def test_document_escapes_cells_and_text_for_markdown_and_html(tmp_path):
    assert markdown_table(["a", "b"], [["x|y", 1]]) == "| a | b |\n|---|---|\n| x\\|y | 1 |\n"
    assert inline_html("use `a<b` and **bold** <i>") == "use <code>a&lt;b</code> and <strong>bold</strong> &lt;i&gt;"
    doc = Document("T <1>")
    doc.table(["k"], [["<script>"]])
    doc.code("x < y")
    md, page = doc.write(tmp_path)
    assert md.read_text().startswith("# T <1>\n")
    html_text = page.read_text()
    assert "<title>T &lt;1&gt;</title>" in html_text and "<td>&lt;script&gt;</td>" in html_text
    assert "<pre><code>x &lt; y</code></pre>" in html_text


def test_a_system_identical_to_the_baseline_is_flagged(runs, tmp_path):
    _, paths, _, _ = runs
    assert (
        report.main([str(paths[0]), str(paths[0]), "--names", "a,b", "--out", str(tmp_path), "--resamples", "50"]) == 0
    )
    assert "**b**'s output is identical to the baseline's" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["significance"]["rows"][1]["identical_to_baseline"]


@pytest.mark.parametrize("buckets", ["10,x", "15,10", "0,5"])
def test_bad_bucket_bounds_are_a_usage_error(buckets, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        report.main([str(tmp_path), "--out", str(tmp_path / "out"), "--buckets", buckets])
    assert stop.value.code == 2 and "--buckets" in capsys.readouterr().err


def test_decoding_settings_name_a_minimum_length_only_when_one_was_set():
    d = {"beam": 5, "length_penalty": 1.0, "max_len_a": 1.5, "max_len_b": 10, "min_len": 0}
    assert compare.decoding_text(d) == "beam 5, length penalty 1, max 1.5·n+10"
    assert compare.decoding_text(d | {"max_len_a": 0.0, "max_len_b": 20, "min_len": 20}).endswith("max 0·n+20, min 20")


def test_a_report_on_one_run_has_every_section_but_significance(runs, tmp_path, capsys):
    _, paths, references, _ = runs
    out = tmp_path / "one"
    assert report.main([str(paths[0]), "--out", str(out), "--samples", "1"]) == 0
    result = json.loads((out / "report.json").read_text())
    assert result["significance"] is None and [s["name"] for s in result["systems"]] == ["base"]
    hyps = (paths[0] / "eval" / "test.hyp").read_text().splitlines()
    bleu = BLEU().corpus_score(hyps, [references]).score
    assert result["systems"][0]["scores"]["bleu"] == pytest.approx(bleu, abs=0.01)
    assert sum(b["sentences"] for b in result["buckets"]) == TEST_SIZE
    assert [len(result["samples"][k]) for k in ("best", "median", "worst")] == [1, 1, 1]
    markdown = (out / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert headings == ["Systems", "By source length", "Training curves", "Batching and padding", "Sample translations"]
    assert "baseline" not in markdown.split("## Systems")[0] and "p =" not in markdown
    assert sorted(re.findall(r"\(([a-z_]+\.png)\)", markdown)) == ["length_buckets.png", "training_curves.png"]
    printed = capsys.readouterr().out
    assert f"base: bleu {result['systems'][0]['scores']['bleu']:.2f}, chrf" in printed and "±" not in printed


def with_second_test_split(run, folder, pairs) -> None:
    """`run` copied into `folder` with a split test_b (the corpus files `pairs`) in its config."""
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("checkpoint_*.pt"))
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    corpus = write_text_corpus(folder.parent / "corpus_b", "test_b", pairs)
    raw["data"]["paths"] |= {"test_b": str(corpus), "test_c": str(folder.parent / "absent" / "test_c")}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))


def test_several_runs_across_splits_get_one_row_per_run_and_one_column_per_split(runs, tmp_path, capsys):
    _, paths, references, _ = runs
    pairs = synthetic_pairs(20, seed=11)
    refs_b = [t for _, t in pairs]
    for path in paths:
        with_second_test_split(path, tmp_path / path.name, pairs)
    (tmp_path / "base" / "eval" / "test_b.hyp").write_text("\n".join(damaged(refs_b)) + "\n")
    (tmp_path / "better" / "eval" / "test_b.hyp").write_text("\n".join(refs_b) + "\n")
    copies = [str(tmp_path / p.name) for p in paths]
    out = tmp_path / "out"
    assert report.main([*copies, "--out", str(out), "--split", "all", "--resamples", "50"]) == 0
    assert f"left out: test_c: missing {tmp_path / 'absent' / 'test_c.xx'}" in capsys.readouterr().err
    result = json.loads((out / "report.json").read_text())
    table = result["splits"]
    assert table["names"] == ["test", "test_b"] and result["split"] == "test"
    assert [s["name"] for s in table["systems"]] == ["base", "better"]
    for system, path in zip(table["systems"], paths):
        hyps = (path / "eval" / "test.hyp").read_text().splitlines()
        expected = BLEU().corpus_score(hyps, [references]).score
        assert system["scores"]["test"]["bleu"] == pytest.approx(expected, abs=0.01)
    assert table["systems"][1]["scores"]["test_b"]["bleu"] == pytest.approx(100.0)
    assert table["systems"][0]["scores"]["test_b"]["bleu"] < 100
    markdown = (out / "report.md").read_text()
    assert "| system | test BLEU / chrF | test_b BLEU / chrF |" in markdown
    assert "| system | test BLEU (lowercased) | test_b BLEU (lowercased) |" in markdown
    assert re.search(r"^\| better \| [\d.]+ / [\d.]+ \| 100\.00 / 100\.00 \|$", markdown, flags=re.M)
    assert "## Significance against the baseline" in markdown  # several runs: still tested, on the first split
    assert report.main([*copies, "--out", str(tmp_path / "bad"), "--split", "test,test_c"]) == 2
    err = capsys.readouterr().err  # every run's missing translation, each with the command that makes it
    assert all(f"python -m mtapp.evaluate --run {copy} --split test_c" in err for copy in copies)
