"""The peers benchmark (scripts/peers/, run by scripts/bench_peers.sh): the pure parts — peer log
parsing, the FLOP formula, ratios and targets, the peer configs — and the child-process
measurement. No peer toolkit is installed or run here."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mtapp.batching import collate
from mtapp.bench import __main__ as bench_main
from mtapp.bench.child import Command, Finished, run
from mtapp.bench.machine import forward_macs, training_flops_per_token
from mtapp.config import DEFAULT_CONFIG, ModelConfig, config_from_dict, load_config
from mtapp.data.corpora import read_lines
from mtapp.loss import batch_loss
from mtapp.models import build_model
from scripts.peers import bench as peers
from scripts.peers import launch as peers_launch
from scripts.peers import peer_joeynmt as peers_joeynmt
from scripts.peers import peer_opennmt as peers_opennmt
from scripts.peers import report as peers_report
from scripts.peers.data import count_pieces, detokenise, prepare_pieces
from scripts.peers.launch import Budget
from scripts.peers.settings import Shared
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus

ONMT_LOG = """\
[2024-05-01 10:00:00,000 INFO] Start training loop without validation...
[2024-05-01 10:01:00,000 INFO] Step 50/1000000000; acc: 10.1; ppl: 2000.0; xent: 7.6; lr: 0.00006; \
sents:   12000; bsz: 2900/3000/240; 2480/2500 tok/s;     60 sec;
[2024-05-01 10:02:00,000 INFO] Step 100/1000000000; acc: 20.1; ppl: 200.0; xent: 5.3; lr: 0.00012; \
sents:   12000; bsz: 2900/2000/240; 2480/1667 tok/s;    120 sec;
[2024-05-01 10:02:30,000 INFO] Step 150/1000000000; acc: 30.1; ppl: 100.0; xent: 4.6; lr: 0.00018; \
sents:   12000; bsz: 2900/1000/240; 2480/1667 tok/s;    150 sec;
[2024-05-01 10:03:00,000 INFO] Total translation time (s): 12.5
"""

JOEY_LOG = """\
2024-05-01 10:00:00,000 - INFO - joeynmt.training - EPOCH 1
2024-05-01 10:01:00,000 - INFO - joeynmt.training - Epoch   1, Step:       50, Batch Loss:     7.100000, \
Batch Acc: 0.050000, Tokens per Sec:      800, Lr: 0.000063
2024-05-01 10:02:00,000 - INFO - joeynmt.training - Epoch   1, Step:      100, Batch Loss:     6.100000, \
Batch Acc: 0.150000, Tokens per Sec:      700, Lr: 0.000125
2024-05-01 10:03:00,000 - INFO - joeynmt.prediction - Generation took 93.2500[sec].
"""


def test_opennmt_log_gives_its_tokens_per_second_and_decoding_time():
    # after the first report: 50 batches of 2000 and 50 of 1000 target tokens in 150 - 60 s
    assert peers_opennmt.reported_tokens_per_s(ONMT_LOG) == pytest.approx(150_000 / 90)
    assert peers_opennmt.reported_tokens_per_s(ONMT_LOG.split("\n[2024-05-01 10:02:00")[0]) is None
    assert peers_opennmt.decode_seconds(ONMT_LOG) == 12.5
    assert peers_opennmt.decode_seconds("nothing") is None
    # steps below 10 are padded ("%2d"): lines of a real OpenNMT-py 3.5.1 run
    padded = """\
