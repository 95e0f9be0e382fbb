import gzip
import re

import pytest

from mtapp.config import DataConfig
from mtapp.data import REGISTRY, CorpusError, data_dir, load_split
from mtapp.data import __main__ as data_cli
from mtapp.data.corpora import find_test_splits, read_hf, read_lines, read_text_pair, read_tsv
from mtapp.data.download import download, verify
from tests.synthetic import write_text_corpus

TEST_SPLITS = ["test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr"]


def test_plain_gz_and_crlf_files_read_the_same_with_blank_lines_kept(tmp_path):
    lines = ["Ein Hund.", "", "Zwei Katzen  schlafen.", " \t ", "Ende\rmitten"]
    (tmp_path / "a.txt").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    assert read_lines(tmp_path / "a.txt") == lines
    assert read_lines(tmp_path / "b.txt.gz") == lines


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    (tmp_path / "s.de").write_text("a\nb\nc\n")
    (tmp_path / "s.en").write_text("a\nb\n")
    with pytest.raises(CorpusError, match=r"s\.de has 3 lines, .*s\.en has 2"):
        read_text_pair(tmp_path / "s.de", tmp_path / "s.en")


def test_missing_files_and_folders_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.de does not exist$"):
        read_lines(tmp_path / "nope.de")
    with pytest.raises(CorpusError, match=r"gone/train\.de does not exist: its folder \S*gone does not exist"):
        read_lines(tmp_path / "gone" / "train.de")
    with pytest.raises(CorpusError, match=r"is a folder, not a file"):
        read_lines(tmp_path)
    cfg = DataConfig(corpus="text", src_lang="de", tgt_lang="en", paths={"train": str(tmp_path / "gone" / "train")})
    with pytest.raises(CorpusError, match=r"its folder \S*gone does not exist"):
        load_split(cfg, "train")


def test_empty_and_all_blank_corpora_are_clear_errors(tmp_path):
    (tmp_path / "e.de").write_text("")
    (tmp_path / "e.en").write_text("")
    with pytest.raises(CorpusError, match=r"e\.de \+ \S*e\.en is empty"):
        read_text_pair(tmp_path / "e.de", tmp_path / "e.en")
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(CorpusError, match=r"e\.tsv is empty"):
        read_tsv(tmp_path / "e.tsv")
    (tmp_path / "b.de").write_text("Hallo\n \n\n")
    (tmp_path / "b.en").write_text("\nYes\n\t\n")
    with pytest.raises(CorpusError, match="has 3 lines but no pair with two non-blank sides"):
        read_text_pair(tmp_path / "b.de", tmp_path / "b.en")


def test_a_damaged_gzip_file_is_a_clear_error(tmp_path):
    (tmp_path / "plain.de.gz").write_text("not compressed\n")
    with pytest.raises(CorpusError, match=r"plain\.de\.gz could not be read \(Not a gzipped file"):
        read_lines(tmp_path / "plain.de.gz")
    with gzip.open(tmp_path / "cut.de.gz", "wt") as f:
        f.write("ein Satz\n" * 1000)
    (tmp_path / "cut.de.gz").write_bytes((tmp_path / "cut.de.gz").read_bytes()[:-20])
    with pytest.raises(CorpusError, match=r"cut\.de\.gz could not be read .*re-create or re-download it"):
        read_lines(tmp_path / "cut.de.gz")


def test_invalid_utf8_is_an_error_naming_file_line_and_offset_never_replaced(tmp_path):
    (tmp_path / "bad.de").write_bytes(b"gut\r\nschlecht \xff hier\r\n")
    with pytest.raises(CorpusError, match=r"bad\.de: line 2 is not valid UTF-8 \(byte offset 14\); convert"):
        read_lines(tmp_path / "bad.de")
    with gzip.open(tmp_path / "bad.en.gz", "wb") as f:
        f.write(b"one\ntwo\nth\xc3ree\n")  # a cut-off two-byte sequence
    with pytest.raises(CorpusError, match=r"bad\.en\.gz: line 3 is not valid UTF-8 \(byte offset 10\)"):
        read_lines(tmp_path / "bad.en.gz")


