import gzip

import pytest

from mtapp.config import DataConfig
from mtapp.data import REGISTRY, CorpusError, data_dir, load_split
from mtapp.data.corpora import read_hf, read_lines, read_text_pair, read_tsv
from mtapp.data.download import download, verify


def test_plain_gz_and_crlf_files_read_the_same(tmp_path):
    lines = ["Ein Hund.", "", "Zwei Katzen  schlafen."]
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


def test_missing_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.de does not exist"):
        read_lines(tmp_path / "nope.de")
    (tmp_path / "e.de").write_text("")
    (tmp_path / "e.en").write_text("")
    with pytest.raises(CorpusError, match="is empty"):
        read_text_pair(tmp_path / "e.de", tmp_path / "e.en")


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    (tmp_path / "bad.de").write_bytes(b"gut\nschlecht \xff hier\n")
    with pytest.raises(CorpusError, match=r"bad\.de: line 2 is not valid UTF-8 \(byte offset 13\)"):
        read_lines(tmp_path / "bad.de")


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
    with pytest.raises(CorpusError, match=r"train\.de\.gz does not exist; run `python -m mtapp.data download"):
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