[2026-11-28 21:54:56,524 INFO] Step  2/1000000000; acc: 0.0; ppl: 8192.9; xent: 9.0; lr: 0.00000; \
sents:     562; bsz: 3066/3734/281; 158/192 tok/s;     39 sec;
[2026-11-28 21:55:09,332 INFO] Step  4/1000000000; acc: 0.0; ppl: 8049.5; xent: 9.0; lr: 0.00001; \
sents:     412; bsz: 2688/2702/206; 420/422 tok/s;     52 sec;
"""
    assert peers_opennmt.reported_tokens_per_s(padded) == pytest.approx(2702 * 2 / 13)


def test_joeynmt_log_gives_its_tokens_per_second_and_decoding_time():
    assert peers_joeynmt.reported_tokens_per_s(JOEY_LOG) == pytest.approx(750)
    assert peers_joeynmt.reported_tokens_per_s("EPOCH 1") is None
    assert peers_joeynmt.decode_seconds(JOEY_LOG) == 93.25


def test_flop_formula_matches_a_hand_count_for_a_tiny_model():
    d, f, vocab, s, t = 4, 8, 10, 3, 2  # one encoder and one decoder layer
    encoder = s * (4 * d * d + 2 * d * f) + 2 * s * s * d  # 3*(64+64) + 72 = 456
    decoder = t * (4 * d * d + 2 * d * f) + 2 * t * t * d + 2 * t * d * d + 2 * s * d * d + 2 * t * s * d
    assert (encoder, decoder) == (456, 256 + 32 + 64 + 96 + 48)
    assert forward_macs(s, t, d, f, 1, 1, vocab) == encoder + decoder + t * d * vocab
    # corpus average: total training FLOPs (3 x 2 x multiply-adds) over total target tokens
    per_token = training_flops_per_token([3, 3], [2, 2], d, f, (1, 1), vocab)
    assert per_token == pytest.approx(6 * forward_macs(3, 2, d, f, 1, 1, vocab) / 2)


def test_flop_formula_counts_what_mtapps_transformer_computes():
    cfg = ModelConfig(d_model=16, heads=2, encoder_layers=2, decoder_layers=1, ffn_dim=24, dropout=0.0)
    model = build_model(cfg, 50)
    batch = collate([[5, 6, 7, 8, 9]], [[10, 11, 12]], torch.tensor([0]), "post")  # S = 6, T = 4 with eos/bos
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):  # attention as matmuls the counter sees
        loss, _, _ = batch_loss(model, batch, 0.1)
        loss.backward()
    assert counter.get_total_flops() == 6 * forward_macs(6, 4, 16, 24, 2, 1, 50)


def _result(system, tok, sent, bleu, rss=1000.0, precision="fp32", length=10.0, fixed=None):
    return {
        "system": system,
        "version": system,
        "precision": precision,
        "threads": 2,
        "updates": 100,
        "tgt_tokens_per_s": tok,
        "reported_tokens_per_s": None,
        "peak_rss_mb": rss,
        "tree_peak_mb": rss,
        "sentences_per_s": sent,
        "sentences_per_s_command": sent / 2,
        "output_pieces_per_sentence": length,
        "output_pieces_per_s": sent * length,
        "fixed_sentences_per_s": fixed,
        "fixed_output_pieces_per_sentence": None if fixed is None else 20.0,
        "bleu": bleu,
        "chrf": 50.0,
        "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
    }


def test_targets_compare_mtapp_with_the_best_peer_of_each_column():
    systems = [
        _result("mtapp", 3300, 80, 36.0, rss=2000, precision="bf16 autocast", fixed=50),
        _result("opennmt", 2000, 70, 36.5, rss=3500, length=5.0, fixed=20),  # faster per sentence, half as long
        _result("joeynmt", 800, 11, 30.0, rss=1500, fixed=30),  # faster than opennmt at equal work
        {"system": "sockeye", "error": "not installed"},
    ]
    rows = {r["key"]: r for r in peers_report.targets(systems)}
    assert rows["tgt_tokens_per_s"]["best_peer"] == "opennmt"
    assert rows["tgt_tokens_per_s"]["comparison"] == pytest.approx(1.65) and rows["tgt_tokens_per_s"]["met"]
    assert rows["sentences_per_s"]["comparison"] == pytest.approx(80 / 70) and not rows["sentences_per_s"]["met"]
    assert rows["bleu"]["comparison"] == pytest.approx(-0.5) and rows["bleu"]["met"] is False
    equal = rows["fixed_sentences_per_s"]
    assert equal["best_peer"] == "joeynmt" and equal["comparison"] == pytest.approx(50 / 30) and not equal["met"]
    assert peers_report.best_peer(systems[1:3], "peak_rss_mb")["system"] == "joeynmt"  # memory: lowest is best
    payload = {
        "systems": systems,
        "settings": vars(Shared(minutes=10)),
        "flops_per_target_token": 1e8,
        "machine": {"processor": "cpu", "cpus": 2, "torch": "2", "threads": 2, "fp32_peak_flops": 1e11,
                    "bf16_peak_flops": 4e11},
    }  # fmt: skip
    table = peers_report.markdown(payload)
    assert "| mtapp | bf16 autocast, 2 threads | 100 | 3,300 |" in table
    assert "| 82.5% of the bf16 peak |" in table  # MFU: 3300 x 1e8 / 4e11, the peak of the precision that ran
    assert "| 200.0% |" in table  # opennmt, fp32: no bf16 figure
    assert "| opennmt | 1.65× | 1.14× | 2.29× | 2.50× | -0.50 | 0.57× |" in table  # subwords/s: 800 / 350
    best = "| best peer | 1.65× (opennmt) | 1.14× (opennmt) | 2.29× (opennmt) | 1.67× (joeynmt) | -0.50 (opennmt) |"
    assert best + " 1.33× (joeynmt) |" in table
    assert "| 5.0; 350 | 20.0 (20.0) |" in table and "every output 20 subwords" in table
    assert "sockeye | not measured: not installed" in table and "**no**" in table
    assert "Decoding: 3 rounds after all systems trained" in table  # Shared's default
    assert "Decoding: one round" in peers_report.markdown(payload | {"settings": vars(Shared(decode_rounds=1))})
    skipped = peers_report.markdown(payload | {"settings": vars(Shared(minutes=10, fixed_length=0))})
    assert "equal work: not measured" in skipped and "every output 20 subwords" not in skipped


def test_targets_without_mtapp_or_peers_are_open():
    rows = peers_report.targets([{"system": "mtapp", "error": "crashed"}, _result("opennmt", 1, 1, 1)])
    assert all(r["met"] is None for r in rows)


def test_shared_settings_reach_mtapps_config():
    shared = Shared(minutes=2.5, warmup=123)
    cfg = load_config(DEFAULT_CONFIG, shared.mtapp_overrides())
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.train.max_minutes) == (5e-4, 123, 2.5)
    assert cfg.train.betas == (0.9, 0.98) and cfg.train.clip_norm == 1.0
    assert (cfg.model.d_model, cfg.model.heads, cfg.model.encoder_layers, cfg.model.ffn_dim) == (256, 4, 3, 1024)
    assert (cfg.batching.max_tokens, cfg.loss.label_smoothing, cfg.tokenizer.vocab_size) == (4096, 0.1, 8000)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("peers")
    for split, n, seed in (("train", 200, 1), ("val", 10, 2), ("test", 12, 3)):
        write_text_corpus(tmp / "corpus", split, synthetic_pairs(n, seed=seed))
    return prepare_pieces(config_from_dict(tiny_config(tmp)), tmp / "pieces", test_sentences=5)


def test_pieces_are_the_tokenizers_segmentation_and_detokenise_back(pieces):
    assert len(read_lines(pieces.path("train", "xx"))) == 200 == len(pieces.src_lengths)
    assert len(read_lines(pieces.path("test", "yy"))) == 5 == len(pieces.test_references)
    vocab = read_lines(pieces.vocab)
    assert not {"<pad>", "<unk>", "<s>", "</s>"} & set(vocab) and len(vocab) == pieces.vocab_size - 4
    lines = read_lines(pieces.path("test", "yy"))
    assert detokenise(pieces.spm_model, lines) == pieces.test_references
    assert count_pieces(pieces.spm_model, pieces.test_references) == sum(len(line.split()) for line in lines)
    assert detokenise(pieces.spm_model, [lines[0] + " <unk> </s>"]) == pieces.test_references[:1]
    assert pieces.src_lengths[0] == len(read_lines(pieces.path("train", "xx"))[0].split()) + 1  # + eos


def _decoded(seconds, wall, rss, hyps):
    command = Finished(status=0, wall_seconds=wall, peak_rss_mb=rss, tree_peak_mb=rss, timed_out=False)
    return peers.Decoded(seconds, command, hyps)


def test_decoding_summary_gives_the_median_rounds_figures(pieces):
    hyps, half = pieces.test_references, ["x"] * len(pieces.test_references)
    rounds = [_decoded(3.0, 5.0, 100, half), _decoded(1.0, 3.0, 300, half), _decoded(2.0, 4.0, 200, hyps)]
    summary = peers.decoding_summary(rounds, pieces)
    assert summary["decode_seconds"] == 2.0 and summary["sentences_per_s"] == len(hyps) / 2.0
    assert summary["translate_command_seconds"] == 4.0  # from the median round, as its translations' scores:
    assert summary["bleu"] == 100.0 and summary["bleu_signature"].startswith("nrefs:1")
    assert summary["translate_peak_rss_mb"] == 300  # memory: the largest of any round
    assert summary["decode_seconds_rounds"] == [3.0, 1.0, 2.0] and not summary["same_translations_every_round"]
    assert peers.decoding_summary(rounds[:2], pieces)["decode_seconds"] == 1.0  # even count: the lower middle
    fixed = peers.decoding_summary(rounds[:2], pieces, prefix="fixed_")
    assert fixed["fixed_decode_seconds"] == 1.0 and fixed["fixed_same_translations_every_round"]
    assert fixed["fixed_output_pieces_per_sentence"] == count_pieces(pieces.spm_model, ["x"]) and "bleu" not in fixed


def test_decoding_rounds_take_the_systems_in_turn(pieces):
    calls, saved = [], []

    def decoder(name, seconds, fail_in_round=0):
        def decode(length):
            calls.append((name, length))
            if fail_in_round and sum(c == (name, 0) for c in calls) == fail_in_round:
                raise peers.SystemFailed("translation failed (exit status 1): boom")
            return _decoded(seconds.pop(0), 1.0, 10, pieces.test_references)

        return decode

    a, b = {"system": "a", "updates": 1}, {"system": "b", "updates": 2}
    trained = [(a, decoder("a", [5.0, 20.0, 4.0, 30.0, 6.0, 10.0])), (b, decoder("b", [1.0, 2.0], fail_in_round=2))]
    peers.decode_rounds(trained, Shared(fixed_length=4, decode_rounds=3), pieces, lambda: saved.append(1))
    assert calls == [("a", 0), ("a", 4), ("b", 0), ("b", 4), ("a", 0), ("a", 4), ("b", 0), ("a", 0), ("a", 4)]
    assert a["updates"] == 1 and a["decode_seconds"] == 5.0 and a["fixed_decode_seconds"] == 20.0
    assert a["decode_seconds_rounds"] == [5.0, 4.0, 6.0] and a["fixed_decode_seconds_rounds"] == [20.0, 30.0, 10.0]
    assert b == {"system": "b", "error": "translation failed (exit status 1): boom"} and saved


def test_peer_configs_carry_the_shared_settings(pieces, tmp_path):
    shared = Shared(warmup=400)
    onmt = yaml.safe_load(peers_opennmt.write_config(tmp_path, pieces, shared).read_text())
    noam_peak = onmt["learning_rate"] * onmt["hidden_size"] ** -0.5 * min(400**-0.5, 400 * 400**-1.5)
    assert noam_peak == pytest.approx(shared.lr)
    assert (onmt["enc_layers"], onmt["heads"], onmt["transformer_ff"], onmt["batch_size"]) == (3, 4, 1024, 4096)
    assert (onmt["label_smoothing"], onmt["adam_beta2"], onmt["share_embeddings"]) == (0.1, 0.98, True)
    joey = yaml.safe_load(peers_joeynmt.write_config(tmp_path, pieces, shared).read_text())
    assert joey["training"]["learning_rate"] == shared.lr and joey["training"]["adam_betas"] == [0.9, 0.98]
    assert joey["model"]["encoder"]["ff_size"] == 1024 and joey["testing"]["beam_size"] == 5
    assert joey["data"]["src"]["voc_file"] == str(pieces.vocab)


def test_peer_commands_decode_with_beam_5_on_every_thread_given(pieces, tmp_path):
    shared = Shared(threads=3)
    venv, config, out = tmp_path / "venv", tmp_path / "c.yaml", tmp_path / "hyp"
    onmt = peers_opennmt.translate_command(venv, config, tmp_path / "m.pt", pieces, out, shared)
    options = dict(zip(onmt.args[1::2], onmt.args[2::2]))  # after the program: -option value pairs
    assert (options["-beam_size"], options["-output"]) == ("5", str(out))
    assert options["-src"] == str(pieces.path("test", "xx"))
    assert options["-max_length_ratio"] == "1.5" and options["-batch_size"] == "4096"
    assert onmt.env == {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    joey = peers_joeynmt.translate_command(venv, config, tmp_path / "m", pieces, out, shared)
    assert joey.args[-2:] == ["translate", str(config)] and "-o" not in joey.args  # -o crashes in 2.3.0
    assert (joey.stdin, joey.stdout, joey.env["OMP_NUM_THREADS"]) == (pieces.path("test", "xx"), out, "3")


def test_equal_work_decoding_runs_length_plus_one_steps_in_every_system(pieces, tmp_path):
    """mtapp: eos blocked for 20 steps, forced at the 21st; the peers: eos blocked for the first 20
    subwords, the search stopped after 21 steps (OpenNMT-py counts bos in its length)."""
    shared, venv, out = Shared(), tmp_path / "venv", tmp_path / "hyp"
    assert shared.fixed_length == 20
    onmt = peers_opennmt.translate_command(venv, tmp_path / "c.yaml", tmp_path / "m.pt", pieces, out, shared, 20)
    options = dict(zip(onmt.args[1::2], onmt.args[2::2]))
    assert (options["-max_length_ratio"], options["-min_length"], options["-max_length"]) == ("0", "20", "21")
    assert onmt.log == out.with_suffix(".log")
    config = peers_joeynmt.write_config(tmp_path, pieces, shared)
    joey = peers_joeynmt.translate_command(venv, config, tmp_path / "m", pieces, out, shared, 20)
    copy = yaml.safe_load(Path(joey.args[-1]).read_text())
    assert (copy["testing"]["min_output_length"], copy["testing"]["max_output_length"]) == (20, 21)
    assert copy["testing"]["beam_size"] == 5
    assert "min_output_length" not in yaml.safe_load(config.read_text())["testing"]  # the copy only
    assert joey.log == out.with_suffix(".log")
    assert joey.args[1] == "-c" and joey.args[3:5] == ["20", "translate"]  # min_output_length handed to its search


def test_joeynmt_patch_hands_min_output_length_to_its_search(pieces, tmp_path):
    """A stand-in `joeynmt` package whose __main__ calls `prediction.search` as JoeyNMT 2.3.0's
    predict does (without min_output_length): run through the patch, the search gets it."""
    package = tmp_path / "stand-in" / "joeynmt"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "prediction.py").write_text("def search(**kwargs):\n    return kwargs\n")
    main = "import sys\nfrom joeynmt import prediction\nprint(prediction.search(beam_size=5), sys.argv[1:])\n"
    (package / "__main__.py").write_text(main)
    shared = Shared()
    config = peers_joeynmt.write_config(tmp_path, pieces, shared)
    command = peers_joeynmt.translate_command(tmp_path / "v", config, tmp_path / "m", pieces, tmp_path / "o", shared, 7)
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    ran = subprocess.run([sys.executable, *command.args[1:]], env=env, capture_output=True, text=True, check=True)
    config_7 = str(tmp_path / "joeynmt_7.yaml")
    assert ran.stdout.strip() == f"{{'min_output_length': 7, 'beam_size': 5}} ['translate', '{config_7}']"


def test_launcher_writes_its_summary_when_the_toolkit_fails(tmp_path, monkeypatch):
    def failing(budget, argv, summary):
        assert argv == ["-config", "x.yaml"]
        budget.expired()  # the first batch
        summary.update(tgt_tokens=1234, updates=5)
        raise RuntimeError("toolkit crashed")

    monkeypatch.setitem(peers_launch.TOOLKITS, "opennmt", failing)
    path = tmp_path / "summary.json"
    monkeypatch.setattr(sys, "argv", ["launch.py", "opennmt", "60", str(path), "--", "-config", "x.yaml"])
    with pytest.raises(RuntimeError, match="toolkit crashed"):
        peers_launch.main()
    summary = json.loads(path.read_text())
    assert (summary["tgt_tokens"], summary["updates"], summary["threads"]) == (1234, 5, torch.get_num_threads())
    assert 0 <= summary["seconds"] < 60


def test_budget_clock_starts_at_the_first_batch():
    budget = Budget(0.0)
    assert budget.elapsed() == 0.0 and budget.expired() and budget.elapsed() == 0.0
    long = Budget(3600)
    assert not long.expired() and long.started is not None


def test_run_measures_a_child_and_stops_one_that_hangs(tmp_path):
    code = "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * 51200; print(sys.stdin.read()); sys.exit(3)"
    (tmp_path / "in.txt").write_text("hello")
    done = run(Command([sys.executable, "-c", code], tmp_path / "log", stdin=tmp_path / "in.txt",
                       stdout=tmp_path / "out.txt"), timeout=60)  # fmt: skip
    assert done.status == 3 and (tmp_path / "out.txt").read_text() == "hello\n"
    assert 200 < done.peak_rss_mb < 400  # the child's own memory, not this (torch-loaded) process's
    hung = run(Command([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log"), timeout=1)
    assert hung.timed_out and hung.status != 0 and hung.wall_seconds < 30


def test_bench_peers_reports_a_missing_peer_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "matmul_peak", lambda dtype: 1e11)  # the real one takes seconds
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "joeynmt.status").write_text("installation failed: no wheel")
    out = tmp_path / "out"
    args = ["--systems", "joeynmt", "--out", str(out), "--peers-dir", str(tmp_path / "peers")]
    write_text_corpus(tmp_path / "corpus", "train", synthetic_pairs(50, seed=1))
    write_text_corpus(tmp_path / "corpus", "val", synthetic_pairs(5, seed=2))
    write_text_corpus(tmp_path / "corpus", "test", synthetic_pairs(5, seed=3))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    assert peers.main([*args, "--config", str(config)]) == 0
    table = (out / "peers.md").read_text()
    assert "JoeyNMT 2.3.0 is not installed: installation failed: no wheel" in table
    assert math.isfinite(yaml.safe_load((out / "peers.json").read_text())["flops_per_target_token"])


def test_mtapp_decoded_by_ctranslate2_gets_its_own_ratios_to_each_peer():
    systems = [
        _result("mtapp", 3300, 80, 36.0, fixed=50),
        _result("mtapp-ct2-int8", 3300, 160, 35.9, fixed=150),  # the same training, decoded by CTranslate2
        _result("opennmt", 2000, 70, 36.5, fixed=30),
    ]
    table = peers_report.ratio_table(systems)
    assert "| opennmt | 1.65× | 1.14× |" in table and "| best peer | 1.65× (opennmt) |" in table
    assert "| opennmt (mtapp-ct2-int8) | 1.65× | 2.29× | 2.29× | 5.00× | -0.60 |" in table
    assert "| best peer (mtapp-ct2-int8) |" in table
    assert [r["mtapp"] for r in peers_report.targets(systems)][:2] == [3300, 80]  # the targets stay mtapp's


def test_an_engine_system_needs_mtapp_trained_before_it(tmp_path):
    with pytest.raises(SystemExit):
        peers.main(["--systems", "mtapp-ct2-int8,opennmt", "--out", str(tmp_path)])


def test_no_module_beside_the_peer_launcher_hides_one_it_or_its_toolkit_imports():
    # launch.py runs as a script from scripts/peers/, so that folder leads the peer's sys.path: a
    # module there named like a standard module (mtapp/bench/profile.py once broke OpenNMT-py's
    # imports) or like a toolkit's package would be imported in its place. mtapp/bench, which
    # held the launcher before, is kept to the same rule.
    folder = Path(peers.LAUNCHER).parent
    assert folder.name == "peers" and folder.parent.name == "scripts"
    toolkits = {"onmt", "joeynmt", "torch"}
    for where in (folder, Path(bench_main.__file__).parent):
        names = {p.stem for p in where.glob("*.py")}
        assert not names & (set(sys.stdlib_module_names) | toolkits), where


def test_the_peers_benchmark_is_no_mtapp_bench_and_says_where_it_is(capsys):
    assert bench_main.main(["peers", "--minutes", "1"]) == 2
    error = capsys.readouterr().err
    assert "error: the peers benchmark is not part of the package: run scripts/bench_peers.sh" in error
    assert bench_main.main(["peer"]) == 2
    assert "error: unknown benchmark 'peer'" in capsys.readouterr().err
    assert not list(Path(bench_main.__file__).parent.glob("peers*.py"))
