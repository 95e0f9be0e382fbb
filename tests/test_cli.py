"""End to end through the real command-line entry points, on a synthetic copy task."""

import json

import pytest
import yaml

from mtapp import evaluate, train, translate
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for a few epochs through `python -m mtapp.train`."""
    tmp = tmp_path_factory.mktemp("e2e")
    corpus = tmp / "corpus"
    write_text_corpus(corpus, "train", synthetic_pairs(2000, seed=1))
    write_text_corpus(corpus, "val", synthetic_pairs(60, seed=2))
    write_text_corpus(corpus, "test", synthetic_pairs(80, seed=3))
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp, train={"max_epochs": 6}, batching={"max_tokens": 256})))
    run = tmp / "run"
    assert train.main(["--config", str(config), "--run-dir", str(run)]) == 0
    return tmp, run


def test_training_writes_checkpoints_config_and_a_log(trained):
    _, run = trained
    for name in ("checkpoint_best.pt", "checkpoint_last.pt", "config.yaml", "spm.model", "log.jsonl"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5, 6]
    assert epochs[-1]["valid_loss"] < epochs[0]["valid_loss"]
    assert all(0.5 < r["padding_efficiency"] <= 1.0 for r in epochs)


def test_evaluate_scores_far_above_chance_and_writes_results(trained, capsys):
    _, run = trained
    assert evaluate.main(["--run", str(run), "--split", "test", "--beam", "3"]) == 0
    result = json.loads((run / "eval" / "test.json").read_text())
    for key in ("bleu", "chrf", "bleu_signature", "chrf_signature", "beam", "num_sentences"):
        assert key in result
    assert result["num_sentences"] == 80 and result["beam"] == 3
    assert result["bleu"] > 60, result  # a random system scores near 0 on this task
    assert "nrefs:1|case:mixed" in capsys.readouterr().out
    assert len((run / "eval" / "test.hyp").read_text().splitlines()) == 80


def test_translate_keeps_one_line_per_input_line_and_ignores_batching(trained):
    tmp, run = trained
    lines = [s for s, _ in synthetic_pairs(40, seed=7)]
    lines[3] = ""
    lines[10] = "   "
    (tmp / "in.txt").write_text("\n".join(lines) + "\n")
    outputs = {}
    for budget in ("8", "4096"):
        out = tmp / f"out{budget}.txt"
        args = ["--run", str(run), "--input", str(tmp / "in.txt"), "--output", str(out), "--beam", "1"]
        assert translate.main([*args, "--max-tokens", budget]) == 0
        outputs[budget] = out.read_text().split("\n")[:-1]
    assert len(outputs["8"]) == len(lines)
    assert outputs["8"][3] == "" and outputs["8"][10] == ""
    assert outputs["8"] == outputs["4096"]  # one sentence per batch vs. everything in one batch
    correct = sum(o == s.upper() for o, s in zip(outputs["4096"], lines) if s.strip())
    assert correct > 0.5 * 38


def test_resume_continues_from_the_last_checkpoint(trained):
    _, run = trained
    assert train.main(["--run-dir", str(run), "--resume", "--set", "train.max_epochs=7"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r["event"] == "epoch"]
    assert epochs == [1, 2, 3, 4, 5, 6, 7]
    updates = [r["update"] for r in records if r["event"] == "epoch"]
    assert updates == sorted(updates) and updates[-1] > updates[-2]


def test_starting_over_an_existing_run_is_refused(trained, capsys):
    tmp, run = trained
    assert train.main(["--config", str(tmp / "tiny.yaml"), "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_a_checkpoint_whose_tokenizer_does_not_match_its_model_is_refused(trained, tmp_path):
    from mtapp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, tokenizer_to_tensor
    from mtapp.config import TokenizerConfig
    from mtapp.data import train_tokenizer
    from mtapp.data.corpora import ParallelText
    from mtapp.translator import Translator

    _, run = trained
    content = load_checkpoint(run / "checkpoint_best.pt")
    text = ParallelText(["a b c d e f g h"] * 50, ["i j k l m n o p"] * 50, origin="other")
    other = train_tokenizer(text, TokenizerConfig(vocab_size=30), tmp_path)
    assert other.vocab_size != content["model"]["embed.weight"].shape[0]
    content["tokenizer"] = tokenizer_to_tensor(other.model_bytes)
    save_checkpoint(tmp_path / "mixed.pt", {k: v for k, v in content.items() if k != "format"})
    with pytest.raises(CheckpointError, match="trained with .* vocabulary entries but the checkpoint's tokenizer"):
        Translator.from_checkpoint(tmp_path / "mixed.pt")


def test_a_5000_word_line_is_translated_truncated_with_a_warning(trained, caplog):
    tmp, run = trained
    lines = ["w01 w02", " ".join(["w03"] * 5000), "w04"]
    (tmp / "long.txt").write_text("\n".join(lines) + "\n")
    out = tmp / "long.out"
    args = ["--run", str(run), "--input", str(tmp / "long.txt"), "--output", str(out), "--beam", "1"]
    assert translate.main([*args, "--max-len-a", "0", "--max-len-b", "20"]) == 0
    assert len(out.read_text().split("\n")[:-1]) == 3
    assert "1 input line(s) longer than 1023 subwords were truncated" in caplog.text