def test_tsv_reads_pairs_and_rejects_wrong_field_counts(tmp_path):
    (tmp_path / "ok.tsv").write_text("Hallo\tHello\nJa\tYes\n")
    text = read_tsv(tmp_path / "ok.tsv")
    assert (text.src, text.tgt) == (["Hallo", "Ja"], ["Hello", "Yes"])
    (tmp_path / "bad.tsv").write_text("Hallo\tHello\nnur eine Spalte\n")
    with pytest.raises(CorpusError, match=r"bad\.tsv: line 2 has 1 tab-separated fields"):
        read_tsv(tmp_path / "bad.tsv")


def test_hf_dataset_from_local_json_in_both_layouts(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"translation": {"de": "Hallo", "en": "Hello"}}\n')
    (tmp_path / "c.jsonl").write_text('{"de": "Ja", "en": "Yes"}\n{"de": "Nein", "en": "No"}\n')
    t = read_hf("json", str(tmp_path / "t.jsonl"), "de", "en")
    assert (t.src, t.tgt) == (["Hallo"], ["Hello"])
    c = read_hf("json", str(tmp_path / "c.jsonl"), "de", "en")
    assert (c.src, c.tgt) == (["Ja", "Nein"], ["Yes", "No"])
    with pytest.raises(CorpusError, match="expected 'translation' or 'fr' and 'en'"):
        read_hf("json", str(tmp_path / "c.jsonl"), "fr", "en")


def test_data_dir_setting_beats_environment_beats_default(monkeypatch):
    monkeypatch.delenv("MTAPP_DATA_DIR", raising=False)
    assert str(data_dir("")) == "data"
    monkeypatch.setenv("MTAPP_DATA_DIR", "/env/dir")
    assert str(data_dir("")) == "/env/dir"
    assert str(data_dir("/set/dir")) == "/set/dir"


def test_registered_corpus_reports_missing_files_with_the_download_command(tmp_path):
    cfg = DataConfig(dir=str(tmp_path))
    missing = r"train\.de\.gz does not exist: its folder \S*multi30k does not exist; run `python -m mtapp.data download"
    with pytest.raises(CorpusError, match=missing):
        load_split(cfg, "train")
    with pytest.raises(CorpusError, match="no split 'dev'"):
        load_split(cfg, "dev")


def test_registered_corpus_with_wrong_line_count_is_rejected(tmp_path):
    folder = tmp_path / "multi30k"
    folder.mkdir()
    for lang in ("de", "en"):
        with gzip.open(folder / f"val.{lang}.gz", "wt") as f:
            f.write("one\ntwo\n")
    with pytest.raises(CorpusError, match="val has 2 lines, multi30k has 1014"):
        load_split(DataConfig(dir=str(tmp_path)), "val")


def test_download_offline_gives_a_clear_message(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CorpusError, match=r"could not download .*offline, copy the files"):
        download(REGISTRY["multi30k"], tmp_path)
    assert not list((tmp_path / "multi30k").glob("*.part"))  # nothing half-written is left


def test_verify_flags_damaged_files(tmp_path):
    corpus = REGISTRY["multi30k"]
    folder = tmp_path / "multi30k"
    folder.mkdir()
    (folder / "val.de.gz").write_bytes(b"x" * corpus.size["val.de.gz"])  # right size, wrong bytes
    bad = verify(corpus, folder)
    assert "val.de.gz" in bad and len(bad) == len(corpus.files())


