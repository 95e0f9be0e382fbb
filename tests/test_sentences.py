"""Paragraphs are translated sentence by sentence (mtapp/sentences.py, `Translator.with_sentences`)."""

import json

from mtapp import evaluate, translate
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
