"""Fixtures shared by the end-to-end test files."""

import pytest
import yaml

from mtapp import train
from tests.synthetic import synthetic_pairs, tiny_config, write_text_corpus


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny model trained for a few epochs through `python -m mtapp.train` (float32 decoding:
    tests compare outputs)."""
    tmp = tmp_path_factory.mktemp("e2e")
    corpus = tmp / "corpus"
    write_text_corpus(corpus, "train", synthetic_pairs(2000, seed=1))
    write_text_corpus(corpus, "val", synthetic_pairs(60, seed=2))
    write_text_corpus(corpus, "test", synthetic_pairs(80, seed=3))
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp, train={"max_epochs": 6}, batching={"max_tokens": 256})))
    run = tmp / "run"
    assert train.main(["--config", str(config), "--run-dir", str(run)]) == 0
    return tmp, run
