"""Export to CTranslate2 and the engines: the converted model scores as mtapp's does and decodes
the same hypotheses in float32 (greedy and beam), int8 stays near float32 on both engines, and
the folder alone translates through the same commands."""

import numpy as np
import pytest
import torch

from mtapp import ct2, evaluate, export, translate
from mtapp.batching import collate
from mtapp.checkpoint import save_checkpoint
from mtapp.config import Config
from mtapp.data import load_split
from mtapp.models import build_model
from mtapp.models.quantize import int8
from mtapp.scoring import score
from mtapp.search import normalised
from mtapp.translator import Translator
from tests.synthetic import EXACT_MODELS, random_ids


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    tmp, run = trained
    out = tmp_path_factory.mktemp("export")
    folders = {q: out / q for q in ("float32", "int8")}
    for quantization, folder in folders.items():
        assert export.main(["--run", str(run), "--out", str(folder), "--quantize", quantization]) == 0
    test = load_split(ct2.export_config(folders["float32"]).data, "test")
    return run, folders, test


def torch_translator(run, **overrides):
    return Translator.from_checkpoint(run / "checkpoint_best.pt", device="cpu", amp="off", **overrides)


def teacher_forced(translator, src, tgt):
    """mtapp's log-probability of each target subword and the end token, per pair."""
    batch = collate([np.asarray(s) for s in src], [np.asarray(t) for t in tgt], np.arange(len(src)), "post")
    with torch.no_grad():
        lprobs = torch.log_softmax(translator.searcher.model.project(translator.searcher.model(batch)).float(), dim=-1)
    picked = lprobs.gather(2, batch.tgt_out[:, :, None]).squeeze(2)
    return [picked[i, : len(t) + 1].tolist() for i, t in enumerate(tgt)]


def test_ctranslate2_scores_references_as_mtapp_does(exported):
    run, folders, test = exported
    mine, theirs = torch_translator(run), ct2.load_export(folders["float32"], "cpu")
    src, tgt = mine.tokenizer.encode(test.src), mine.tokenizer.encode(test.tgt)
    for expected, got in zip(teacher_forced(mine, src, tgt), theirs.searcher.score_ids(src, tgt)):
        assert len(got) == len(expected)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("beam", [1, 3])
def test_float32_decoding_gives_the_same_hypotheses_with_the_same_scores(exported, beam):
    """Greedy and beam search: the same subwords for every line of the test set, the scores
    within 1e-4 (length penalty counting the end token, min and max length as mtapp's)."""
    run, folders, test = exported
    mine = torch_translator(run, beam=beam, nbest=beam)
    theirs = ct2.load_export(folders["float32"], "cpu", beam=beam, nbest=beam)
    _, src = mine.pieces(test.src)
    for a, b in zip(mine.search_ids(src, beam, beam, False), theirs.search_ids(src, beam, beam, False)):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        penalty = mine.decode.length_penalty  # one score for both engines: `search.normalised`
        np.testing.assert_allclose([normalised(h, penalty) for h in a], [normalised(h, penalty) for h in b], atol=1e-4)
        np.testing.assert_allclose([h.log_prob for h in a], [h.log_prob for h in b], atol=2e-3, rtol=0)


def test_equal_work_decoding_writes_exactly_the_asked_length(exported):
    """--min-len N --max-len-a 0 --max-len-b N (bench peers' equal work): N subwords, every line."""
    run, folders, test = exported
    fixed = {"beam": 3, "min_len": 7, "max_len_a": 0.0, "max_len_b": 7}
    for translator in (
        torch_translator(run, **fixed),
        ct2.load_export(folders["float32"], "cpu", **fixed),
    ):
        _, src = translator.pieces(test.src[:20])
        assert {len(h[0].tokens) for h in translator.search_ids(src, 3, 1, False)} == {7}


def test_int8_stays_within_its_bleu_tolerance_on_both_engines(exported):
    run, folders, test = exported
    bleu = {
        "torch float32": torch_translator(run),
        "torch int8": torch_translator(run, quantize="int8"),
        "ctranslate2 float32": ct2.load_export(folders["float32"], "cpu"),
        "ctranslate2 int8": ct2.load_export(folders["int8"], "cpu"),
    }
    bleu = {name: score(t.translate(test.src), test.tgt)["bleu"] for name, t in bleu.items()}
    assert bleu["torch float32"] > 50, bleu  # a model worth comparing
    for name in ("torch int8", "ctranslate2 int8", "ctranslate2 float32"):
        assert abs(bleu[name] - bleu["torch float32"]) <= 5.0, bleu


def test_the_exported_folder_alone_translates_through_the_commands(exported, tmp_path, capsysbinary):
    run, folders, test = exported
    lines = ["", test.src[0], "   ", test.src[1]]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert translate.main(["--run", str(folders["float32"]), "--input", str(tmp_path / "in.txt"), "--beam", "1"]) == 0
    out = capsysbinary.readouterr().out.decode().split("\n")
    assert out[:4] == ["", greedy_line(run, test.src[0]), "", greedy_line(run, test.src[1])]
    nbest = ["--run", str(folders["float32"]), "--input", str(tmp_path / "in.txt"), "--nbest", "2", "--scores"]
    assert translate.main(nbest) == 0
    rows = [r.split("\t") for r in capsysbinary.readouterr().out.decode().splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("2", "1"), ("2", "2"), ("3", "1"), ("4", "1"), ("4", "2")]
    report = tmp_path / "eval.json"
    assert evaluate.main(["--run", str(folders["int8"]), "--split", "test", "--json", str(report)]) == 0
    assert '"engine": "ctranslate2"' in report.read_text()


