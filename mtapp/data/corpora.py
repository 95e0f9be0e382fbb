"""Parallel corpora: the registry of known corpora and readers for text, TSV and `datasets`.

A reader returns `ParallelText`: two equally long Arrow string columns, one entry per line,
blank lines kept; every kind of corpus reaches the encoder (`mtapp.data.encoded`) this way.
Problems with the files (missing, unequal line counts, empty, undecodable) raise `CorpusError`
naming the file. Files must be UTF-8: an invalid byte is an error naming the file, line and
byte offset, never silently replaced.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtapp.config import DataConfig
from mtapp.data import lines


class CorpusError(ValueError):
    """A corpus file is missing, malformed or inconsistent."""


Strings = Sequence[str] | pa.Array | pa.ChunkedArray


class ParallelText:
    """Line-aligned sentence pairs, blank lines kept.

    pairs:  Arrow table, large_string columns "src" and "tgt", one row per line (a large corpus
            stays in Arrow buffers; memory-mapped for `datasets` corpora, and once encoded)
    src, tgt: the same lines as Python lists, made on first use (validation, test, translation)
    origin: human-readable description of where the pairs came from
    """

    def __init__(self, src: Strings, tgt: Strings, origin: str):
        self.pairs = pa.table({"src": _strings(src), "tgt": _strings(tgt)})
        self.origin = origin
        for name, given in (("src", src), ("tgt", tgt)):
            if isinstance(given, list):
                self.__dict__[name] = given  # already Python lists: no round trip through Arrow

    def __len__(self) -> int:
        return self.pairs.num_rows

    @cached_property
    def src(self) -> list[str]:
        return self.pairs.column("src").to_pylist()

    @cached_property
    def tgt(self) -> list[str]:
        return self.pairs.column("tgt").to_pylist()


def _strings(column: Strings) -> pa.ChunkedArray | pa.Array:
    """`column` as large_string (64-bit offsets: one side may hold more than 2 GB), nulls as ""."""
    if not isinstance(column, (pa.Array, pa.ChunkedArray)):
        return pa.array(column, type=pa.large_string())
    column = column.cast(pa.large_string())
    return pc.fill_null(column, "") if column.null_count else column


def nonblank(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """bool (n,): which strings hold more than whitespace (no string is copied)."""
    blank = pc.or_(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(column))
    return np.logical_not(blank.to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class Split:
    """One published split of a registered corpus: its sentences, and the languages it has."""

    lines: int
    languages: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredCorpus:
    """A public corpus with known file names, line counts and checksums; not every split need
    have every language (Multi30k's 2017 test sets have no Czech)."""

    name: str
    splits: dict[str, Split]
    url: str  # format string with {split} and {lang}
    sha256: dict[str, str]  # file name -> checksum
    size: dict[str, int]  # file name -> bytes

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language of some split, in the order the splits name them."""
        return tuple(dict.fromkeys(lang for split in self.splits.values() for lang in split.languages))

    def file_name(self, split: str, lang: str) -> str:
        return f"{split}.{lang}.gz"

    def files(self, splits: Sequence[str] | None = None) -> list[str]:
        """The file names of `splits` (default: every split), each split in each of its languages."""
        chosen = self.splits if splits is None else splits
        return [self.file_name(s, lang) for s in chosen for lang in self.splits[s].languages]

    def check_pair(self, split: str, src_lang: str, tgt_lang: str) -> None:
        """CorpusError unless `split` exists and has both languages."""
        if split not in self.splits:
            raise CorpusError(f"{self.name} has no split {split!r} (splits: {', '.join(self.splits)})")
        have = self.splits[split].languages
        for lang in (src_lang, tgt_lang):
            if lang not in have:
                raise CorpusError(f"{self.name} {split} has no language {lang!r} (it has: {', '.join(have)})")


MULTI30K = RegisteredCorpus(
    name="multi30k",
    splits={
        "train": Split(29000, ("de", "en", "fr", "cs")),
        "val": Split(1014, ("de", "en", "fr", "cs")),
        "test_2016_flickr": Split(1000, ("de", "en", "fr", "cs")),
        "test_2017_flickr": Split(1000, ("de", "en", "fr")),
        "test_2017_mscoco": Split(461, ("de", "en", "fr")),
        "test_2018_flickr": Split(1071, ("de", "en", "fr", "cs")),
    },
    url="https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz",
    sha256={
        "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
        "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
        "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
        "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
        "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
        "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
        "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
        "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
        "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
        "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
        "test_2018_flickr.cs.gz": "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2",
        "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
        "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
        "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
        "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
        "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
        "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
        "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
        "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
        "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
        "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
        "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    },
    size={
        "test_2016_flickr.cs.gz": 22572,
        "test_2016_flickr.de.gz": 22890,
        "test_2016_flickr.en.gz": 21077,
        "test_2016_flickr.fr.gz": 22310,
        "test_2017_flickr.de.gz": 21471,
        "test_2017_flickr.en.gz": 19138,
        "test_2017_flickr.fr.gz": 20434,
        "test_2017_mscoco.de.gz": 10230,
        "test_2017_mscoco.en.gz": 8844,
        "test_2017_mscoco.fr.gz": 9751,
        "test_2018_flickr.cs.gz": 25181,
        "test_2018_flickr.de.gz": 26461,
        "test_2018_flickr.en.gz": 23514,
        "test_2018_flickr.fr.gz": 25321,
        "train.cs.gz": 593827,
        "train.de.gz": 637044,
        "train.en.gz": 568929,
        "train.fr.gz": 604242,
        "val.cs.gz": 22096,
        "val.de.gz": 24681,
        "val.en.gz": 21650,
        "val.fr.gz": 23001,
    },
)

REGISTRY: dict[str, RegisteredCorpus] = {MULTI30K.name: MULTI30K}


def data_dir(setting: str) -> Path:
    """The data directory: the `data.dir` setting, else $MTAPP_DATA_DIR, else `data/`."""
    return Path(setting or os.environ.get("MTAPP_DATA_DIR") or "data")


def load_split(cfg: DataConfig, split: str) -> ParallelText:
    """Read one split of the configured corpus."""
    if cfg.corpus in REGISTRY:
        return _read_registered(REGISTRY[cfg.corpus], data_dir(cfg.dir), split, cfg)
    if split not in cfg.paths:
        raise CorpusError(f"data.paths has no entry for split {split!r} (it has: {', '.join(cfg.paths)})")
    path = cfg.paths[split]
    if cfg.corpus == "text":
        return read_text_pair(_with_lang(path, cfg.src_lang), _with_lang(path, cfg.tgt_lang))
    if cfg.corpus == "tsv":
        return read_tsv(Path(path))
    if cfg.corpus == "hf":
        return read_hf(cfg.hf_path, path, cfg.src_lang, cfg.tgt_lang, cfg.hf_name)
    known = ", ".join([*REGISTRY, "text", "tsv", "hf"])
    raise CorpusError(f"data.corpus {cfg.corpus!r} is not known (choose one of: {known})")


def _read_registered(corpus: RegisteredCorpus, root: Path, split: str, cfg: DataConfig) -> ParallelText:
    corpus.check_pair(split, cfg.src_lang, cfg.tgt_lang)
    folder = root / corpus.name
    pair = read_text_pair(
        folder / corpus.file_name(split, cfg.src_lang),
        folder / corpus.file_name(split, cfg.tgt_lang),
        hint=f"run `{download_command(corpus.name, [split], cfg.dir)}` or set $MTAPP_DATA_DIR / data.dir",
    )
    expected = corpus.splits[split].lines
    if len(pair) != expected:
        raise CorpusError(
            f"{folder}: {split} has {len(pair)} lines, {corpus.name} has {expected}; "
            "the files are incomplete or not the published ones (re-download them)"
        )
    return pair


def download_command(corpus: str, splits: Sequence[str] = (), dir_setting: str = "") -> str:
    """The command that fetches `splits` (all, if none) of a registered corpus."""
    command = f"python -m mtapp.data download {corpus}"
    command += f" --split {','.join(splits)}" if splits else ""
    return command + (f" --dir {dir_setting}" if dir_setting else "")


ALL_TESTS = "all"  # the --split value (evaluate, report) that means every test split `find_test_splits` finds


@dataclass(frozen=True)
class AvailableSplits:
    """The test splits of a configured corpus for its language pair: those named `test_*`, and
    `data.test_split`."""

    present: list[str]  # their files are in place
    missing: dict[str, list[Path]]  # split -> its files that are not
    fetch: str  # what to do to get the missing ones
    other_languages: list[str]  # test splits of the corpus without both languages of the pair

    def notes(self, cfg: DataConfig) -> list[str]:
        """Lines that name the test splits left out, why, and how to get the missing ones."""
        lines = [f"left out: {split}: missing {', '.join(map(str, files))}" for split, files in self.missing.items()]
        lines += [f"  {self.fetch}"] if self.missing else []
        if self.other_languages:
            pair = f"{cfg.src_lang}-{cfg.tgt_lang}"
            lines.append(f"left out: {', '.join(self.other_languages)}: no {pair} text in {cfg.corpus}")
        return lines


def find_test_splits(cfg: DataConfig) -> AvailableSplits:
    """Which test splits of the configured corpus can be read now (files present; their
    contents are checked when read)."""
    registered = REGISTRY.get(cfg.corpus)
    names = registered.splits if registered else cfg.paths
    tests = [s for s in names if s.startswith("test_") or s == cfg.test_split]
    pair = (cfg.src_lang, cfg.tgt_lang)
    other = [s for s in tests if registered and not set(pair) <= set(registered.splits[s].languages)]
    present, missing = [], {}
    for split in (s for s in tests if s not in other):
        absent = [path for path in _split_files(cfg, split) if not path.is_file()]
        if absent:
            missing[split] = absent
        else:
            present.append(split)
    if registered:
        fetch = f"get them with `{download_command(registered.name, list(missing), cfg.dir)}`"
    else:
        fetch = "create them, or correct data.paths in the run's config"
    return AvailableSplits(present, missing, fetch, other)


def _split_files(cfg: DataConfig, split: str) -> list[Path]:
    """The files one split of the configured corpus is read from ([] for a `datasets` hub split)."""
    if cfg.corpus in REGISTRY:
        folder = data_dir(cfg.dir) / cfg.corpus
        return [folder / REGISTRY[cfg.corpus].file_name(split, lang) for lang in (cfg.src_lang, cfg.tgt_lang)]
    path = cfg.paths[split]
    if cfg.corpus == "text":
        return [_with_lang(path, cfg.src_lang), _with_lang(path, cfg.tgt_lang)]
    return [Path(path)] if cfg.corpus == "tsv" or Path(path).exists() else []


def _with_lang(prefix: str, lang: str) -> Path:
    plain = Path(f"{prefix}.{lang}")
    zipped = Path(f"{prefix}.{lang}.gz")
    return zipped if zipped.exists() and not plain.exists() else plain


def read_lines(path: Path, hint: str = "") -> list[str]:
    """All lines of a plain or gzipped UTF-8 file (see `mtapp.data.lines`; for .gz, byte
    offsets count in the decompressed text)."""
    return read_line_array(path, hint).to_pylist()


def decode_lines(data: bytes, name: str) -> list[str]:
    """The lines of UTF-8 text, split at \\n only and without a trailing \\r (so \\n and \\r\\n
    endings read the same); blank lines are kept. Bytes that are not UTF-8 are an error naming
    `name`, the line and the byte offset: nothing is replaced or skipped."""
    return _split(lines.split_lines, np.frombuffer(data, dtype=np.uint8), name).to_pylist()


def read_line_array(path: Path, hint: str = "") -> pa.LargeStringArray:
    """The lines of a plain or gzipped UTF-8 file as one Arrow array."""
    return _split(lines.split_lines, _read_bytes(path, hint), str(path))


def _read_bytes(path: Path, hint: str = "") -> np.ndarray:
    """The file's (decompressed) bytes as uint8; writable for a plain file, so lines can be
    compacted in place."""
    path = Path(path)
    if not path.is_file():
        extra = f"; {hint}" if hint else ""
        raise CorpusError(f"{not_a_file(path)}{extra}")
    try:
        if path.suffix != ".gz":
            return np.fromfile(path, dtype=np.uint8)
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut-off .gz raises EOFError
        raise CorpusError(f"{path} could not be read ({e}); re-create or re-download it") from None


def _split(split, raw: np.ndarray, name: str):
    try:
        return split(raw, name)
    except lines.TextError as e:
        raise CorpusError(str(e)) from None


def not_a_file(path: Path) -> str:
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if not path.parent.is_dir():
        return f"file {path} does not exist: its folder {path.parent} does not exist"
    return f"file {path} does not exist"


def read_text_pair(src_path: Path, tgt_path: Path, hint: str = "") -> ParallelText:
    """Two line-aligned files, one sentence per line."""
    src, tgt = read_line_array(src_path, hint), read_line_array(tgt_path, hint)
    if len(src) != len(tgt):
        raise CorpusError(
            f"line counts differ: {src_path} has {len(src)} lines, {tgt_path} has {len(tgt)}; "
            "the two sides of a parallel corpus must be line-aligned"
        )
    return _with_sentences(ParallelText(src, tgt, origin=f"{src_path} + {tgt_path}"))


def read_tsv(path: Path) -> ParallelText:
    """A file of `source<TAB>target` lines."""
    src, tgt = _split(lines.split_tsv, _read_bytes(path), str(path))
    return _with_sentences(ParallelText(src, tgt, origin=str(path)))


def read_hf(hf_path: str, spec: str, src_lang: str, tgt_lang: str, name: str = "") -> ParallelText:
    """A Hugging Face dataset via `datasets.load_dataset`.

    `spec` is either a split name of a hub dataset (`hf_path` = its name, `name` its
    configuration, if any) or a local data file for a builder such as "json" / "csv" /
    "parquet". Rows hold either a `translation` dict keyed by language (the WMT layout) or one
    column per language. The columns stay in the dataset's memory-mapped Arrow cache.
    """
    import datasets  # imported lazily: it is slow to import

    if Path(spec).exists():
        ds = datasets.load_dataset(hf_path, name or None, data_files={"split": spec}, split="split")
    else:
        ds = datasets.load_dataset(hf_path, name or None, split=spec)
    table = ds.data.table
    columns = table.column_names
    if "translation" in columns and pa.types.is_struct(table.schema.field("translation").type):
        table = table.select(["translation"]).flatten()
        columns = [name.removeprefix("translation.") for name in table.column_names]
        table = table.rename_columns(columns)
    if not (src_lang in columns and tgt_lang in columns):
        raise CorpusError(
            f"dataset {hf_path} ({spec}) has columns {ds.column_names}: "
            f"expected 'translation' or '{src_lang}' and '{tgt_lang}'"
        )
    text = ParallelText(table.column(src_lang), table.column(tgt_lang), origin=f"datasets:{hf_path}:{spec}")
    return _with_sentences(text)


def _with_sentences(text: ParallelText) -> ParallelText:
    """`text`, unless it holds no pair with two non-blank sides: nothing to train on or score."""
    if not (nonblank(text.pairs.column("src")) & nonblank(text.pairs.column("tgt"))).any():
        what = f"has {len(text)} lines but no pair with two non-blank sides" if len(text) else "is empty"
        raise CorpusError(f"corpus {text.origin} {what}")
    return text
