"""Greedy and beam search over the `Seq2Seq` interface, batched, with finished rows leaving.

Both return one `Hypothesis` per source row, in batch order, with its log-probability; beam
search ranks hypotheses by `normalised` (the length penalty), the score every engine reports.
The output length of sentence i is limited to `max_len_a * len_i + max_len_b` tokens (len_i =
source subwords, eos excluded); a hypothesis that reaches the limit ends there. The limit never exceeds the model's
`max_output_tokens` (a Transformer's position table), however long the source. A hypothesis
cannot end with fewer than `min_len` tokens (eos is blocked at earlier steps) unless its limit
is lower.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mtapp.batching import Batch
from mtapp.models import Seq2Seq
from mtapp.specials import BOS, EOS, PAD


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # output ids, without bos/eos
    log_prob: float  # of the tokens and the end token (CTranslate2, cut at its limit: of the subwords it made)


def normalised(hyp: Hypothesis, length_penalty: float) -> float:
    """The score a hypothesis is ranked and reported by: log-probability / (subwords + 1) **
    length_penalty (the end token counted), the same for greedy, beam and CTranslate2."""
    return hyp.log_prob / (len(hyp.tokens) + 1) ** length_penalty


def length_limits(batch: Batch, a: float, b: int, most: int | None = None) -> torch.Tensor:
    """(B,) int64 most output tokens (eos excluded) per row, at most `most` (None: no cap)."""
    limits = (a * (batch.src_lengths - 1).float() + b).long()
    return limits if most is None else limits.clamp(max=most)


@torch.no_grad()
def greedy(model: Seq2Seq, batch: Batch, max_len_a: float, max_len_b: int, min_len: int = 0) -> list[Hypothesis]:
    state = model.encode(batch)
    limits = length_limits(batch, max_len_a, max_len_b, model.max_output_tokens)
    alive = torch.arange(batch.size, device=batch.src.device)  # rows still decoding
    out = torch.full((batch.size, int(limits.max()) + 1), PAD, dtype=torch.long, device=alive.device)
    scores = torch.zeros(batch.size, device=alive.device)
    last = torch.full((batch.size,), BOS, dtype=torch.long, device=alive.device)
    for step in range(int(limits.max()) + 1):
        logits, state = model.decode_step(last, state)
        lprobs = F.log_softmax(logits.float(), dim=-1)
        at_limit = step >= limits[alive]
        lprobs[at_limit, :EOS] = float("-inf")  # at its limit a row can only end
        lprobs[at_limit, EOS + 1 :] = float("-inf")
        if step < min_len:  # too short to end
            lprobs[~at_limit, EOS] = float("-inf")
        best, last = lprobs.max(dim=-1)
        out[alive, step] = last
        scores[alive] += best
        keep = (last != EOS).nonzero().squeeze(1)
        if len(keep) < len(alive):
            alive, last = alive[keep], last[keep]
            if not len(alive):
                break
            state = state.reorder(keep)
    return [_hypothesis(row, score) for row, score in zip(out.tolist(), scores.tolist())]


def beam_search(
    model: Seq2Seq,
    batch: Batch,
    beam: int,
    length_penalty: float,
    max_len_a: float,
    max_len_b: int,
    min_len: int = 0,
) -> list[Hypothesis]:
    """The best hypothesis of each source row (see `beam_search_nbest`)."""
    found = beam_search_nbest(model, batch, beam, 1, length_penalty, max_len_a, max_len_b, min_len)
    return [hyps[0] for hyps in found]


@torch.no_grad()
def beam_search_nbest(
    model: Seq2Seq,
    batch: Batch,
    beam: int,
    nbest: int,
    length_penalty: float,
    max_len_a: float,
    max_len_b: int,
    min_len: int = 0,
) -> list[list[Hypothesis]]:
    """Batched beam search. A sentence is done once `beam` hypotheses have ended (eos among
    the best `beam` candidates of a step) and then leaves the batch; its `nbest` (<= beam)
    best ended hypotheses by normalised score are returned, best first."""
    n, k, device = batch.size, beam, batch.src.device
    limits = length_limits(batch, max_len_a, max_len_b, model.max_output_tokens)
    max_steps = int(limits.max()) + 1
    state = model.encode(batch)  # the first step has one row per sentence: all K beams would be equal
    sent = torch.arange(n, device=device)  # original row of each sentence still searched
    scores = torch.zeros(n, 1, device=device)  # (n', beams): 1 before the first step, then K
    history = torch.zeros(n, 1, 0, dtype=torch.long, device=device)  # (n', beams, step)
    ended = torch.zeros(n, dtype=torch.long, device=device)
    best = torch.full((n, nbest), float("-inf"), device=device)  # normalised scores, best first
    best_tokens = torch.full((n, nbest, max_steps), PAD, dtype=torch.long, device=device)
    last = torch.full((n,), BOS, dtype=torch.long, device=device)

    for step in range(max_steps):
        logits, state = model.decode_step(last, state)
        lprobs = F.log_softmax(logits.float(), dim=-1).view(len(sent), scores.shape[1], -1)  # (n', beams, V)
        at_limit = step >= limits[sent]
        if at_limit.any():  # at its limit a sentence can only end
            lprobs[at_limit, :, :EOS] = float("-inf")
            lprobs[at_limit, :, EOS + 1 :] = float("-inf")
        if step < min_len:  # too short to end
            lprobs[~at_limit, :, EOS] = float("-inf")
        # The 2K best of a sentence's K x V candidates are among the 2K best of each beam, so
        # only those are scored: no (n', K, V) score tensor is made.
        row_lprobs, row_token = row_topk(lprobs, min(2 * k, lprobs.shape[-1]))  # (n', beams, 2K)
        flat = (scores[:, :, None] + row_lprobs).view(len(sent), -1)
        missing = 2 * k - flat.shape[1]  # > 0 at the first step with a vocabulary under 2K
        if missing > 0:  # impossible candidates (-inf) that stand for the last real one
            flat = F.pad(flat, (0, missing), value=float("-inf"))
        cand_scores, cand = flat.topk(2 * k, dim=1)
        if missing > 0:
            cand = cand.clamp(max=row_lprobs.shape[-1] - 1)
        cand_beam = cand // row_lprobs.shape[-1]  # (n', 2K)
        cand_token = row_token.view(len(sent), -1).gather(1, cand)
        is_eos = cand_token == EOS

        # Hypotheses ending now: eos among the K best candidates.
        ending = is_eos & (torch.arange(2 * k, device=device) < k) & (cand_scores > float("-inf"))
        normed = (cand_scores / float(step + 1) ** length_penalty).masked_fill(~ending, float("-inf"))
        _keep_best(best, best_tokens, sent, normed, history, cand_beam, step)
        ended[sent] += ending.sum(dim=1)

        # The K best candidates that do not end continue (eos can take at most K of 2K).
        order = torch.where(is_eos, 2 * k, 0) + torch.arange(2 * k, device=device)
        keep_pos = order.argsort(dim=1)[:, :k]
        scores = cand_scores.gather(1, keep_pos)
        beams = cand_beam.gather(1, keep_pos)  # (n', K) which old beam each new beam extends
        last2d = cand_token.gather(1, keep_pos)
        history = torch.cat([history.gather(1, beams[:, :, None].expand(-1, -1, step)), last2d[:, :, None]], 2)

        going = (ended[sent] < k) & ~at_limit
        if not going.any():
            break
        idx = going.nonzero().squeeze(1)
        sent, scores, history, last2d, beams = sent[idx], scores[idx], history[idx], last2d[idx], beams[idx]
        state = state.reorder((idx[:, None] * lprobs.shape[1] + beams).view(-1))
        last = last2d.view(-1)

    return [
        [_hypothesis(row, score, length_penalty) for row, score in zip(rows, row_scores) if score > float("-inf")]
        for rows, row_scores in zip(best_tokens.tolist(), best.tolist())
    ]


def _keep_best(best, best_tokens, sent, normed, history, cand_beam, step: int) -> None:
    """Merge the hypotheses ending at `step` (normed (n', 2K), -inf = not ending) into each
    sentence's N best so far (best (n, N), best_tokens (n, N, steps)), in place. Ties keep the
    earlier: a hypothesis found before, then the better-ranked candidate."""
    rows = (normed.amax(dim=1) > best[sent, -1]).nonzero().squeeze(1)  # sentences with a new N-best entry
    if not len(rows):
        return
    nbest, steps = best.shape[1], best_tokens.shape[2]
    tokens = torch.full((len(rows), normed.shape[1], steps), PAD, dtype=torch.long, device=best.device)
    tokens[:, :, :step] = history[rows[:, None], cand_beam[rows]]  # (rows, 2K, step)
    tokens[:, :, step] = EOS
    origin = sent[rows]
    merged = torch.cat([best[origin], normed[rows]], dim=1)  # (rows, N + 2K)
    top = merged.sort(dim=1, descending=True, stable=True).indices[:, :nbest]  # (rows, N)
    best[origin] = merged.gather(1, top)
    best_tokens[origin] = torch.cat([best_tokens[origin], tokens], dim=1)[
        torch.arange(len(rows), device=top.device)[:, None], top
    ]


def row_topk(x: torch.Tensor, k: int, groups: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """`x.topk(k, dim=-1)` for long rows (a vocabulary), faster on the CPU (`python -m mtapp.bench kernels`).

    The entries of a row are split into `groups` strided groups (group j = entries j,
    j + groups, j + 2 * groups, ...). A top-k entry's group has a maximum at least as large as
    it, and at most k - 1 entries are larger, so the top-k entries lie in the k groups with the
    largest maxima; only those (and the tail beyond the last whole stride) are searched. Equal
    values may be returned in another order than `topk`'s (whose order of ties is unspecified).
    """
    width = x.shape[-1]
    per = width // groups  # entries per group
    if per < 2 or groups <= k or x.device.type != "cpu":  # a GPU's topk is one kernel: the groups would add three
        return x.topk(k, dim=-1)
    main = x[..., : per * groups].unflatten(-1, (per, groups))  # (..., per, groups)
    top = main.amax(dim=-2).topk(k, dim=-1).indices  # (..., k) the groups to search
    cand = main.gather(-1, top[..., None, :].expand(*top.shape[:-1], per, k)).flatten(-2)  # (..., per * k)
    index = (torch.arange(per, device=x.device)[:, None] * groups + top[..., None, :]).flatten(-2)
    if per * groups < width:
        cand = torch.cat([cand, x[..., per * groups :]], dim=-1)
        tail = torch.arange(per * groups, width, device=x.device).expand(*x.shape[:-1], -1)
        index = torch.cat([index, tail], dim=-1)
    values, pos = cand.topk(k, dim=-1)
    return values, index.gather(-1, pos)


def _hypothesis(row: list[int], score: float, length_penalty: float = 0.0) -> Hypothesis:
    """The hypothesis of an output row; `score` its log-probability normalised with
    `length_penalty` (`normalised`; 0: not normalised)."""
    tokens = row[: row.index(EOS)] if EOS in row else [t for t in row if t != PAD]
    return Hypothesis(tokens, score * (len(tokens) + 1) ** length_penalty)
