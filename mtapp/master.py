"""bf16-pure training (`train.amp: bf16-pure`): the model's parameters and activations are bf16
between the matrix products, without autocast's casts around every operator; the optimizer
keeps a float32 master copy of every parameter and applies each update to it.

Why: under bf16 autocast a third of a CPU training step was dtype copies (autocast casting the
float32 weights and activations around each `linear`; docs/training_memory_speed.md). Here the
weights are cast once an update, when the updated master copy is written back. Why the master copy:
an update of lr x Adam's normalised gradient (1e-3 x ~1) is below bf16's resolution for most
weights (8 bits of mantissa: a weight of 0.5 moves in steps of 2e-3), so updates applied to bf16
weights are mostly rounded away. Accumulations stay float32: layer norm and softmax statistics
(the CPU kernels accumulate bf16 inputs in float32), matrix products (oneDNN accumulates in
float32), the loss and its sums (`mtapp.loss`), and the optimizer's moments.

Checkpoints hold the float32 master weights (`model_state_dict`), so they load into every engine
and translate as a float32 run's would.
"""

from __future__ import annotations

import torch

__all__ = ["MasterAdam", "model_state"]


class MasterAdam(torch.optim.Adam):
    """Adam over float32 master copies of a bf16 model's parameters.

    After backward, `gather_grads` moves the model's bf16 gradients into the masters' float32
    `.grad` (clip those: the optimizer's parameters); `step` updates the masters in float32 and
    writes them back to the model in bf16."""

    def __init__(self, model: torch.nn.Module, **adam):
        self.model = model
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        masters = [p.detach().float().clone() for _, p in self.named]  # exact: bf16 -> float32 loses nothing
        super().__init__(masters, **adam)

    @property
    def masters(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def gather_grads(self) -> None:
        """The model's gradients, in float32, on the masters; the model's dropped."""
        for (_, p), master in zip(self.named, self.masters, strict=True):
            master.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    @torch.no_grad()
    def step(self, closure=None):
        if any(p.grad is not None for _, p in self.named):
            self.gather_grads()  # a caller that did not gather them itself (it does not clip)
        loss = super().step(closure)
        torch._foreach_copy_([p for _, p in self.named], self.masters)  # rounded to bf16 once an update
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self.model.zero_grad(set_to_none)

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state_dict with the float32 masters in place of its bf16 parameters (and
        any other floating-point entry in float32)."""
        state = self.model.state_dict()
        masters = {name: m for (name, _), m in zip(self.named, self.masters, strict=True)}
        return {k: masters[k] if k in masters else v.float() if v.is_floating_point() else v for k, v in state.items()}

    @torch.no_grad()
    def load_masters(self, state: dict[str, torch.Tensor]) -> None:
        """Masters from a saved float32 model state (resuming: the model itself got them in bf16)."""
        for (name, _), master in zip(self.named, self.masters, strict=True):
            master.copy_(state[name])


def model_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """What a checkpoint saves of the model: its state_dict, or with bf16-pure the float32 masters."""
    return optimizer.model_state_dict() if isinstance(optimizer, MasterAdam) else model.state_dict()
