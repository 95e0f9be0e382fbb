"""Checkpoints: everything needed to resume training or to translate, saved atomically.

A checkpoint is a dict of plain tensors and containers (loadable with `weights_only=True`):
model / optimizer / gradient scaler state_dicts, the training progress and sampler position,
RNG states, the resolved config, and the tokenizer model itself. `Checkpoints` assembles a
training checkpoint and restores training from one; where the files go is `mtapp.rundir`'s.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mtapp import rundir
from mtapp.config import Config
from mtapp.distributed import Distributed
from mtapp.master import MasterAdam, model_state
from mtapp.progress import Progress

FORMAT = "mtapp-checkpoint-v1"

log = logging.getLogger(__name__)


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


class Sampler(Protocol):
    """Where training is in its batches: what a checkpoint saves of the sampler."""

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, int]) -> None: ...


class Checkpoints:
    """A run's training checkpoints: what goes into one, and how resuming restores it.

    Each holds the state_dicts of the model, the optimizer and the gradient scaler, the sampler
    position, the progress, the RNG state of every rank, the resolved config and the tokenizer.
    Every rank calls `save` (their RNG states are gathered); rank 0 writes the file.
    """

    def __init__(self, run_dir: Path, cfg: Config, tokenizer: bytes, group: Distributed | None = None):
        self.run_dir, self.cfg, self.tokenizer = Path(run_dir), cfg, tokenizer
        self.group = group or Distributed()

    def save(
        self,
        which: str,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        sampler: Sampler,
        progress: Progress,
    ) -> Path | None:
        """RUN/checkpoint_<which>.pt; its path on rank 0, None on the others."""
        rngs = self.group.gather(rng_state())
        if not self.group.is_main:
            return None
        content = {
            "model": model_state(model, optimizer),  # float32 (bf16-pure: the master weights)
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "sampler": sampler.state_dict(),
            "progress": asdict(progress),
            "rng": rngs[0],
            "config": self.cfg.to_dict(),
            "tokenizer": tokenizer_to_tensor(self.tokenizer),
            "tokenizer_path": str(rundir.tokenizer_file(self.run_dir)),
        }
        if self.group.active:
            content.update(world_size=self.group.world_size, rng_ranks=rngs)
        path = rundir.checkpoint_file(self.run_dir, which)
        save_checkpoint(path, content)
        return path

    def restore(
        self,
        content: dict[str, Any],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        sampler: Sampler,
    ) -> Progress:
        """Load a saved training state into these parts; the progress to go on from. Each rank
        goes on with its own saved RNG stream, or, with another number of ranks, with rank 0's
        made distinct per rank."""
        model.load_state_dict(content["model"])
        optimizer.load_state_dict(content["optimizer"])
        if isinstance(optimizer, MasterAdam):
            optimizer.load_masters(content["model"])
        if content["scaler"]:  # empty when saved by a disabled scaler (bf16 or float32 training)
            scaler.load_state_dict(content["scaler"])
        sampler.load_state_dict(resharded(content["sampler"], content.get("world_size", 1), self.group))
        progress = Progress(**content["progress"])
        progress.stopped = ""
        rngs = content.get("rng_ranks", [content["rng"]])
        if len(rngs) == self.group.world_size:
            set_rng_state(rngs[self.group.rank])
        else:
            set_rng_state(content["rng"])
            torch.manual_seed(self.cfg.train.seed + 1000 * progress.updates + self.group.rank)
        return progress


def resharded(state: dict[str, int], saved_world: int, group: Distributed) -> dict[str, int]:
    """A sampler position saved with `saved_world` ranks, for this group. Each rank had taken
    `position` batches of the epoch, `position * saved_world` together; with another number of
    ranks training resumes after the largest whole step within those (a few batches repeat)."""
    if saved_world == group.world_size:
        return state
    if group.is_main:
        log.warning(
            "resuming %d-rank training on %d ranks: the epoch resumes at its nearest step",
            saved_world,
            group.world_size,
        )
    return {**state, "position": state["position"] * saved_world // group.world_size}
