import gzip
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU

from mtapp import evaluate
from mtapp.data.corpora import MULTI30K, REGISTRY, Split, read_lines
from mtapp.scoring import moses_tokenized, score
from tests.synthetic import synthetic_pairs, tiny_config, untrained_checkpoint

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


def test_lowercased_bleu_is_tokenized_13a_and_shown_beside_cased_bleu(tmp_path, capsys):
    (tmp_path / "hyp.txt").write_text("A DOG RUNS.\nTwo Cats sleep.\n")
    (tmp_path / "ref.txt").write_text("a dog runs.\ntwo cats sleep.\n")
    args = ["--hyp", str(tmp_path / "hyp.txt"), "--ref", str(tmp_path / "ref.txt"), "--json", str(tmp_path / "s.json")]
    assert evaluate.main(args) == 0
    ours = json.loads((tmp_path / "s.json").read_text())
    expected = BLEU(lowercase=True, tokenize="13a")
    hyps, refs = ["A DOG RUNS.", "Two Cats sleep."], ["a dog runs.", "two cats sleep."]
    assert ours["bleu_lowercase"] == pytest.approx(expected.corpus_score(hyps, [refs]).score, abs=0.01)
    assert ours["bleu_lowercase"] > ours["bleu"]
    assert ours["bleu_lowercase_signature"] == str(expected.get_signature())
    assert "case:lc|eff:no|tok:13a" in ours["bleu_lowercase_signature"]
    out = capsys.readouterr().out
    assert f"BLEU = {ours['bleu_lowercase']:.2f} lowercased   {ours['bleu_lowercase_signature']}" in out


def test_the_papers_bleu_lowercases_and_moses_tokenizes_both_sides():
    """Moses splits clitics and punctuation ("isn't" -> "isn 't"), which 13a does not: the same
    outputs score differently, and only with the target language given."""
    assert moses_tokenized(["A dog's ball, isn't it?"], "en") == ["A dog 's ball , isn 't it ?"]
    hyps, refs = ["A dog's ball isn't red.", "Two cats sleep."], ["a dog's ball is not red.", "two cats sleep."]
    ours = score(hyps, refs, "en")
    lowered = [moses_tokenized(hyps, "en"), moses_tokenized(refs, "en")]
    tokenized = BLEU(lowercase=True, tokenize="none").corpus_score(lowered[0], [lowered[1]])
    assert ours["bleu_tok_lc"] == pytest.approx(tokenized.score, abs=0.01)
    assert ours["bleu_tok_lc"] != pytest.approx(ours["bleu_lowercase"], abs=0.5)
    assert (
        ours["bleu_tok_lc_signature"].startswith("moses:en|")
        and "case:lc|eff:no|tok:none" in ours["bleu_tok_lc_signature"]
    )
    assert "bleu_tok_lc" not in score(hyps, refs)


SMALL_TESTS = {"test_2016_flickr": 12, "test_2017_flickr": 10, "test_2017_mscoco": 7, "test_2018_flickr": 9}


@pytest.fixture
def small_multi30k(tmp_path, monkeypatch):
    """The registered multi30k with short test splits, in tmp_path/data holding only two of them
    (de and en); and an untrained checkpoint whose run reads it."""
    splits = {name: Split(SMALL_TESTS.get(name, s.lines), s.languages) for name, s in MULTI30K.splits.items()}
    monkeypatch.setitem(REGISTRY, "multi30k", replace(MULTI30K, splits=splits))
    folder = tmp_path / "data" / "multi30k"
    folder.mkdir(parents=True)
    for split, seed in (("test_2016_flickr", 5), ("test_2017_mscoco", 6)):
        pairs = synthetic_pairs(SMALL_TESTS[split], seed=seed)
        for lang, side in (("de", 0), ("en", 1)):
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("".join(pair[side] + "\n" for pair in pairs))
    data = {"corpus": "multi30k", "dir": str(tmp_path / "data"), "src_lang": "de", "tgt_lang": "en", "paths": {}}
    model, decode = {"d_model": 32, "ffn_dim": 64}, {"max_len_a": 0.0, "max_len_b": 4}  # small and short: fast
    raw = tiny_config(tmp_path, data=data | {"test_split": "test_2016_flickr"}, model=model, decode=decode)
    return untrained_checkpoint(tmp_path / "run" / "checkpoint_best.pt", raw), tmp_path / "data"


def test_split_all_scores_each_test_split_present_and_names_the_missing_ones(small_multi30k, capsys):
    checkpoint, data = small_multi30k
    assert evaluate.main(["--checkpoint", str(checkpoint), "--split", "all", "--beam", "1"]) == 0
    out, err = capsys.readouterr()
    assert "left out: test_2017_flickr: missing" in err and "left out: test_2018_flickr: missing" in err
    assert f"`python -m mtapp.data download multi30k --split test_2017_flickr,test_2018_flickr --dir {data}`" in err
    rows = [line.split() for line in out.splitlines() if line.startswith("test_")]
    assert [(r[0], int(r[1])) for r in rows] == [("test_2016_flickr", 12), ("test_2017_mscoco", 7)]
    assert "BLEU lowercased: nrefs:1|case:lc" in out
    eval_dir = checkpoint.parent / "eval"
    summary = json.loads((eval_dir / "all.json").read_text())
    assert [(e["name"], e["num_sentences"]) for e in summary["splits"]] == [
        ("test_2016_flickr", 12),
        ("test_2017_mscoco", 7),
    ]
    assert sorted(summary["missing"]) == ["test_2017_flickr", "test_2018_flickr"]
    for entry in summary["splits"]:  # each split written as --split SPLIT writes it, scored on its own references
        hyps = (eval_dir / f"{entry['name']}.hyp").read_text().splitlines()
        assert json.loads((eval_dir / f"{entry['name']}.json").read_text()) == entry
        refs = read_lines(data / "multi30k" / f"{entry['name']}.en.gz")
        assert entry["bleu"] == pytest.approx(BLEU().corpus_score(hyps, [refs]).score, abs=0.01)


def test_split_all_with_no_test_split_present_says_how_to_get_them(small_multi30k, capsys):
    checkpoint, data = small_multi30k
    for path in (data / "multi30k").iterdir():
        path.unlink()
    assert evaluate.main(["--checkpoint", str(checkpoint), "--split", "all"]) == 2
    err = capsys.readouterr().err
    assert "error: no test split of multi30k de-en can be read" in err
    assert "python -m mtapp.data download multi30k --split test_2016_flickr,test_2017_flickr," in err


def test_split_all_does_not_go_with_given_files(tmp_path, capsys):
    (tmp_path / "ref.txt").write_text("x\n")
    with pytest.raises(SystemExit):
        evaluate.main(["--hyp", str(tmp_path / "ref.txt"), "--ref", str(tmp_path / "ref.txt"), "--split", "all"])
    assert "--split all translates every test split" in capsys.readouterr().err
