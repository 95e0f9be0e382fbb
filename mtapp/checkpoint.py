"""Checkpoints: everything needed to resume training or to translate, saved atomically.

A checkpoint is a dict of plain tensors and containers (loadable with `weights_only=True`):
model / optimizer state_dicts, the training progress and sampler position, RNG states, the
resolved config, and the tokenizer model itself.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "mtapp-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, or not an mtapp checkpoint."""


def save_checkpoint(path: Path, content: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename: a reader never
    sees half a file, and a failed save leaves the previous checkpoint and no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **content}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch.load fails on damaged input with many types (KeyError, OSError, ...)
        reason = str(e).split(". ")[0].split("\n")[0][:120]  # torch's messages run to paragraphs
        raise CheckpointError(
            f"{path} is damaged (e.g. cut off) or not an mtapp checkpoint ({type(e).__name__}: {reason}); "
            "use a checkpoint_*.pt written by `python -m mtapp.train`"
        ) from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mtapp checkpoint (expected format {FORMAT})")
    return content


def tokenizer_to_tensor(model_bytes: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(model_bytes), dtype=torch.uint8)


def tokenizer_from_tensor(tensor: torch.Tensor) -> bytes:
    return tensor.cpu().numpy().tobytes()


def rng_state() -> dict[str, Any]:
    _, py_keys, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": (list(py_keys), py_gauss),
        "numpy": (torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # this process's GPU (a CPU run starts no CUDA)
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py_keys, py_gauss = state["python"]
    random.setstate((3, tuple(py_keys), py_gauss))
    np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(("MT19937", np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = cuda_state_for(state["cuda"], torch.cuda.current_device())
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


def cuda_state_for(saved, device: int) -> torch.Tensor | None:
    """The CUDA RNG state to restore on GPU `device`: the saved one, or from a list (earlier
    versions saved every visible GPU's) its entry for `device`, None when it has none."""
    if isinstance(saved, (list, tuple)):
        return saved[device] if device < len(saved) else None
    return saved
