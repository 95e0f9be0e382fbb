"""Label-smoothed cross entropy over real target tokens: sums and the count to divide by."""

from __future__ import annotations

import torch


def label_smoothed_nll(logits: torch.Tensor, gold: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss and summed NLL of N predictions.

    logits: (N, V) float, any precision (computed in float32)
    gold:   (N,) int64 reference ids
    The smoothing spreads `epsilon` uniformly over the vocabulary (Szegedy et al. 2016). The
    caller picks the positions (real target tokens: pads never reach this function) and divides
    by their number once per optimizer update, after accumulation.
    """
    return _SmoothedNLL.apply(logits, gold, epsilon)


class _SmoothedNLL(torch.autograd.Function):
    """Fused forward/backward: one float32 (N, V) buffer instead of autograd's five.

    loss_i = lse_i - (1 - eps) * z_i[gold_i] - eps * mean_v z_iv  (lse = logsumexp of z)
    d loss_i / d z_iv = softmax(z_i)_v - eps / V - (1 - eps) * [v == gold_i]
    """

    @staticmethod
    def forward(ctx, logits, gold, epsilon):
        z = logits.float()
        lse = torch.logsumexp(z, dim=-1)
        nll = lse - z.gather(1, gold[:, None]).squeeze(1)
        loss = (1.0 - epsilon) * nll + epsilon * (lse - z.mean(dim=-1))
        ctx.save_for_backward(z if z is not logits else z.clone(), gold, lse)
        ctx.epsilon, ctx.dtype = epsilon, logits.dtype
        nll_sum = nll.sum()
        ctx.mark_non_differentiable(nll_sum)  # reported, never trained on
        return loss.sum(), nll_sum

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_nll):
        z, gold, lse = ctx.saved_tensors
        eps, vocab = ctx.epsilon, z.shape[1]
        grad = z.sub_(lse[:, None]).exp_().sub_(eps / vocab)  # reuses the saved buffer: backward runs once
        grad.scatter_add_(1, gold[:, None], torch.full_like(lse[:, None], -(1.0 - eps)))
        grad.mul_(grad_loss)
        return grad.to(ctx.dtype), None, None


def batch_loss(model, batch, epsilon: float, mask_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Teacher-forced loss and NLL sums of a batch, and the number of positions they cover.

    With `mask_padding` (the right thing) only real target tokens count; without it every padded
    slot is a target too (the model is trained to predict pads), as in code that forgets the mask.
    """
    hidden = model(batch)  # (B, T, D)
    if not mask_padding:
        return (
            *label_smoothed_nll(model.project(hidden.flatten(0, 1)), batch.tgt_out.flatten(), epsilon),
            batch.tgt_out.numel(),
        )
    real = ~batch.tgt_pad_mask
    logits = model.project(hidden[real])  # (N, V): no vocabulary projection for pads
    return (*label_smoothed_nll(logits, batch.tgt_out[real], epsilon), int(real.sum()))
