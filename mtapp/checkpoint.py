"""Checkpoints: everything needed to resume training or to translate, saved atomically.

A checkpoint is a dict of plain tensors and containers (loadable with `weights_only=True`):
model / optimizer state_dicts, the training progress and sampler position, RNG states, the
resolved config, and the tokenizer model itself.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "mtapp-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, or not an mtapp checkpoint."""


def save_checkpoint(path: Path, content: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, **content}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mtapp checkpoint (expected format {FORMAT})")
    return content


def tokenizer_to_tensor(model_bytes: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(model_bytes), dtype=torch.uint8)


def tokenizer_from_tensor(tensor: torch.Tensor) -> bytes:
    return tensor.numpy().tobytes()


def rng_state() -> dict[str, Any]:
    _, py_keys, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": (list(py_keys), py_gauss),
        "numpy": (torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py_keys, py_gauss = state["python"]
    random.setstate((3, tuple(py_keys), py_gauss))
    np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(("MT19937", np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
