"""The benchmark commands run end to end on tiny inputs and compute what they report."""

import base64
import json

import numpy as np
import pytest
import torch
import yaml

from mtapp.bench import claims, kernels, nested, padding, scale
from mtapp.bench import train as bench_train
from mtapp.config import BatchingConfig
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


def test_padding_bench_reports_every_strategy_with_consistent_figures():
    rng = np.random.default_rng(0)
    src = rng.integers(2, 40, 2000)
    tgt = np.clip(src + rng.integers(-3, 4, 2000), 1, None)
    results = padding.measure(BatchingConfig(max_tokens=1024, batch_size=32, row_tokens=128), src, tgt)
    assert set(results) == {"global", "random", "sorted", "tokens", "packed_rows"}
    for r in results.values():
        assert 0 < r["src_efficiency"] <= 1 and 0 < r["tgt_efficiency"] <= 1
        assert (
            min(r["src_efficiency"], r["tgt_efficiency"])
            <= r["efficiency"]
            <= max(r["src_efficiency"], r["tgt_efficiency"])
        )
        assert r["mean_sentences"] * r["batches"] == pytest.approx(2000)


def test_scale_bench_writes_lines_that_read_back_exactly():
    import pyarrow as pa

    from mtapp.data.lines import split_lines

    strings = pa.chunked_array([["Ein Hund.", "", "Zwei  Katzen äß"], ["x\ty"]], pa.large_string())
    picked = strings.take([3, 0, 1, 2, 2])
    data = bytes(scale._lines_bytes(picked))
    assert split_lines(np.frombuffer(data, np.uint8), "t").to_pylist() == picked.to_pylist()
    assert data.count(b"\n") == 5


