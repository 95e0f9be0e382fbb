"""Paragraphs are translated sentence by sentence (mtapp/sentences.py, `Translator.with_sentences`)."""

import argparse
import json

from mtapp import evaluate, inference, translate
from mtapp.bench import paragraphs
from mtapp.sentences import split_sentences
from mtapp.translator import Translator
from tests.test_cli import translate_lines


def test_a_paragraph_splits_into_its_sentences():
    text = "  Ein Hund rennt über eine Wiese. Eine Frau liest ein Buch im Park!  Spielen zwei Kinder im Sand?"
    assert split_sentences(text, "de") == [
        "Ein Hund rennt über eine Wiese.",
        "Eine Frau liest ein Buch im Park!",
        "Spielen zwei Kinder im Sand?",
    ]
    assert split_sentences("Dr. Müller kommt um 8 Uhr. Er bleibt.", "de") == [
        "Dr. Müller kommt um 8 Uhr.",
        "Er bleibt.",
    ]
    assert split_sentences("   ", "de") == [] and split_sentences("no full stop", "xx") == ["no full stop"]


def test_a_line_of_sentences_translates_as_its_sentences_do_alone_unless_told_not_to(trained, tmp_path):
    tmp, run = trained
    sentences = ["w01 w02 w03.", "w04 w05 w06 w07!", "w08 w09?"]
    alone = translate_lines(tmp, run, sentences, "--beam", "1")
    lines = [" ".join(sentences), "", sentences[0]]
    assert translate_lines(tmp, run, lines, "--beam", "1") == [" ".join(alone), "", alone[0]]
    whole = translate_lines(tmp, run, lines[:1], "--beam", "1", "--no-split-sentences")
    translator = Translator.from_checkpoint(run / "checkpoint_best.pt", beam=1)
    assert translator.sentences is None and translator.source_lang == "xx"
    assert whole == translator.translate(lines[:1])  # the line as one source
    assert translator.with_sentences().translate(lines[:1]) == [" ".join(alone)]
    # evaluate: a file of paragraphs is split; a registered split (one sentence per line) is not
    (tmp_path / "src.txt").write_text(lines[0] + "\n")
    (tmp_path / "ref.txt").write_text(" ".join(s.upper() for s in sentences) + "\n")
    out = tmp_path / "eval.json"
    args = ["--run", str(run), "--src", str(tmp_path / "src.txt"), "--ref", str(tmp_path / "ref.txt"), "--beam", "1"]
    assert evaluate.main([*args, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["split_sentences"] is True
    assert evaluate.main(["--run", str(run), "--beam", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["split_sentences"] is False
    assert translate.main(["--run", str(run), "--no-split-sentences", "--input", str(tmp_path / "missing")]) == 2


def test_the_paragraph_bench_counts_lines_that_translate_as_their_sentences_alone(trained):
    _, run = trained
    parser = argparse.ArgumentParser()
    inference.add_model_args(parser)
    model = inference.load(parser.parse_args(["--run", str(run), "--amp", "off", "--beam", "1"]))
    ended = [f"w0{i} w1{i} w2{i}." for i in range(1, 7)]  # sentence ends: the splitter gives them back
    result = paragraphs.measure(model, ended, 3)
    assert (result["lines"], result["identical"], result["split_exactly"], result["differ"]) == (2, 2, 2, [])
    unended = [f"w0{i} w1{i} w2{i}" for i in range(1, 7)]  # no ends: each line is one "sentence"
    result = paragraphs.measure(model, unended, 3)
    assert result["split_exactly"] == 0  # each line translated whole, as one "sentence"
    whole = model.translator.with_sentences(False).translate([" ".join(unended[:3]), " ".join(unended[3:])])
    alone = model.translator.with_sentences(False).translate(unended)
    differs = [whole[i] != " ".join(alone[3 * i : 3 * i + 3]) for i in range(2)]
    assert [d["line"] for d in result["differ"]] == [i + 1 for i in range(2) if differs[i]]