def greedy_line(run, line):
    return torch_translator(run, beam=1).translate([line])[0]


def test_engines_and_runs_that_do_not_match_are_clear_errors(exported, capsys):
    run, folders, _ = exported
    assert translate.main(["--run", str(run), "--engine", "ctranslate2"]) == 2
    assert "export it first (python -m mtapp.export" in capsys.readouterr().err
    assert translate.main(["--run", str(folders["int8"]), "--engine", "torch"]) == 2
    assert "is a CTranslate2 export" in capsys.readouterr().err
    assert translate.main(["--run", str(run), "--quantize", "float16"]) == 2
    assert "the torch engine has int8" in capsys.readouterr().err


def test_an_lstm_run_cannot_be_exported_and_is_told_what_to_do(tmp_path):
    model = build_model(EXACT_MODELS["lstm-packed"], 40)
    path = tmp_path / "lstm.pt"
    content = {"model": model.state_dict(), "config": Config(model=EXACT_MODELS["lstm-packed"]).to_dict()}
    save_checkpoint(path, content | {"tokenizer": torch.zeros(1)})
    with pytest.raises(ct2.ExportError, match="--quantize int8"):
        ct2.export(path, tmp_path / "out")


@pytest.mark.parametrize("name", list(EXACT_MODELS))
def test_torch_int8_quantizes_every_model_type_and_stays_near_float32(name):
    torch.manual_seed(0)
    model = build_model(EXACT_MODELS[name], 40).eval()
    batch = collate(random_ids(0, [5, 3, 7]), random_ids(1, [4, 6, 2]), np.arange(3), "post")
    with torch.no_grad():
        reference = model.project(model(batch))
        quantized = int8(model)
        got = quantized.project(quantized(batch))
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds
    assert type(quantized.projection).__module__ == "torch.ao.nn.quantized.dynamic.modules.linear"
    assert (got - reference).abs().max() <= 0.05 * reference.abs().max()


# Run by the Argos test in a fresh interpreter: Argos reads its settings (ARGOS_PACKAGES_DIR,
# ARGOS_BEAM_SIZE) when imported. Its sentence splitter, MiniSBD, would download an ONNX model at
# first use; it is stubbed here with one sentence per line (every test line is one sentence).
ARGOS_SCRIPT = """
import json, sys
from argostranslate import package, sbd, translate
sbd.MiniSBDSentencizer.split_sentences = lambda self, text: [text]
package.install_from_path(sys.argv[1])
(installed,) = package.get_installed_packages()
translation = translate.get_translation_from_codes("xx", "yy")
lines = json.loads(sys.stdin.read())
found = [translation.translate(line) for line in lines]
print(json.dumps({"from": installed.from_code, "to": installed.to_code, "lines": found}))
"""


def test_an_argos_package_installs_and_translates_as_mtapps_ctranslate2_engine(
    exported, tmp_path, capsysbinary, monkeypatch
):
    import json
    import os
    import subprocess
    import sys
    import zipfile

    pytest.importorskip("argostranslate")
    run, folders, test = exported
    model = tmp_path / "xx_yy.argosmodel"
    assert export.main(["--run", str(run), "--format", "argos", "--out", str(model)]) == 0
    assert "install with: python -c" in capsysbinary.readouterr().out.decode()
    names = zipfile.ZipFile(model).namelist()
    assert {n.split("/")[0] for n in names} == {"translate-xx_yy-1_0"}  # one top folder
    for part in ("metadata.json", "sentencepiece.model", "README.md", "model/model.bin", "model/config.json"):
        assert f"translate-xx_yy-1_0/{part}" in names
    lines = test.src[:40]
    env = os.environ | {"ARGOS_PACKAGES_DIR": str(tmp_path / "packages"), "HOME": str(tmp_path), "ARGOS_BEAM_SIZE": "4"}
    env |= {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argos = subprocess.run(
        [sys.executable, "-c", ARGOS_SCRIPT, str(model)],
        input=json.dumps(lines),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(argos.stdout)
    assert (got["from"], got["to"]) == ("xx", "yy")
    assert (tmp_path / "packages" / "translate-xx_yy-1_0" / "metadata.json").is_file()
    # mtapp's CTranslate2 engine with Argos's decode settings: beam 4, length penalty 0.2, outputs of
    # 256 subwords at most, and CTranslate2's default minimum of 1 (mtapp's default 0 lets a beam end
    # at the first step, which changes the hypotheses CTranslate2 returns for some lines)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = ["--beam", "4", "--length-penalty", "0.2", "--max-len-a", "0", "--max-len-b", "255", "--min-len", "1"]
    assert translate.main(["--run", str(folders["float32"]), "--input", str(tmp_path / "in.txt"), *settings]) == 0
    mine = capsysbinary.readouterr().out.decode().splitlines()
    assert got["lines"] == mine
    small = tmp_path / "small.argosmodel"
    monkeypatch.setattr(export.argos, "SMALLEST_TABLE", 10_000)
    assert export.main(["--run", str(run), "--format", "argos", "--out", str(small)]) == 2
    assert (
        "model.max_positions is 1024; Argos gives CTranslate2 inputs of up to 10000"
        in capsysbinary.readouterr().err.decode()
    )
    assert not small.exists()
