import json
import subprocess
import sys
from pathlib import Path

import pytest

from mtapp import evaluate
from mtapp.evaluation import score

HYPS = ["A dog runs across the grass.", "Two men are playing soccer in a park", "a woman sings", ""]
REFS = ["A dog is running across the grass.", "Two men play soccer in the park.", "A woman is singing.", "Hi."]


def test_scores_match_the_sacrebleu_command_line_tool(tmp_path):
    (tmp_path / "hyp.txt").write_text("\n".join(HYPS) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(REFS) + "\n")
    sacrebleu = Path(sys.executable).parent / "sacrebleu"
    cli = subprocess.run(
        [
            str(sacrebleu),
            str(tmp_path / "ref.txt"),
            "-i",
            str(tmp_path / "hyp.txt"),
            "-m",
            "bleu",
            "chrf",
            "ter",
            "-f",
            "json",
            "-w",
            "2",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    expected = {entry["name"]: entry["score"] for entry in json.loads(cli.stdout)}
    assert (
        evaluate.main(
            ["--hyp", str(tmp_path / "hyp.txt"), "--ref", str(tmp_path / "ref.txt"), "--json", str(tmp_path / "s.json")]
        )
        == 0
    )
    ours = json.loads((tmp_path / "s.json").read_text())
    assert ours["bleu"] == pytest.approx(expected["BLEU"], abs=0.01)
    assert ours["chrf"] == pytest.approx(expected["chrF2"], abs=0.01)
    assert ours["ter"] == pytest.approx(expected["TER"], abs=0.01)


def test_lowercased_bleu_is_reported_separately_with_its_signature():
    result = score(["A DOG RUNS."], ["a dog runs."])
    assert result["bleu_lowercase"] == pytest.approx(100.0) and result["bleu"] < 100
    assert "case:lc" in result["bleu_lowercase_signature"] and "case:mixed" in result["bleu_signature"]


def test_mismatched_hypothesis_and_reference_counts_are_an_error(tmp_path, capsys):
    (tmp_path / "hyp.txt").write_text("one\ntwo\n")
    (tmp_path / "ref.txt").write_text("one\n")
    assert evaluate.main(["--hyp", str(tmp_path / "hyp.txt"), "--ref", str(tmp_path / "ref.txt")]) == 2
    err = capsys.readouterr().err
    assert f"--hyp {tmp_path / 'hyp.txt'} has 2 line(s) but --ref {tmp_path / 'ref.txt'} has 1" in err