def test_train_bench_trains_each_variant_and_writes_json_and_table(tmp_path):
    corpus = tmp_path / "corpus"
    for split, n, seed in (("train", 300, 1), ("val", 20, 2), ("test", 20, 3)):
        write_text_corpus(corpus, split, synthetic_pairs(n, seed=seed))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    out = tmp_path / "bench.json"
    args = ["--config", str(config), "--vary", "batching.strategy=random,tokens", "--minutes", "0.05"]
    assert bench_train.main([*args, "--json", str(out), "--report", str(tmp_path / "report")]) == 0
    results = json.loads(out.read_text())["variants"]
    assert [r["overrides"] for r in results] == [["batching.strategy=random"], ["batching.strategy=tokens"]]
    for r in results:
        assert r["tgt_tokens_per_s"] > 0 and r["peak_rss_mb"] > 50 and r["epochs"] >= 1
        assert np.isfinite(r["valid_loss"])
    assert results[1]["padding_efficiency"] > results[0]["padding_efficiency"]
    assert "| strategy=tokens |" in (tmp_path / "report" / "table.md").read_text()
    assert (tmp_path / "report" / "bench.png").stat().st_size > 1000
    page = (tmp_path / "report" / "report.html").read_text()
    png = base64.b64encode((tmp_path / "report" / "bench.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page and "<td>strategy=tokens</td>" in page
    assert all(len(r["valid_curve"]) >= 2 for r in results)  # mid-run validation points and the final one


def _result(overrides, speed, loss=3.0, bleu=20.0, efficiency=0.97):
    return {
        "overrides": overrides,
        "tgt_tokens_per_s": speed,
        "valid_loss": loss,
        "valid_bleu": bleu,
        "padding_efficiency": efficiency,
    }


def fake_grids():
    """Result records shaped like `bench train`'s, with chosen numbers (for the verdict logic)."""
    lstm = [
        _result([f"model.encoder_padding={m}", f"batching.pad_side={s}"], speed, loss)
        for m, s, speed, loss in [
            ("padded", "post", 1000, 3.3),
            ("padded", "pre", 990, 3.2),
            ("masked", "post", 700, 3.0),
            ("masked", "pre", 690, 3.0),
            ("packed", "post", 1300, 3.0),
            ("packed", "pre", 1290, 3.0),
            ("unrolled", "post", 600, 3.0),
            ("unrolled", "pre", 600, 3.0),
        ]
    ]
    transformer = [
        _result(claims.RANDOM, 1500, 3.5, 20.0, 0.45),
        _result(claims.SORTED, 3000, 3.2, 22.0, 0.89),
        _result(claims.TOKENS, 3500, 3.0, 25.0),
        _result(claims.PACKED, 3600, 3.0, 25.0, 0.99),
        _result(claims.TOKENS + claims.UNMASKED, 3500, 3.1, 24.8),
        _result(claims.RANDOM + claims.UNMASKED, 1500, 4.0, 15.0),
    ]
    for r in lstm + transformer:
        r.update(epochs=1, sentences_per_s=10.0, train_loss=3.0, peak_rss_mb=900.0, valid_curve=[[30, 4.0], [60, 3.5]])
    return lstm, transformer


def test_claim_verdicts_follow_the_numbers():
    lstm, transformer = fake_grids()
    rows = {r["claim"][:3]: r for r in claims.verdicts(lstm, transformer, {"post": 0.2, "pre": 0.1})}
    assert rows["(a)"]["verdict"] == "does not hold here" and "+1.0%" in rows["(a)"]["numbers"]
    assert rows["(b)"]["verdict"] == "does not hold"
    assert rows["(c)"]["verdict"] == "holds" and "1.30x" in rows["(c)"]["numbers"]
    assert rows["(d)"]["verdict"] == "holds" and "2.33x" in rows["(d)"]["numbers"]
    assert rows["(e)"]["verdict"] == "holds" and "+5.00 with random" in rows["(e)"]["numbers"]


def test_nested_probe_reports_each_operation():
    results = nested.probe()
    assert len(results) == 4
    assert all(v.startswith(("works", "FAILS")) for v in results.values())
    assert results["encoder self-attention (float32)"].startswith("works")


def test_claims_report_has_every_verdict_table_and_plot(tmp_path):
    lstm, transformer = fake_grids()
    drift = {"post": 0.2, "pre": 0.1}
    rows = claims.verdicts(lstm, transformer, drift)
    plots = claims.plot(lstm, transformer, tmp_path)
    claims.write_report(tmp_path, 2.0, lstm, transformer, drift, rows, plots)
    report = (tmp_path / "report.md").read_text()
    for r in rows:
        assert r["claim"] in report and r["numbers"] in report
    assert report.count("| encoder_padding=") == 8 and report.count("| strategy=") == 6
    page = (tmp_path / "report.html").read_text()
    for name in plots:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in report
        assert base64.b64encode((tmp_path / name).read_bytes()).decode() in page
    assert 'src="http' not in page and "<link" not in page


def test_kernel_bench_times_cases_that_compute_the_same_thing():
    torch.manual_seed(0)
    plain, fused = (run() for run in kernels.loss_cases().values())
    assert torch.allclose(plain, fused, atol=1e-5, rtol=1e-4)
    (values, indices), (my_values, my_indices) = (run() for run in kernels.topk_cases().values())
    assert torch.equal(values, my_values) and torch.equal(indices, my_indices)
    for grad in (run() for run in kernels.dropout_cases().values()):  # both drop a tenth of the units
        assert abs((grad == 0).float().mean().item() - 0.1) < 0.005


def test_the_serving_claim_follows_the_bench_serve_numbers():
    def cell(window, clients, rate, p99):
        return {"window": window, "size": 1, "concurrency": clients, "sentences_per_s": rate, "p99_ms": p99}

    serve = {"cells": [cell("serialized", 1, 8, 200), cell("serialized", 16, 7, 2000), cell("0", 1, 9, 180)]}
    serve["cells"] += [cell("0", 16, 28, 500), cell("5", 1, 7, 300), cell("5", 16, 20, 600)]
    row = claims.serve_verdict(serve)
    assert row["verdict"] == "holds" and "4.00x" in row["numbers"] and "window 0 ms" in row["numbers"]
    serve["cells"][2]["p99_ms"] = 400  # window 0 doubles the lone latency
    assert claims.serve_verdict(serve)["verdict"] == "does not hold"
