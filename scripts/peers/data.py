"""The data every system of the peers benchmark gets: mtapp's joint SentencePiece model, and the
Multi30k splits encoded with it into piece files that OpenNMT-py and JoeyNMT read as they are.

    folder/spm.model                  the SentencePiece model mtapp trains with (same cache)
    folder/{train,val,test}.{de,en}   one sentence a line, pieces separated by spaces
    folder/vocab.txt                  one piece a line, the special pieces left out
    folder/test.text.{de,en}          the raw test text (sources for mtapp, references for all)

Training pairs are filtered as mtapp filters them (an empty side, or a side longer than
`data.max_len` pieces), so every system trains on the same pairs. Outputs of the peers are
turned back into text with `detokenise`, which drops special and unknown pieces as mtapp's
own decoding does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

from mtapp.config import Config
from mtapp.data import load_split
from mtapp.data.corpora import ParallelText
from mtapp.data.encoded import train_tokenizer
from mtapp.specials import EOS

SPLITS = ("train", "val", "test")  # file names; the corpus splits come from the config


@dataclass(frozen=True)
class Pieces:
    folder: Path
    src_lang: str
    tgt_lang: str
    vocab_size: int  # of the SentencePiece model, specials included
    src_lengths: np.ndarray  # training pairs: real source tokens (pieces + eos)
    tgt_lengths: np.ndarray  # training pairs: real target tokens (pieces + eos)
    test_sources: list[str]  # raw test text
    test_references: list[str]

    @property
    def spm_model(self) -> Path:
        return self.folder / "spm.model"

    @property
    def vocab(self) -> Path:
        return self.folder / "vocab.txt"

    def path(self, split: str, lang: str) -> Path:
        return self.folder / f"{split}.{lang}"

    def text(self, split: str, lang: str) -> Path:
        """Raw text (test only)."""
        return self.folder / f"{split}.text.{lang}"

    def prefix(self, split: str) -> Path:
        """`folder/split`: the toolkits append `.{lang}`."""
        return self.folder / split


def prepare_pieces(cfg: Config, folder: Path, test_sentences: int = 0) -> Pieces:
    """Train (or reuse from mtapp's cache) the tokenizer of `cfg` and write the piece files;
    `test_sentences` > 0 keeps only that many test sentences (for trial runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    train_text = load_split(d, d.train_split)
    tokenizer = train_tokenizer(train_text, cfg.tokenizer, Path(d.cache_dir))
    tokenizer.save(folder / "spm.model")
    sp = spm.SentencePieceProcessor(model_proto=tokenizer.model_bytes)
    test = load_split(d, d.test_split)
    if test_sentences > 0:
        test = ParallelText(test.src[:test_sentences], test.tgt[:test_sentences], test.origin)
    write_lines(folder / f"test.text.{d.src_lang}", test.src)
    write_lines(folder / f"test.text.{d.tgt_lang}", test.tgt)
    texts = {"train": train_text, "val": load_split(d, d.valid_split), "test": test}
    lengths = None
    for split in SPLITS:
        src = sp.encode(texts[split].src, out_type=str)
        tgt = sp.encode(texts[split].tgt, out_type=str)
        if split == "train":
            keep = [0 < len(s) <= d.max_len and 0 < len(t) <= d.max_len for s, t in zip(src, tgt)]
            src = [s for s, k in zip(src, keep) if k]
            tgt = [t for t, k in zip(tgt, keep) if k]
            lengths = np.array([len(s) + 1 for s in src]), np.array([len(t) + 1 for t in tgt])
        write_lines(folder / f"{split}.{d.src_lang}", [" ".join(p) for p in src])
        write_lines(folder / f"{split}.{d.tgt_lang}", [" ".join(p) for p in tgt])
    write_lines(folder / "vocab.txt", [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not special(sp, i)])
    return Pieces(folder, d.src_lang, d.tgt_lang, sp.get_piece_size(), *lengths, texts["test"].src, texts["test"].tgt)


def special(sp: spm.SentencePieceProcessor, i: int) -> bool:
    return sp.is_control(i) or sp.is_unknown(i) or i <= EOS


def detokenise(spm_model: Path, lines: list[str]) -> list[str]:
    """Space-separated pieces -> text; special, unknown and out-of-vocabulary pieces are dropped."""
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    out = []
    for line in lines:
        ids = [sp.piece_to_id(p) for p in line.split()]
        out.append(sp.decode([i for i in ids if not special(sp, i)]))
    return out


def count_pieces(spm_model: Path, lines: list[str]) -> int:
    """Subwords in `lines` (text) as the shared SentencePiece model segments them."""
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    return sum(len(ids) for ids in sp.encode(lines))


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