def test_every_registered_file_has_a_size_and_checksum_and_splits_name_their_languages():
    corpus = REGISTRY["multi30k"]
    files = corpus.files()
    assert len(files) == len(set(files)) == 22
    assert set(files) == set(corpus.sha256) == set(corpus.size)
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in corpus.sha256.values())
    assert list(corpus.splits) == ["train", "val", *TEST_SPLITS]
    for split in ("test_2017_flickr", "test_2017_mscoco"):
        assert corpus.splits[split].languages == ("de", "en", "fr")
        assert f"{split}.cs.gz" not in files
    assert "test_2018_flickr.cs.gz" in files and corpus.splits["test_2018_flickr"].lines == 1071
    assert corpus.files(["val"]) == ["val.de.gz", "val.en.gz", "val.fr.gz", "val.cs.gz"]  # as before: all four


def test_a_language_a_split_lacks_is_a_clear_error(tmp_path):
    cfg = DataConfig(dir=str(tmp_path), src_lang="cs", tgt_lang="en")
    with pytest.raises(CorpusError, match=r"multi30k test_2017_mscoco has no language 'cs' \(it has: de, en, fr\)"):
        load_split(cfg, "test_2017_mscoco")


def test_the_2017_test_files_verify_against_the_mirror():
    root = data_dir("")
    if not (root / "multi30k" / "test_2017_flickr.de.gz").is_file():
        pytest.skip(f"no Multi30k mirror at {root} (set $MTAPP_DATA_DIR)")
    corpus = REGISTRY["multi30k"]
    assert verify(corpus, root / "multi30k", ["test_2017_flickr", "test_2017_mscoco"]) == []
    for split, lines in (("test_2017_flickr", 1000), ("test_2017_mscoco", 461)):
        text = load_split(DataConfig(dir=str(root), src_lang="fr", tgt_lang="en"), split)
        assert len(text) == lines and text.tgt[0]


def test_verify_names_missing_and_damaged_files_and_the_command_that_fetches_them(tmp_path, capsys):
    corpus = REGISTRY["multi30k"]
    folder = tmp_path / "multi30k"
    folder.mkdir()
    (folder / "val.de.gz").write_bytes(b"x" * corpus.size["val.de.gz"])
    assert data_cli.main(["verify", "multi30k", "--split", "val", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"missing in {folder}: val.en.gz, val.fr.gz, val.cs.gz" in err
    assert f"damaged (size or SHA-256 differ) in {folder}: val.de.gz" in err
    assert f"`python -m mtapp.data download multi30k --split val --dir {tmp_path}`" in err
    with pytest.raises(SystemExit):
        data_cli.main(["verify", "multi30k", "--split", "test_2019"])
    assert "multi30k has no split test_2019" in capsys.readouterr().err


def test_test_splits_are_found_by_language_pair_and_by_which_files_are_present(tmp_path):
    folder = tmp_path / "multi30k"
    folder.mkdir()
    for name in ("test_2016_flickr.de.gz", "test_2016_flickr.cs.gz", "test_2018_flickr.de.gz"):
        (folder / name).write_bytes(b"")
    found = find_test_splits(DataConfig(dir=str(tmp_path), src_lang="de", tgt_lang="cs"))
    assert found.present == ["test_2016_flickr"]
    assert list(found.missing) == ["test_2018_flickr"] and found.missing["test_2018_flickr"] == [
        folder / "test_2018_flickr.cs.gz"
    ]
    assert found.other_languages == ["test_2017_flickr", "test_2017_mscoco"]
    assert "download multi30k --split test_2018_flickr --dir" in found.fetch
    prefix = tmp_path / "mine" / "test_a"
    write_text_corpus(prefix.parent, "test_a", [("a", "b")], src="de", tgt="en")
    paths = {"train": "x", "test": str(tmp_path / "gone"), "test_a": str(prefix), "valid_b": "y"}
    found = find_test_splits(DataConfig(corpus="text", paths=paths, test_split="test"))
    assert found.present == ["test_a"] and list(found.missing) == ["test"]  # test_* and data.test_split only
