"""Fixtures shared by the end-to-end test files."""

import pytest
import yaml

from mtapp import train
from mtapp.data.synthetic import tiny_config, write_synthetic_corpus


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny model trained for a few epochs through `python -m mtapp.train` (float32 decoding:
    tests compare outputs)."""
    tmp = tmp_path_factory.mktemp("e2e")
    write_synthetic_corpus(tmp)
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp, train={"max_epochs": 6}, batching={"max_tokens": 256})))
    run = tmp / "run"
    assert train.main(["--config", str(config), "--run-dir", str(run)]) == 0
    return tmp, run
