"""Fetch a registered corpus's published files into the data directory and verify them."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from mtapp.data.corpora import CorpusError, RegisteredCorpus
from mtapp.progress import bar_settings


def verify(corpus: RegisteredCorpus, folder: Path, splits: Sequence[str] | None = None) -> list[str]:
    """Names of the files of `splits` (default: all) in `folder` that are missing or differ from
    the published ones."""
    bad = []
    for name in corpus.files(splits):
        path = folder / name
        if not path.is_file() or path.stat().st_size != corpus.size[name] or file_sha256(path) != corpus.sha256[name]:
            bad.append(name)
    return bad


def download(corpus: RegisteredCorpus, root: Path, splits: Sequence[str] | None = None, timeout: float = 30.0) -> Path:
    """Download every file of `splits` (default: all) that is missing or damaged; return the corpus folder."""
    folder = root / corpus.name
    folder.mkdir(parents=True, exist_ok=True)
    todo = verify(corpus, folder, splits)
    for name in tqdm(todo, desc=f"downloading {corpus.name}", unit="file", **bar_settings()):
        split, lang, _ = name.split(".")
        url = corpus.url.format(split=split, lang=lang)
        tmp = folder / (name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                out.write(response.read())
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise CorpusError(
                f"could not download {url} ({e}). If this machine is offline, copy the files "
                f"{', '.join(todo)} into {folder} by hand, or point $MTAPP_DATA_DIR at a "
                "folder that holds them"
            ) from None
        size, digest = tmp.stat().st_size, file_sha256(tmp)
        if size != corpus.size[name] or digest != corpus.sha256[name]:
            tmp.unlink()
            raise CorpusError(
                f"{url}: got {size} bytes with sha256 {digest}, expected {corpus.size[name]} bytes "
                f"with sha256 {corpus.sha256[name]}; the upstream file changed or the download broke"
            )
        tmp.replace(folder / name)
    return folder


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
