"""The decoding benchmarks: batch-invariance counting and its table, and both commands end to end
on two tiny runs (float32 decoding, pinned: nothing here depends on the CPU's bf16)."""

import json
from pathlib import Path

import pytest
import yaml

from mtapp import train
from mtapp.bench import decode, invariance, stream
from mtapp.checkpoint import load_checkpoint
from mtapp.config import config_from_dict
from mtapp.data import load_split
from mtapp.runtime import cpu_has_native_bf16
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny LSTM runs, "packed" (batch-invariant) and "padded" (its final state sees the
    pads: not invariant), trained one epoch at a negligible learning rate: near their random
    start, so their outputs differ from line to line (a trained tiny model repeats one token)."""
    tmp = tmp_path_factory.mktemp("bench_decoding")
    for split, n, seed in (("train", 300, 1), ("val", 20, 2), ("test", 20, 3)):
        write_text_corpus(tmp / "corpus", split, synthetic_pairs(n, seed=seed, max_len=6))
    model = {"type": "lstm", "d_model": 32, "rnn_hidden": 16, "rnn_layers": 1, "decoder_layers": 1}
    runs = {}
    for padding in ("packed", "padded"):
        config = tmp / f"{padding}.yaml"
        raw = tiny_config(tmp, model=model | {"encoder_padding": padding}, train={"max_epochs": 1, "lr": 1e-6})
        config.write_text(yaml.safe_dump(raw))
        runs[padding] = tmp / padding
        assert train.main(["--config", str(config), "--run-dir", str(runs[padding])]) == 0
    return runs


def test_count_changes_counts_each_line_once_and_each_budget_against_one_per_batch():
    outputs = {1: ["a", "b", "c", "d"], 64: ["a", "x", "y", "d"], 4096: ["a", "x", "c", "d"]}
    assert invariance.count_changes(outputs) == {"lines": 4, "changed": 2, "differ": {1: 0, 64: 2, 4096: 1}}
    assert invariance.count_changes({1: ["a", "b"], 8: ["a", "b"]})["changed"] == 0


def test_table_has_one_row_per_result_and_a_column_per_budget_besides_the_reference():
    result = {"model": "lstm (packed)", "precision": "float32", "beam": 5, "lines": 300, "changed": 3}
    result |= {"differ": {1: 0, 64: 2, 4096: 3}, "seconds": {1: 10.0, 64: 3.3, 4096: 1.5}}
    header, _, row = invariance.table([result], [1, 64, 4096]).splitlines()
    assert header == (
        "| model | precision | beam | lines changed (of N) | differ at 64 vs 1/batch | differ at 4096 vs 1/batch "
        "| decode s (1 / 64 / 4096) |"
    )
    assert row == "| lstm (packed) | float32 | 5 | 3 (of 300) | 2 | 3 | 10.0 / 3.3 / 1.5 |"


def test_emulated_bf16_note_only_for_bf16_on_a_cpu_without_native_bf16():
    cpu = {"cpu": "Some CPU", "native_bf16": False, "device": "cpu"}
    assert "Some CPU has no native bf16" in invariance.emulated_bf16_note(["off", "bf16"], cpu)
    assert invariance.emulated_bf16_note(["off"], cpu) == ""
    assert invariance.emulated_bf16_note(["bf16"], cpu | {"native_bf16": True}) == ""


def test_invariance_bench_finds_the_padded_lstms_changes_and_none_of_the_packed(runs, tmp_path):
    out = tmp_path / "inv"
    args = ["--run", str(runs["packed"]), "--run", str(runs["padded"]), "--splits", "test,val", "--limit", "8"]
    assert invariance.main([*args, "--budgets", "4096,64", "--beams", "1,3", "--amps", "off", "--out", str(out)]) == 0
    payload = json.loads((out / "invariance.json").read_text())
    assert payload["budgets"] == [1, 64, 4096]  # the reference, one sentence per batch, is added
    assert {"cpu", "native_bf16", "torch", "threads"} <= set(payload["machine"])
    results = payload["results"]
    assert [(r["model"], r["precision"], r["beam"], r["lines"]) for r in results] == [
        (f"lstm ({padding})", "float32", beam, 16) for padding in ("packed", "padded") for beam in (1, 3)
    ]
    for r in results:
        assert set(r["seconds"]) == {"1", "64", "4096"} and all(s > 0 for s in r["seconds"].values())
        assert r["differ"]["1"] == 0
        if r["model"] == "lstm (packed)":
            assert r["changed"] == 0 and r["differ"] == {"1": 0, "64": 0, "4096": 0}
        else:
            assert 0 < r["differ"]["4096"] <= r["changed"] <= r["lines"]
    assert "| lstm (packed) | float32 | 3 | 0 (of 16) | 0 | 0 |" in (out / "invariance.md").read_text()


def test_stream_input_cycles_the_source_lines(tmp_path):
    path = stream.write_input(["a", "b"], 5, tmp_path / "in.txt")
    assert path.read_text() == "a\nb\na\nb\na\n" and stream.count_lines(path) == 5


def test_stream_bench_refuses_decode_flags_after_the_separator(tmp_path):
    assert stream.split_passthrough(["--run", "r", "--", "--buffer-lines", "9"]) == (
        ["--run", "r"],
        ["--buffer-lines", "9"],
    )
    with pytest.raises(SystemExit):
        stream.main(["--run", str(tmp_path), "--", "--amp", "bf16"])


def test_stream_bench_translates_each_size_in_its_own_process(runs, tmp_path):
    run = runs["packed"]
    out = tmp_path / "stream"
    assert stream.main(["--run", str(run), "--lines", "20,5", "--out", str(out), "--", "--buffer-lines", "8"]) == 0
    payload = json.loads((out / "stream.json").read_text())
    assert payload["precision"] == "float32" and payload["translate_flags"] == ["--buffer-lines", "8"]
    assert [r["lines"] for r in payload["results"]] == [5, 20]
    for r in payload["results"]:
        assert r["output_lines"] == r["lines"] and r["peak_rss_mb"] > 50 and r["lines_per_s"] > 0
    cfg = config_from_dict(load_checkpoint(run / "checkpoint_best.pt")["config"])
    assert (out / "in_20.txt").read_text().splitlines() == load_split(cfg.data, "train").src[:20]


def test_invariance_bench_stops_before_decoding_when_a_split_is_missing(runs, tmp_path, capsys):
    args = ["--run", str(runs["packed"]), "--splits", "test,nosuch", "--amps", "off", "--out", str(tmp_path)]
    assert invariance.main(args) == 2
    assert "no entry for split 'nosuch'" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_bench_decode_times_every_engine_and_precision_in_rounds(trained, tmp_path):
    _, run = trained
    out = tmp_path / "decode"
    assert decode.main(["--run", str(run), "--split", "test", "--rounds", "2", "--beam", "3", "--out", str(out)]) == 0
    results = {r["variant"]: r for r in json.loads((out / "decode.json").read_text())["results"]}
    expected = {"torch float32", "torch int8", "ctranslate2 float32", "ctranslate2 int8"}
    assert expected <= set(results) and ("torch bf16" in results) == cpu_has_native_bf16()
    for r in results.values():
        assert len(r["seconds_rounds"]) == 2 and r["same_every_round"] and r["lines"] == 80 and r["peak_rss_mb"] > 0
    assert results["torch float32"]["identical_to_float32"] == 80
    assert results["ctranslate2 float32"]["identical_to_float32"] == 80  # the same search in float32
    assert results["torch int8"]["model_mb"] < results["torch float32"]["model_mb"]
    assert results["ctranslate2 int8"]["model_mb"] < results["ctranslate2 float32"]["model_mb"]
    table = (out / "decode.md").read_text()
    assert all(f"| {name} |" in table for name in results)
