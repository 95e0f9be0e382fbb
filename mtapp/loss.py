"""Label-smoothed cross entropy over real target tokens: sums and the count to divide by."""

from __future__ import annotations

import torch

CHUNK_ROWS = 256  # rows of logits alive at once: (256, V) float32 stays in the processor's cache
GPU_CHUNK_ROWS = 8192  # on a GPU: fewer, larger kernels (a chunk's logits, 8192 x 8000 float32, are 262 MB)


def projected_smoothed_nll(
    hidden: torch.Tensor, weight: torch.Tensor, gold: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss and summed NLL of N predictions, projection included.

    hidden: (N, D) decoder outputs at the positions to score
    weight: (V, D) output embedding (logits = hidden @ weight.T)
    gold:   (N,) int64 reference ids
    The smoothing spreads `epsilon` uniformly over the vocabulary (Szegedy et al. 2016). The
    caller picks the positions (real target tokens: pads never reach this function) and divides
    by their number once per optimizer update, after accumulation.
    """
    return _ProjectedSmoothedNLL.apply(hidden, weight, gold, epsilon)


class _ProjectedSmoothedNLL(torch.autograd.Function):
    """Projection, softmax and loss fused over chunks of rows, gradients computed on the way.

    The (N, V) logits are never materialised: each chunk of rows is projected, scored and its
    gradients taken while it is in cache (the memory traffic of the logits is what a padded
    batch's real tokens cost beyond the matrix products). Per row i, with z = logits:
    loss_i = lse_i - (1 - eps) * z_i[gold_i] - eps * mean_v z_iv  (lse = logsumexp of z)
    d loss_i / d z_iv = softmax(z_i)_v - eps / V - (1 - eps) * [v == gold_i]
    Each chunk's logits are exponentiated once, in place, for both lse and the softmax; the mean
    logit is h_i . mean_v(w_v), a matrix-vector product instead of a pass over the logits.
    Matrix products run in the autocast dtype when autocast is on (the inputs' dtype otherwise);
    softmax and the sums in float32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, gold, epsilon):
        dtype = _compute_dtype(hidden)
        h, w = hidden.to(dtype), weight.to(dtype)
        wants_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if wants_grad else None
        # In low precision the chunks' dz are kept, (N, V), for one product at the end: oneDNN sums
        # over all N rows in float32 and rounds once, where a product per chunk would round each
        # chunk's (V, D) to bf16 and cast it to float32 to add it up.
        low = wants_grad and dtype != torch.float32
        dz_all = torch.empty((len(h), weight.shape[0]), dtype=dtype, device=h.device) if low else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if wants_grad and not low else None
        )
        loss, nll = h.new_zeros((), dtype=torch.float32), h.new_zeros((), dtype=torch.float32)
        vocab = w.shape[0]
        mean_logit = torch.mv(h.float(), w.float().mean(dim=0))  # (N,) mean_v z_iv
        chunk = CHUNK_ROWS if h.device.type == "cpu" else GPU_CHUNK_ROWS
        for start in range(0, len(h), chunk):
            rows = slice(start, start + chunk)
            z = torch.mm(h[rows], w.t()).float()  # (n, V)
            g = gold[rows, None]
            gold_logit = z.gather(1, g).squeeze(1)
            top = z.amax(dim=-1, keepdim=True)
            e = z.sub_(top).exp_()  # exp(z - max): the logits are not needed any more
            total = e.sum(dim=-1, keepdim=True)
            lse = (top + total.log()).squeeze(1)
            nll_i = lse - gold_logit
            loss += ((1.0 - epsilon) * nll_i + epsilon * (lse - mean_logit[rows])).sum()
            nll += nll_i.sum()
            if wants_grad:
                dz = e.mul_(total.reciprocal_()).sub_(epsilon / vocab)  # softmax - eps / V
                dz.scatter_add_(1, g, torch.full_like(lse[:, None], -(1.0 - epsilon)))
                if low:
                    dz = dz_all[rows].copy_(dz)
                torch.mm(dz, w, out=grad_h[rows])
                if not low:  # (V, D), summed over chunks in float32
                    torch.addmm(grad_w, dz.t(), h[rows], out=grad_w)  # in place, no (V, D) temporary
        if low:
            grad_w = torch.mm(dz_all.t(), h)  # (V, D) in `dtype`, summed over every row in float32
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = hidden.dtype, weight.dtype
        ctx.mark_non_differentiable(nll)  # reported, never trained on
        return loss, nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_nll):
        grad_h, grad_w = ctx.saved_tensors
        return (grad_h * grad_loss).to(ctx.dtypes[0]), (grad_w * grad_loss).to(ctx.dtypes[1]), None, None


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def batch_loss(model, batch, epsilon: float, mask_padding: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Teacher-forced loss and NLL sums of a batch, and the number of positions they cover.

    With `mask_padding` (the right thing) only real target tokens count; without it every padded
    slot is a target too (the model is trained to predict pads), as in code that forgets the mask.
    """
    hidden = model(batch)  # (B, T, D)
    weight = model.output_embedding()
    if not mask_padding:
        loss, nll = projected_smoothed_nll(hidden.flatten(0, 1), weight, batch.tgt_out.flatten(), epsilon)
        return loss, nll, batch.tgt_out.numel()
    real = ~batch.tgt_pad_mask
    # no vocabulary projection for pads: only the real positions are scored
    loss, nll = projected_smoothed_nll(hidden[real], weight, batch.tgt_out[real], epsilon)
    return loss, nll, int(real.sum())
