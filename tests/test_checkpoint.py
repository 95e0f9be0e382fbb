import random

import numpy as np
import pytest
import torch

from mtapp import translator as translator_module
from mtapp.checkpoint import (
    CheckpointError,
    cuda_state_for,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mtapp.translator import Translator


def test_save_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3)}})
    save_checkpoint(path, {"model": {"w": torch.arange(4)}})
    assert load_checkpoint(path)["model"]["w"].tolist() == [0, 1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()], ids=["disk-full", "ctrl-c"])
def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3)}})

    def broken_save(obj, f):
        f.write(b"half a file")
        raise failure

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(type(failure)):
        save_checkpoint(path, {"model": {"w": torch.arange(9)}})
    monkeypatch.undo()
    assert load_checkpoint(path)["model"]["w"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


DAMAGED = r"is damaged \(e\.g\. cut off\) or not an mtapp checkpoint .*; use a checkpoint_\*\.pt written by"


@pytest.mark.parametrize("fraction", [0.0, 0.0002, 0.002, 0.05, 0.5, 0.98, 0.9995])
def test_a_truncated_checkpoint_is_a_clear_error(tmp_path, fraction):
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.randn(1000)}})
    whole = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: int(fraction * len(whole))])
    with pytest.raises(CheckpointError, match=r"cut\.pt " + DAMAGED):
        load_checkpoint(tmp_path / "cut.pt")


def test_foreign_and_missing_files_are_clear_errors(tmp_path):
    (tmp_path / "notes.pt").write_text("epoch 3: loss 2.1\nepoch 4: loss 1.9\n")
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 20)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module: refused, never unpickled
    for name in ("notes.pt", "noise.pt", "module.pt"):
        with pytest.raises(CheckpointError, match=rf"{name} " + DAMAGED):
            load_checkpoint(tmp_path / name)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign\.pt is not an mtapp checkpoint \(expected format"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt does not exist$"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"does not exist \(it is a folder\)"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_without_config_or_tokenizer_cannot_translate(tmp_path):
    save_checkpoint(tmp_path / "partial.pt", {"model": {"w": torch.arange(3)}})
    with pytest.raises(CheckpointError, match=r"partial\.pt has no config, tokenizer: it is not a complete"):
        Translator.from_checkpoint(tmp_path / "partial.pt", device="cpu")


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "r.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_translator_reads_its_checkpoint_on_the_cpu_whatever_its_device(trained, monkeypatch):
    """The tokenizer is stored as a uint8 tensor and read with .numpy(), which fails for a tensor
    mapped onto a GPU: the checkpoint is loaded on the CPU and only the model is moved. (A device
    other than the CPU is stood in for by "meta", which has no data either.)"""
    _, run = trained
    seen = []

    def recording_load(path, map_location="cpu"):
        seen.append(str(map_location))
        return load_checkpoint(path, map_location)

    monkeypatch.setattr(translator_module, "load_checkpoint", recording_load)
    monkeypatch.setattr(translator_module, "select_device", lambda name: torch.device("meta"))
    translator = Translator.from_checkpoint(run / "checkpoint_best.pt", device="cuda", amp="off")
    assert seen == ["cpu"] and translator.searcher.device.type == "meta"


def test_a_cuda_rng_state_is_restored_on_this_gpu_even_from_a_list_of_every_gpus():
    """Earlier checkpoints saved every visible GPU's state; resuming with fewer GPUs takes this
    process's entry, or none, instead of failing on the others."""
    states = [torch.full((8,), k, dtype=torch.uint8) for k in range(3)]
    assert torch.equal(cuda_state_for(states, 1), states[1])
    assert cuda_state_for(states, 5) is None
    assert cuda_state_for(states[2], 0) is states[2]
    assert "cuda" not in rng_state() or torch.cuda.is_initialized()  # a CPU process starts no CUDA to save it
