"""The benchmark commands run end to end on tiny inputs and compute what they report."""

import base64
import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mtapp import train
from mtapp.bench import claims, kernels, nested, padding, padding_probes, profiling, scale, speed, verdicts
from mtapp.bench import train as bench_train
from mtapp.config import BatchingConfig, load_config
from mtapp.data.synthetic import write_synthetic_corpus
from tests.synthetic import tiny_config


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


def tiny_config_file(tmp_path: Path, **sections) -> Path:
    """A tiny model's config file over a small synthetic corpus (300 training pairs) in tmp_path."""
    write_synthetic_corpus(tmp_path, train=300, valid=20, test=20)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, **sections)))
    return config


def test_train_bench_trains_each_variant_and_writes_json_and_table(tmp_path):
    config = tiny_config_file(tmp_path)
    out = tmp_path / "bench.json"
    args = ["--config", str(config), "--vary", "batching.strategy=random,tokens", "--minutes", "0.05"]
    assert bench_train.main([*args, "--json", str(out), "--report", str(tmp_path / "report")]) == 0
    results = json.loads(out.read_text())["variants"]
    assert [r["overrides"] for r in results] == [["batching.strategy=random"], ["batching.strategy=tokens"]]
    for r in results:
        assert r["tgt_tokens_per_s"] > 0 and r["peak_rss_mb"] > 50 and r["epochs"] >= 1
        assert np.isfinite(r["valid_loss"])
    assert results[1]["padding_efficiency"] > results[0]["padding_efficiency"]
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| strategy=tokens |" in table and table.count("![bench](bench.png)") == 1
    assert (tmp_path / "report" / "bench.png").stat().st_size > 1000
    page = (tmp_path / "report" / "report.html").read_text()
    png = base64.b64encode((tmp_path / "report" / "bench.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page and "<td>strategy=tokens</td>" in page
    assert all(len(r["valid_curve"]) >= 2 for r in results)  # mid-run validation points and the final one


# The machine's speed in each repeat, shared by every variant (interleaved runs): paired ratios cancel it.
SLOW_SPELLS = (1.0, 0.8, 1.1)


def _result(overrides, speed, loss=3.0, bleu=20.0, efficiency=0.97, **probes):
    """One run record shaped like `bench train`'s, with chosen numbers (for the verdict logic)."""
    return {
        "overrides": overrides,
        "tgt_tokens_per_s": speed,
        "valid_loss": loss,
        "valid_bleu": bleu,
        "padding_efficiency": efficiency,
        "epochs": 2,
        "sentences_per_s": 10.0,
        "train_loss": 3.0,
        "peak_rss_mb": 900.0,
        "wall_seconds": 600.0,
        "valid_curve": [[30, 4.0], [60, 3.5]],
        **probes,
    }


def _variant(overrides, speed, loss=3.0, bleu=20.0, efficiency=0.97, noise=(0, 0, 0), repeats=3, **probes):
    """A variant's pooled record over `repeats` runs: each run's speed scaled by its repeat's slow
    spell (and its own `noise`), the loss and BLEU drifting alike in every variant."""
    runs = [
        _result(overrides, speed * spell * (1 + n), loss + 0.01 * r, bleu - 0.1 * r, efficiency, **probes)
        for r, (spell, n) in enumerate(zip(SLOW_SPELLS[:repeats], noise))
    ]
    return bench_train.pool(runs)


def fake_grids(repeats=3):
    """Both grids' pooled records, as `bench claims` builds them, with chosen numbers."""
    drift = {"post": 0.2, "pre": 0.1}
    lstm = [
        _variant(
            [f"model.encoder_padding={m}", f"batching.pad_side={s}"],
            speed,
            loss,
            repeats=repeats,
            first_position_gradient=gradient,
            **({"state_drift": drift} if (m, s) == ("padded", "post") else {}),
        )
        for m, s, speed, loss, gradient in [
            ("padded", "post", 1000, 3.3, 0.95),
            ("padded", "pre", 990, 3.2, 0.5),
            ("masked", "post", 700, 3.0, 0.97),
            ("masked", "pre", 690, 3.0, 0.96),
            ("packed", "post", 1300, 3.0, 1.0),
            ("packed", "pre", 1287, 3.0, 1.0),
        ]
    ]
    transformer = [
        _variant(verdicts.RANDOM, 1500, 3.5, 20.0, 0.45, repeats=repeats),
        _variant(claims.SORTED, 3000, 3.2, 22.0, 0.89, repeats=repeats),
        _variant(claims.TOKENS, 3500, 3.0, 25.0, repeats=repeats),
        _variant(claims.PACKED, 3600, 3.0, 25.0, 0.99, noise=PACKED_NOISE, repeats=repeats),
        _variant(claims.TOKENS + verdicts.UNMASKED, 3500, 3.1, 24.8, repeats=repeats),
        _variant(verdicts.RANDOM + verdicts.UNMASKED, 1500, 4.0, 15.0, repeats=repeats),
    ]
    return lstm, transformer


PACKED_NOISE = (0.10, -0.08, 0.0)  # packed_rows' own run-to-run noise (a variant the quality grids no longer train)


def test_quality_verdicts_follow_the_intervals_of_the_paired_seeds():
    lstm, transformer = fake_grids()
    rows = {r["claim"][:3]: r for r in verdicts.quality_rows(lstm, transformer, "Test CPU")}
    assert list(rows) == ["(b)", "(f)", "(e)"]
    assert rows["(b)"]["verdict"] == "does not hold"  # padded loses 0.3 / 0.2 and its states drift 20% / 10%
    assert rows["(e)"]["verdict"] == "holds" and "+5.00" in rows["(e)"]["measured"]
    assert rows["(f)"]["verdict"] == "post: does not hold; pre: holds"  # 0.95 vs 0.50 of packed's, claimed <= 0.8
    assert all(r["hardware"] == "Test CPU" for r in rows.values())
    gap = verdicts.pre_padding_loss(lstm)  # (a)'s quality side: padded pre 3.2 vs post 3.3, packed 3.0 vs 3.0
    assert (
        gap == "valid loss pre minus post: padded -0.100 [-0.100, -0.100] (n=3), packed +0.000 [+0.000, +0.000] (n=3)"
    )


def test_one_seed_leaves_every_quality_claim_undecided():
    lstm, transformer = fake_grids(repeats=1)
    for row in verdicts.quality_rows(lstm, transformer, "Test CPU"):
        assert {c["verdict"] for c in row["comparisons"]} == {"undecided"} and row["verdict"] == "undecided"
        assert "(n=1: no interval)" in row["measured"] and "rules out" not in row["measured"]


def test_nested_probe_reports_each_operation():
    results = nested.probe()
    assert len(results) == 4
    assert all(v.startswith(("works", "FAILS")) for v in results.values())
    assert results["encoder self-attention (float32)"].startswith("works")


def test_claims_report_has_every_verdict_table_and_plot(tmp_path):
    from tests.test_bench_speed import fake_speed_payload

    lstm, transformer = fake_grids()
    speed_payload = fake_speed_payload()
    rows = verdicts.quality_rows(lstm, transformer, "Test CPU") + verdicts.speed_rows(
        speed_payload["summary"], "Test CPU", lstm
    )
    plots = [claims.forest_plot(rows, tmp_path / "forest.png")] + claims.plot(lstm, transformer, tmp_path)
    settings = {"repeats": 3, "lstm_updates": 350, "transformer_updates": 350, "machine_hours": 1.5}
    settings |= {"complete": {"lstm": 3, "transformer": 3}, "hardware": "Test CPU", "speed_rounds": "6 rounds"}
    settings["quality_pool"] = "bf16 training on Test CPU (quality runs pooled by precision)"
    claims.write_report(
        tmp_path,
        settings,
        speed_payload,
        {"lstm": (lstm, lstm), "transformer": (transformer, transformer)},
        rows,
        plots,
    )
    report = (tmp_path / "report.md").read_text()
    for r in rows:
        assert all(r[key] in report for key in ("claim", "hardware", "threshold", "measured", "verdict", "numbers"))
    # a row per variant in its grid's table, and one per run in the table of runs
    assert report.count("| encoder_padding=") == 6 + 6 * 3 and report.count("| strategy=") == 6 + 6 * 3
    speeds = 1287 * np.array(SLOW_SPELLS)  # packed pre's runs: the mean ± the t-interval's half-width
    assert f"| {speeds.mean():.0f} ± {4.303 * speeds.std(ddof=1) / np.sqrt(3):.0f} |" in report
    assert "| (c) post | packed post / padded post | 1.300x |" in report  # the speed bench's table
    assert "the first update of a turn over the same batch repeated at once: lstm_tokens 1." in report
    assert "| lstm_random | packed random |" in report
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
    serve["machine"] = {"cpu": "AMD EPYC", "native_bf16": True, "device": "cpu"}
    row = verdicts.serve_verdict(serve)
    assert row["claim"].startswith("(h)") and row["hardware"] == "AMD EPYC (native bf16), 1 run"
    assert row["verdict"] == "holds" and "4.00x" in row["numbers"] and "window 0 ms" in row["numbers"]
    serve["cells"][2]["p99_ms"] = 400  # window 0 doubles the lone latency
    assert verdicts.serve_verdict(serve)["verdict"] == "does not hold"


def _decodes(model, float32, bf16, lines=100):
    """`bench invariance` results of one model: lines changed in float32 and in bf16."""
    row = {"model": model, "beam": 5, "lines": lines}
    return [row | {"precision": "float32", "changed": float32}, row | {"precision": "bfloat16", "changed": bf16}]


def test_the_bf16_claim_follows_the_invariance_counts():
    payload = {"machine": {"cpu": "Intel Xeon", "native_bf16": False, "device": "cpu"}}
    payload["results"] = _decodes("transformer", 0, 3) + _decodes("lstm (packed)", 0, 0)
    row = verdicts.invariance_verdict(payload)
    assert row["claim"].startswith("(i)") and row["verdict"] == "holds" and "1 run" in row["hardware"]
    assert "transformer bfloat16 beam 5: 3 of 100" in row["numbers"]
    payload["results"][2]["changed"] = 1  # float32 changes a line too: the batch effect is not bf16's
    assert verdicts.invariance_verdict(payload)["verdict"] == "does not hold"
    payload["results"] = _decodes("transformer", 0, 0)
    assert verdicts.invariance_verdict(payload)["verdict"] == "does not hold"
    payload["results"] = payload["results"][:1]
    with pytest.raises(ValueError, match="bfloat16"):
        verdicts.invariance_verdict(payload)


def _gpu_check():
    """A `bench gpu` payload with chosen speeds (real target tokens/s per run)."""
    lstm = {"padded-post": 30000, "padded-pre": 20000, "masked-post": 25000, "masked-pre": 24000}
    lstm |= {"packed-post": 40000, "packed-pre": 21000}
    transformer = {"tokens": 90000, "random": 60000, "packed_rows": 80000}
    decode = {"split": "test", "budgets": [1, 256, 8192], "results": _decodes("transformer", 0, 4)}

    def stage(runs):
        return {"status": "ok", "seconds": 1.0, "result": {name: {"tgt_tokens_per_s": v} for name, v in runs.items()}}

    stages = {"transformer": stage(transformer), "lstm": stage(lstm), "decode": {"status": "ok", "result": decode}}
    stages["torchrun"] = {"status": "skipped", "result": {"skipped": "1 GPU(s)"}}
    machine = {"gpu": "NVIDIA H200", "cpu": "Intel Xeon", "native_bf16": True, "device": "cuda"}
    return {"machine": machine, "stages": stages}


def test_gpu_rows_judge_one_bench_gpu_check_on_its_point_values():
    check = _gpu_check()
    rows = {r["claim"][:3]: r for r in verdicts.gpu_rows(check)}
    assert list(rows) == ["(a)", "(c)", "(d)", "(g)", "(i)"]
    assert all(r["hardware"].startswith("NVIDIA H200") and r["hardware"].endswith("1 run") for r in rows.values())
    assert rows["(a)"]["verdict"] == "padded: holds; masked: does not hold"  # 1.50x and 1.04x, claimed >= 1.30x
    assert "padded: 1.50x (1 run)" in rows["(a)"]["measured"]
    assert rows["(c)"]["verdict"] == "holds"  # 1.33x and exactly 1.05x
    assert rows["(d)"]["verdict"] == "holds" and rows["(g)"]["verdict"] == "does not hold"
    assert rows["(i)"]["verdict"] == "holds"
    check["stages"]["lstm"] = {"status": "FAILED", "seconds": 1.0, "error": "RuntimeError()"}
    assert [r["claim"][:3] for r in verdicts.gpu_rows(check)] == ["(d)", "(g)", "(i)"]


def test_pool_averages_the_runs_and_the_table_gives_each_key_figure_a_half_width():
    runs = [
        _result(["batching.strategy=tokens"], speed, loss) for speed, loss in ((1000, 3.0), (1200, 3.2), (1100, 3.1))
    ]
    runs[0]["epochs"] = 3  # runs in a time budget reach different epochs: the mean, 7/3, is shown as 2.333
    pooled = bench_train.pool(runs)
    assert pooled["tgt_tokens_per_s"] == pytest.approx(1100) and pooled["runs"] == runs
    assert pooled["intervals"]["valid_loss"]["mean"] == pytest.approx(3.1)
    assert bench_train.pool(runs[:1]) is runs[0]
    table = bench_train.results_table([pooled]).markdown()
    assert (
        f"| 1100 ± {4.303 * 100 / np.sqrt(3):.0f} |" in table and f"| 3.100 ± {4.303 * 0.1 / np.sqrt(3):.3f} |" in table
    )
    assert "| 2.333 |" in table and "2.3333" not in table
    assert "±" not in bench_train.results_table(runs).markdown()


def test_run_jobs_interleaves_the_repeats_and_resumes_finished_runs(tmp_path, monkeypatch):
    trained = []

    def fake_run_variant(config, overrides, minutes, run_dir, updates=0, seed_offset=0, cores=None):
        trained.append((run_dir.relative_to(tmp_path).as_posix(), updates))
        assert seed_offset == int(run_dir.name[-1])  # repeat r: the config's seeds + r
        run_dir.mkdir(parents=True)  # fails if a stale run was left in place
        (run_dir / "log.jsonl").write_text("")
        record = {"overrides": overrides, "minutes": minutes, "updates": updates, "run_dir": str(run_dir)}
        record["seed_offset"] = seed_offset
        return record | {"tgt_tokens_per_s": 100.0 * len(trained), "valid_loss": 3.0}

    monkeypatch.setattr(bench_train, "run_variant", fake_run_variant)
    jobs = [bench_train.Job(Path("x.yaml"), [f"train.seed={i}"], tmp_path / f"variant{i:02d}", 10) for i in (0, 1)]
    runs = bench_train.run_jobs(jobs, 2, 0.0, resume=True)
    assert [d for d, _ in trained] == [
        "variant00/repeat0",
        "variant01/repeat0",
        "variant00/repeat1",
        "variant01/repeat1",
    ]
    assert [[r["tgt_tokens_per_s"] for r in variant] for variant in runs] == [[100, 300], [200, 400]]
    trained.clear()
    assert bench_train.run_jobs(jobs, 2, 0.0, resume=True) == runs and trained == []  # read back, not trained
    jobs[1] = replace(jobs[1], updates=20)
    bench_train.run_jobs(jobs, 2, 0.0, resume=True)
    assert trained == [("variant01/repeat0", 20), ("variant01/repeat1", 20)]  # another budget: trained again
    trained.clear()
    (tmp_path / "variant00").rename(tmp_path / "moved")  # a folder of runs moved elsewhere is read back there
    moved = bench_train.run_jobs([replace(jobs[0], folder=tmp_path / "moved")], 2, 0.0, resume=True)
    assert [r["run_dir"] for r in moved[0]] == [str(tmp_path / "moved" / f"repeat{r}") for r in (0, 1)] and not trained
    for repeat in (0, 1):  # runs saved before repeats had seeds of their own: only repeat 0's seeds match
        saved = tmp_path / "moved" / f"repeat{repeat}" / "result.json"
        saved.write_text(json.dumps({k: v for k, v in json.loads(saved.read_text()).items() if k != "seed_offset"}))
    bench_train.run_jobs([replace(jobs[0], folder=tmp_path / "moved")], 2, 0.0, resume=True)
    assert trained == [("moved/repeat1", 10)]
    trained.clear()  # a run stopped before it wrote its log leaves its first checkpoint: trained again, not kept
    stopped = tmp_path / "moved" / "repeat1"
    (stopped / "result.json").unlink()
    (stopped / "log.jsonl").unlink()
    (stopped / "checkpoint_last.pt").write_bytes(b"")
    bench_train.run_jobs([replace(jobs[0], folder=tmp_path / "moved")], 2, 0.0, resume=True)
    assert trained == [("moved/repeat1", 10)] and not (stopped / "checkpoint_last.pt").exists()


def test_run_jobs_with_workers_trains_runs_at_once_each_on_its_own_cores(tmp_path, monkeypatch):
    both_started = threading.Barrier(2, timeout=30)  # broken unless two runs are in training together
    trained = []

    def fake_run_variant(config, overrides, minutes, run_dir, updates=0, seed_offset=0, cores=None):
        if len(trained) < 2:
            trained.append(None)
            both_started.wait()
        trained.append((run_dir.relative_to(tmp_path).as_posix(), frozenset(cores)))
        run_dir.mkdir(parents=True)
        record = {"overrides": overrides, "minutes": minutes, "updates": updates, "run_dir": str(run_dir)}
        return record | {"seed_offset": seed_offset, "tgt_tokens_per_s": 1.0, "valid_loss": 3.0 + seed_offset}

    monkeypatch.setattr(bench_train, "run_variant", fake_run_variant)
    monkeypatch.setattr(bench_train.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    jobs = [bench_train.Job(Path("x.yaml"), [f"a={i}"], tmp_path / f"variant{i:02d}", 10) for i in (0, 1)]
    runs = bench_train.run_jobs(jobs, 3, 0.0, workers=2)
    made = [t for t in trained if t]
    assert sorted(d for d, _ in made) == sorted(f"variant{i:02d}/repeat{r}" for i in (0, 1) for r in range(3))
    assert {cores for _, cores in made} == {frozenset({0, 2}), frozenset({1, 3})}  # each worker its own share
    assert [[r["valid_loss"] for r in variant] for variant in runs] == [[3.0, 4.0, 5.0]] * 2  # in their places
    assert [[r["run_dir"] for r in variant] for variant in runs] == [
        [str(tmp_path / f"variant{i:02d}" / f"repeat{r}") for r in range(3)] for i in (0, 1)
    ]


def test_a_repeat_moves_the_seeds_of_the_config_it_trains(tmp_path):
    config = tiny_config_file(tmp_path)
    shuffling = load_config(config).batching.seed
    assert bench_train.seed_overrides(config, ["train.seed=7"], 0) == []  # repeat 0: the config as it is
    assert bench_train.seed_overrides(config, ["train.seed=7"], 2) == ["train.seed=9", f"batching.seed={shuffling + 2}"]


def test_run_jobs_starts_no_run_that_would_end_past_the_deadline_and_a_rerun_continues(tmp_path, monkeypatch):
    clock, trained = [0.0], []

    def fake_run_variant(config, overrides, minutes, run_dir, updates=0, seed_offset=0, cores=None):
        trained.append(run_dir.relative_to(tmp_path).as_posix())
        clock[0] += 100.0 * (1 + len(overrides[0]) % 2)  # variant00 takes 100 s, variant01 200 s
        run_dir.mkdir(parents=True)
        record = {"overrides": overrides, "minutes": minutes, "updates": updates, "run_dir": str(run_dir)}
        return record | {
            "seed_offset": seed_offset,
            "tgt_tokens_per_s": 1.0,
            "valid_loss": 3.0,
            "wall_seconds": 100.0 * (1 + len(overrides[0]) % 2),
        }

    monkeypatch.setattr(bench_train, "run_variant", fake_run_variant)
    monkeypatch.setattr(bench_train.time, "monotonic", lambda: clock[0])
    jobs = [
        bench_train.Job(Path("x.yaml"), [o], tmp_path / f"variant{i:02d}", 10) for i, o in enumerate(["a=1", "a=12"])
    ]
    seen = []
    after = lambda job, run: seen.append(job.folder.name) or run | {"after": True}  # noqa: E731
    runs = bench_train.run_jobs(jobs, 3, 0.0, resume=True, after=after, deadline=650.0)
    # 100 + 200 + 100 + 200 = 600 s: variant00's third run (100 s more) would end at 700 > 650
    assert trained == ["variant00/repeat0", "variant01/repeat0", "variant00/repeat1", "variant01/repeat1"]
    assert [[bool(r) for r in variant] for variant in runs] == [[True, True, False], [True, True, False]]
    assert all(r["after"] for variant in runs for r in variant if r) and len(seen) == 4
    trained.clear()
    runs = bench_train.run_jobs(jobs, 3, 0.0, resume=True, after=after, deadline=clock[0] + 1000.0)
    assert trained == ["variant00/repeat2", "variant01/repeat2"]  # the first four read back, then the rest
    assert all(all(variant) for variant in runs) and len(seen) == 4 + 6
    trained.clear()
    (tmp_path / "variant00" / "repeat0" / "result.json").unlink()  # a run to redo, first in the order
    runs = bench_train.run_jobs(jobs, 3, 0.0, resume=True, deadline=0.0)  # a deadline past: nothing trained
    assert trained == [] and [[bool(r) for r in variant] for variant in runs] == [[False, True, True], [True] * 3]


def test_train_bench_repeats_a_variant_for_a_fixed_number_of_updates(tmp_path):
    config = tiny_config_file(tmp_path)
    report, out = tmp_path / "report", tmp_path / "bench.json"
    args = ["--config", str(config), "--updates", "3", "--repeats", "2", "--json", str(out), "--report", str(report)]
    args += ["--vary", "model.dropout=0.1,0.3", "--workers", "2"]  # two runs at once, each on its own core
    assert bench_train.main(args) == 0
    payload = json.loads(out.read_text())
    variant, other = payload["variants"]
    assert len(variant["runs"]) == 2 and set(variant["intervals"]) == set(bench_train.KEY_FIGURES)
    for repeat, run in enumerate(variant["runs"]):
        assert run["run_dir"] == str(report / "variant00" / f"repeat{repeat}") and run["updates"] == 3
        assert run["seed_offset"] == repeat
        log = [json.loads(line) for line in (Path(run["run_dir"]) / "log.jsonl").read_text().splitlines()]
        assert [r["update"] for r in log if r["event"] == "epoch"][-1] == 3
    first, second = variant["runs"]
    assert first["train_loss"] != second["train_loss"]  # other seeds, another run: the interval has a spread
    (comparison,) = payload["paired"]  # the second variant against the first, seed by seed
    assert "tgt_tokens_per_s" in comparison  # both trained in this invocation: their speeds pair
    losses = [run["valid_loss"] - base["valid_loss"] for run, base in zip(other["runs"], variant["runs"])]
    assert comparison["valid_loss"]["values"] == pytest.approx(losses)
    table = (report / "table.md").read_text()
    assert " ± " in table and "variant against dropout=0.1" in table and "dropout=0.3" in table


def test_train_bench_trains_listed_variants_each_as_given_and_refuses_a_mix_with_a_grid(tmp_path, capsys):
    config = tiny_config_file(tmp_path)
    args = ["--config", str(config), "--updates", "2", "--json", str(tmp_path / "b.json"), "--report", str(tmp_path)]
    listed = ["--variant", "", "--variant", "model.dropout=0.3  loss.label_smoothing=0.2"]  # '' = the config as is
    assert bench_train.main([*args, *listed]) == 0
    payload = json.loads((tmp_path / "b.json").read_text())
    assert [v["overrides"] for v in payload["variants"]] == [
        [],
        ["model.dropout=0.3", "loss.label_smoothing=0.2"],  # two keys in one variant, not a grid of four
    ]
    trained = yaml.safe_load((Path(payload["variants"][1]["run_dir"]) / "config.yaml").read_text())
    assert trained["model"]["dropout"] == 0.3 and trained["loss"]["label_smoothing"] == 0.2
    with pytest.raises(SystemExit):
        bench_train.main([*args, *listed, "--vary", "train.lr=0.001,0.002"])
    assert "not both" in capsys.readouterr().err
    for bad in ("model.dropout", "=0.3", "model.dropout="):
        with pytest.raises(SystemExit, match="must look like"):
            bench_train.main([*args, "--variant", bad])


def test_train_bench_scores_best_checkpoints_with_a_beam_and_pairs_a_later_grid_against_an_earlier_one(
    tmp_path, monkeypatch, capsys
):
    config = tiny_config_file(tmp_path, train={"max_epochs": 100})
    budget = ["--config", str(config), "--updates", "4", "--repeats", "2", "--workers", "2", "--eval-beam", "2"]
    base = [*budget, "--json", str(tmp_path / "base.json"), "--report", str(tmp_path / "base")]
    assert bench_train.main(base) == 0
    (baseline,) = json.loads((tmp_path / "base.json").read_text())["variants"]
    for run in baseline["runs"]:
        scores = json.loads((Path(run["run_dir"]) / "val.beam2.json").read_text())
        assert scores["beam"] == 2 and scores["checkpoint"].endswith("checkpoint_best.pt")
        assert run["valid_bleu_beam"] == scores["bleu"] and run["eval_beam"] == 2
        assert run["valid_chrf_beam"] == scores["chrf"]
        assert json.loads((Path(run["run_dir"]) / "result.json").read_text())["valid_bleu_beam"] == scores["bleu"]

    later = [*budget, "--vary", "model.dropout=0.3", "--against", str(tmp_path / "base.json")]
    assert bench_train.main([*later, "--json", str(tmp_path / "later.json"), "--report", str(tmp_path / "later")]) == 0
    payload = json.loads((tmp_path / "later.json").read_text())
    first, other = payload["variants"]
    assert first == baseline and other["overrides"] == ["model.dropout=0.3"]
    (c,) = payload["paired"]
    beam = [run["valid_bleu_beam"] - b["valid_bleu_beam"] for run, b in zip(other["runs"], baseline["runs"])]
    assert c["valid_bleu_beam"]["values"] == pytest.approx(beam)
    chrf = [run["valid_chrf_beam"] - b["valid_chrf_beam"] for run, b in zip(other["runs"], baseline["runs"])]
    assert c["valid_chrf_beam"]["values"] == pytest.approx(chrf)
    assert "tgt_tokens_per_s" not in c  # the baseline's speeds were measured at another time: no ratio
    table = (tmp_path / "later" / "table.md").read_text()
    assert "valid BLEU difference (best checkpoint, beam)" in table and "valid chrF difference" in table
    assert "— (not paired)" in table

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(bench_train, "run_variant", no_training)
    assert bench_train.main([*base, "--resume"]) == 0  # every run (and its score) read back
    assert json.loads((tmp_path / "base.json").read_text())["variants"][0] == baseline
    other_budget = [a if a != "4" else "5" for a in later]
    with pytest.raises(SystemExit):
        bench_train.main([*other_budget, "--json", str(tmp_path / "x.json"), "--report", str(tmp_path / "x")])
    assert "was not trained like these runs: updates 4 there, 5 here" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # other seeds: repeat r would pair runs of other seeds
        bench_train.main([*later, "--set", "train.seed=4", "--json", str(tmp_path / "s.json"), "--report", "s"])
    assert "--set train.seed=4 does not pair with it" in capsys.readouterr().err

    elsewhere = json.loads((tmp_path / "base.json").read_text())
    elsewhere["variants"][0]["runs"][1]["hardware"] = "Other CPU (AVX2), float32 training (no native bf16)"
    (tmp_path / "elsewhere.json").write_text(json.dumps(elsewhere))
    on_another_cpu = [a if a != str(tmp_path / "base.json") else str(tmp_path / "elsewhere.json") for a in later]
    with pytest.raises(SystemExit):
        bench_train.main([*on_another_cpu, "--json", str(tmp_path / "y.json"), "--report", str(tmp_path / "y")])
    assert "was trained on Other CPU (AVX2), float32 training (no native bf16), this machine is" in (
        capsys.readouterr().err
    )
    del elsewhere["variants"][0]["runs"][1]["hardware"]
    (tmp_path / "elsewhere.json").write_text(json.dumps(elsewhere))
    with pytest.raises(SystemExit):
        bench_train.main([*on_another_cpu, "--json", str(tmp_path / "y.json"), "--report", str(tmp_path / "y")])
    assert "its runs do not name their CPU" in capsys.readouterr().err


def test_paired_comparisons_pair_the_runs_of_the_same_seeds():
    def variant(dropout, losses, speeds):
        runs = [{"valid_loss": loss, "valid_bleu": 30.0, "tgt_tokens_per_s": s} for loss, s in zip(losses, speeds)]
        return {"overrides": [f"model.dropout={dropout}"], "runs": runs}

    # seed by seed the second variant's loss is 0.1 higher and its speed twice: no spread once paired,
    # where the seeds' own spread (1 to 3) would swamp an unpaired interval
    (c,) = bench_train.paired(
        [variant(0.1, [1.0, 3.0, 2.0], [10, 30, 20]), variant(0.3, [1.1, 3.1, 2.1], [20, 60, 40])]
    )
    assert c["variant"] == "dropout=0.3" and c["against"] == "dropout=0.1"
    assert c["valid_loss"]["low"] == pytest.approx(0.1) and c["valid_loss"]["high"] == pytest.approx(0.1)
    assert c["tgt_tokens_per_s"]["mean"] == pytest.approx(2.0) and c["valid_bleu"]["mean"] == 0.0
    assert bench_train.paired([variant(0.1, [1.0], [1.0])]) == []  # one variant: nothing to pair


def test_beam_scores_pair_each_on_its_own_when_earlier_runs_lack_chrf():
    def variant(dropout, bleu, chrf):
        runs = [{"valid_loss": 1.0, "valid_bleu": 30.0, "tgt_tokens_per_s": 1.0, "valid_bleu_beam": b} for b in bleu]
        for run, c in zip(runs, chrf):
            run |= {"valid_chrf_beam": c} if c is not None else {}
        return {"overrides": [f"model.dropout={dropout}"], "runs": runs}

    # the first variant's runs were scored before chrF was recorded: BLEU still pairs, chrF does not
    (c,) = bench_train.paired([variant(0.1, [30.0, 31.0], [None, None]), variant(0.3, [31.0, 33.0], [50.0, 51.0])])
    assert c["valid_bleu_beam"]["values"] == pytest.approx([1.0, 2.0]) and "valid_chrf_beam" not in c
    table = bench_train.paired_table([c]).markdown()
    assert "valid BLEU difference (best checkpoint, beam)" in table and "chrF" not in table


@pytest.fixture(scope="module")
def tiny_lstms(tmp_path_factory):
    """Tiny LSTMs with padded and packed encoders, a few updates each through `python -m mtapp.train`."""
    tmp = tmp_path_factory.mktemp("lstms")
    write_synthetic_corpus(tmp, train=300)
    runs = {}
    for mode in ("padded", "packed"):
        model = {"type": "lstm", "encoder_padding": mode, "d_model": 32, "rnn_hidden": 16, "rnn_layers": 2}
        config = tmp / f"{mode}.yaml"
        config.write_text(yaml.safe_dump(tiny_config(tmp, model=model, train={"max_updates": 8, "max_epochs": 100})))
        runs[mode] = tmp / mode
        assert train.main(["--config", str(config), "--run-dir", str(runs[mode])]) == 0
    return runs


def test_first_over_mean_reads_the_first_real_position_on_either_pad_side():
    norms = torch.tensor([[2.0, 1.0, 3.0, 0.5], [0.7, 0.9, 4.0, 2.0]])
    pads = torch.tensor([[False, False, False, True], [True, True, False, False]])  # post-padded, pre-padded
    assert padding_probes.first_over_mean(norms, pads).tolist() == pytest.approx([2.0 / 2.0, 4.0 / 3.0])


def test_first_position_gradient_of_an_exact_encoder_does_not_depend_on_the_pad_side(tiny_lstms):
    post, pre = (padding_probes.first_position_gradient(tiny_lstms["packed"], pad_side=s) for s in ("post", "pre"))
    assert 0 < post < 10 and post == pytest.approx(pre, rel=1e-4)
    post, pre = (padding_probes.first_position_gradient(tiny_lstms["padded"], pad_side=s) for s in ("post", "pre"))
    assert post != pytest.approx(pre, rel=1e-3)  # the padded LSTM reads the pads


def test_state_drift_is_zero_for_an_exact_encoder_only(tiny_lstms):
    assert max(padding_probes.state_drift(tiny_lstms["packed"]).values()) < 1e-5
    assert min(padding_probes.state_drift(tiny_lstms["padded"]).values()) > 1e-3


def test_claims_probe_each_lstm_run_once_then_delete_its_model_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(claims, "first_position_gradient", lambda d: calls.append(("gradient", d.name)) or 0.5)
    monkeypatch.setattr(claims, "state_drift", lambda d: calls.append(("drift", d.name)) or {"post": 0.1, "pre": 0.2})
    lstm_jobs, transformer_jobs = claims.jobs(tmp_path, 350, 350)
    runs = []
    for job in lstm_jobs + transformer_jobs:
        job.folder.mkdir(parents=True)
        for name in ("checkpoint_best.pt", "checkpoint_last.pt", "spm.model", "log.jsonl", "config.yaml"):
            (job.folder / name).write_text("x")
        runs.append(claims.finish(job, {"overrides": job.overrides, "run_dir": str(job.folder)}))
    assert lstm_jobs[0].overrides == claims.PADDED_POST
    assert sorted(calls) == sorted([("drift", "variant00")] + [("gradient", f"variant{i:02d}") for i in (0, 1, 4, 5)])
    saved = json.loads((lstm_jobs[0].folder / "result.json").read_text())
    assert saved["state_drift"] == {"post": 0.1, "pre": 0.2} and saved["first_position_gradient"] == 0.5
    assert runs[0] == saved and "first_position_gradient" not in runs[4]  # Transformers are not probed
    for job in lstm_jobs + transformer_jobs:  # the records are kept, the model files gone
        assert sorted(p.name for p in job.folder.iterdir()) == ["config.yaml", "log.jsonl"] + (
            ["result.json"] if job in lstm_jobs else []
        )
    calls.clear()
    assert claims.finish(lstm_jobs[0], saved) == saved and calls == []  # probed once, even without checkpoints
    with pytest.raises(SystemExit, match="lacks first_position_gradient and its checkpoints"):
        claims.finish(lstm_jobs[1], {"overrides": lstm_jobs[1].overrides, "run_dir": str(lstm_jobs[1].folder)})
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "checkpoint_best.pt").write_text("x")
    claims.finish(transformer_jobs[0], {"overrides": [], "run_dir": str(kept)}, keep_checkpoints=True)
    assert (kept / "checkpoint_best.pt").exists()


def test_claims_runs_of_each_kind_of_machine_go_to_their_own_folder(tmp_path):
    folders = {
        claims.machine_folder(tmp_path, h)
        for h in (
            "AMD EPYC, bf16 training (native bf16)",
            "AMD EPYC, float32 training (no native bf16)",
            "Intel(R) Xeon(R) CPU @ 2.20GHz, float32 training (no native bf16)",
        )
    }
    assert len(folders) == 3 and all(f.parent == tmp_path and f.name.isascii() and " " not in f.name for f in folders)
    # quality runs pool by precision, across machines, each run naming its processor
    assert claims.quality_folder(tmp_path, "bf16") == tmp_path / "quality-bf16"
    runs = [
        {"hardware": "AMD EPYC (AVX512), bf16 training (native bf16)"},
        {"hardware": "Xeon (AVX512), bf16 training"},
    ]
    label = claims.pool_label("bf16", runs + runs[:1])
    assert label.startswith("bf16 training on AMD EPYC (AVX512), Xeon (AVX512)")


def test_complete_counts_the_repeats_every_variant_has_finished():
    assert claims.complete([[{"a": 1}, {"a": 1}, {}], [{"a": 1}, {}, {}]]) == 1
    assert claims.complete([[{"a": 1}] * 3] * 2) == 3
    assert claims.complete([[{}, {}], [{"a": 1}, {}]]) == 0


def _runs_for(jobs, lstm, transformer):
    """What `run_jobs` gives back for `jobs`: each job's runs, from the fake grids' variants."""
    records = {tuple(sorted(r["overrides"])): bench_train.runs_of(r) for r in lstm + transformer}
    return [list(records[tuple(sorted(j.overrides))]) for j in jobs]


@pytest.fixture
def fake_speed(monkeypatch):
    """`bench speed` replaced by a payload of chosen rounds; the settings it was called with."""
    from tests.test_bench_speed import fake_speed_payload

    calls = []
    monkeypatch.setattr(speed, "measure", lambda args: calls.append(args) or fake_speed_payload())
    return calls


def test_claims_main_measures_speed_then_quality_and_puts_single_measurements_beside_the_rows(
    tmp_path, monkeypatch, fake_speed
):
    lstm, transformer = fake_grids()
    calls = []

    def fake_run_jobs(jobs, repeats, minutes, resume=False, after=None, deadline=None, workers=1):
        calls.append((jobs, repeats, minutes, resume, deadline, workers))
        return _runs_for(jobs, lstm, transformer)

    monkeypatch.setattr(claims, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(claims, "this_cpu", lambda: "Test CPU, float32 training (no native bf16)")
    monkeypatch.setattr(claims, "training_precision", lambda: "float32")
    (tmp_path / "gpu.json").write_text(json.dumps(_gpu_check()))
    (tmp_path / "inv.json").write_text(json.dumps({"machine": None, "results": _decodes("transformer", 0, 2)}))
    report = tmp_path / "report"
    args = ["--report", str(report), "--lstm-updates", "40", "--gpu-json", str(tmp_path / "gpu.json"), "--repeats", "3"]
    assert claims.main([*args, "--invariance-json", str(tmp_path / "inv.json")]) == 0
    folder = report / "test-cpu-float32-training-no-native-bf16"
    assert [(a.minutes, a.out) for a in fake_speed] == [(speed.DEFAULT_MINUTES, folder / "speed")]  # speed first
    assert [call[1:] for call in calls] == [(3, 0.0, True, None, 1)] * 2
    jobs = calls[0][0] + calls[1][0]
    assert [(j.config.stem, j.updates) for j in calls[0][0]] == [("multi30k_de_en_lstm", 40)] * 4
    assert [j.overrides[0] for j in calls[0][0]] == ["model.encoder_padding=padded"] * 2 + [
        "model.encoder_padding=packed"
    ] * 2
    assert [(j.config.stem, j.updates) for j in calls[1][0]] == [
        ("multi30k_de_en_transformer_base", claims.UPDATES)
    ] * 2
    assert [j.overrides for j in calls[1][0]] == claims.QUALITY_TRANSFORMER
    assert [j.folder.name for j in jobs] == [
        "variant00",
        "variant01",
        "variant04",
        "variant05",
        "variant00",
        "variant05",
    ]
    # quality runs pool by precision over every machine (the speed rounds and report stay the machine's)
    assert all(j.folder.parent.parent == report / "quality-float32" for j in jobs)
    payload = json.loads((folder / "claims.json").read_text())
    letters = [r["claim"][:3] for r in payload["verdicts"]]
    expected = [
        "(a)",
        "(a)",
        "(b)",
        "(c)",
        "(c)",
        "(co",
        "(d)",
        "(d)",
        "(e)",
        "(f)",
        "(g)",
        "(g)",
        "(i)",
        "(i)",
        "(j)",
        "(k)",
    ]
    assert letters == expected
    assert [r["hardware"].startswith("NVIDIA H200") for r in payload["verdicts"][:2]] == [False, True]
    assert "valid loss pre minus post: padded" in payload["verdicts"][0]["numbers"]  # (a): speed and, over seeds, loss
    assert payload["lstm"][0]["runs"][2]["tgt_tokens_per_s"] == pytest.approx(1000 * SLOW_SPELLS[2])
    assert payload["complete"] == {"lstm": 3, "transformer": 3} and payload["machine_hours"] == pytest.approx(3.0)
    assert (folder / "report.html").exists() and (folder / "forest.png").exists() and (folder / "lstm.png").exists()
    (folder / "speed").mkdir()
    (folder / "speed" / "speed.json").write_text(json.dumps({"groups": {"lstm_tokens": {"rounds": [{}] * 2}}}))
    assert claims.main(args) == 0 and fake_speed[-1].minutes == speed.DEFAULT_MINUTES  # a group without rounds
    saved = {"groups": {name: {"rounds": [{}] * 2} for name in speed.GROUPS}}
    (folder / "speed" / "speed.json").write_text(json.dumps(saved))
    assert claims.main(args) == 0 and fake_speed[-1].minutes == 0  # every group has rounds: read back, none added
    assert claims.main([*args, "--speed-minutes", "5"]) == 0 and fake_speed[-1].minutes == 5
    calls.clear()
    assert claims.main([*args, "--parallel", "2"]) == 0 and [call[-1] for call in calls] == [2, 2]


def test_claims_main_judges_the_complete_seeds_of_an_unfinished_run(tmp_path, monkeypatch, capsys, fake_speed):
    lstm, transformer = fake_grids()
    runs = {"lstm": None, "transformer": None}
    deadlines = []

    def fake_run_jobs(jobs, *args, deadline=None, **kwargs):
        deadlines.append(deadline)
        grid = "lstm" if jobs[0].config.stem.endswith("lstm") else "transformer"
        if runs[grid] is None:
            runs[grid] = _runs_for(jobs, lstm, transformer)
        return runs[grid]

    monkeypatch.setattr(claims, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(claims, "this_cpu", lambda: "Test CPU")
    assert claims.main(["--report", str(tmp_path), "--hours", "2", "--repeats", "3", "--speed-minutes", "0"]) == 0
    runs["lstm"][3][2] = {}  # the LSTM grid's third seed not made yet (packed pre)
    runs["transformer"][0][1] = runs["transformer"][0][2] = {}  # nor the Transformer's second and third
    assert claims.main(["--report", str(tmp_path), "--hours", "2", "--repeats", "3"]) == 0
    payload = json.loads((tmp_path / "test-cpu" / "claims.json").read_text())
    assert payload["complete"] == {"lstm": 2, "transformer": 1}
    quality = [r["claim"][:3] for r in payload["verdicts"] if r["claim"][1] in "bef"]
    assert quality == ["(b)", "(e)", "(f)"]
    assert [len(r["runs"]) for r in payload["lstm"]] == [2] * 4 and "runs" not in payload["transformer"][0]
    assert "LSTM 2, Transformer 1 of 3; rerun the same command to continue" in capsys.readouterr().out
    runs["transformer"][0][0] = {}  # the Transformer grid with no complete seed: no row (e), but its runs shown
    assert claims.main(["--report", str(tmp_path), "--no-train", "--repeats", "3"]) == 0
    # the LSTM grid unfinished: the Transformer grid trains nothing; --no-train: a deadline already past
    assert deadlines[2] > 0 and deadlines[3:] == [0.0] * 3
    payload = json.loads((tmp_path / "test-cpu" / "claims.json").read_text())
    assert [r["claim"][:3] for r in payload["verdicts"] if r["claim"][1] in "bef"] == ["(b)", "(f)"]
    report = (tmp_path / "test-cpu" / "report.md").read_text()
    assert "Each run so far:" in report and report.count("| strategy=") == 1 * 3  # every finished run


def test_claims_grids_trains_the_grids_named_in_their_order_and_judges_the_others_finished_runs(
    tmp_path, monkeypatch, capsys, fake_speed
):
    lstm, transformer = fake_grids()
    calls = []

    def fake_run_jobs(jobs, *args, deadline=None, **kwargs):
        grid = "lstm" if jobs[0].config.stem.endswith("lstm") else "transformer"
        calls.append((grid, deadline))
        return _runs_for(jobs, lstm, transformer)

    monkeypatch.setattr(claims, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(claims, "this_cpu", lambda: "Test CPU")
    assert claims.main(["--report", str(tmp_path), "--grids", "transformer", "--repeats", "3"]) == 0
    assert calls == [("transformer", None), ("lstm", 0.0)]  # the LSTM grid only read back
    payload = json.loads((tmp_path / "test-cpu" / "claims.json").read_text())
    assert payload["complete"] == {"lstm": 3, "transformer": 3} and len(payload["verdicts"]) == 10
    calls.clear()
    assert (
        claims.main(["--report", str(tmp_path), "--grids", "transformer,lstm", "--hours", "1", "--repeats", "3"]) == 0
    )
    assert [grid for grid, _ in calls] == ["transformer", "lstm"] and all(d > 0 for _, d in calls)
    for bad in ("gru", "lstm,lstm", ""):
        with pytest.raises(SystemExit):
            claims.main(["--report", str(tmp_path), "--grids", bad])
        assert "--grids" in capsys.readouterr().err


def test_profile_bench_accounts_for_the_profiled_time_by_operator_and_kind(tmp_path):
    config = tiny_config_file(tmp_path, batching={"max_tokens": 256})
    out = tmp_path / "profile"
    assert (
        profiling.main(
            ["--config", str(config), "--set", "train.amp=off", "--warmup", "2", "--steps", "3", "--out", str(out)]
        )
        == 0
    )
    payload = json.loads((out / "profile.json").read_text())
    assert payload["precision"] == "float32" and payload["tgt_tokens_per_s"] > 0
    assert sum(k["share"] for k in payload["kinds"]) == pytest.approx(1.0)
    shares = [r["share"] for r in payload["top"]]
    assert shares == sorted(shares, reverse=True)
    products = [r for r in payload["top"] if r["kind"] == "matrix multiply"]
    counted = [r for r in products if r["operator"] in ("aten::mm", "aten::addmm", "aten::bmm")]
    assert counted and all(r["gflop_per_s"] > 0 for r in counted)  # the profiler counted their FLOPs
    assert profiling.kind("aten::copy_") == "dtype copies"
    assert profiling.kind("aten::native_layer_norm") == "normalisation"
    assert payload["command"] in (out / "profile.md").read_text()
