"""`python -m mtapp.bench nested`: can PyTorch's nested (jagged) tensors train mtapp's Transformer
on this torch and device? Probes each operation the model needs, forward and backward, against
the same computation done sentence by sentence, and prints what works and what fails.
"""

from __future__ import annotations

import argparse
import traceback

import torch
import torch.nn.functional as F

from mtapp.runtime import select_device

HEADS, HEAD_DIM = 4, 8
LENGTHS = (3, 7, 5)


def _heads(t: torch.Tensor) -> torch.Tensor:
    return t.unflatten(-1, (HEADS, HEAD_DIM)).transpose(1, 2)  # (B, j, D) -> (B, H, j, K)


def _attention(q_seqs, kv_seqs, causal: bool, dtype: torch.dtype | None) -> str:
    d = HEADS * HEAD_DIM
    device = q_seqs[0].device
    lq, lk, lv = (torch.nn.Linear(d, d, device=device) for _ in range(3))
    q_in = torch.nested.nested_tensor(q_seqs, layout=torch.jagged, requires_grad=True)
    kv_in = q_in if kv_seqs is q_seqs else torch.nested.nested_tensor(kv_seqs, layout=torch.jagged)
    with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        y = F.scaled_dot_product_attention(_heads(lq(q_in)), _heads(lk(kv_in)), _heads(lv(kv_in)), is_causal=causal)
        out = y.transpose(1, 2).flatten(-2)
    out.values().float().sum().backward()
    worst = 0.0
    for got, q, kv in zip(out.unbind(), q_seqs, kv_seqs):
        heads = [lin(t).view(-1, HEADS, HEAD_DIM).transpose(0, 1) for lin, t in ((lq, q), (lk, kv), (lv, kv))]
        ref = F.scaled_dot_product_attention(*heads, is_causal=causal).transpose(0, 1).reshape(-1, d)
        worst = max(worst, (got.float() - ref).abs().max().item())
    return f"works (forward + backward); largest difference from sentence-by-sentence {worst:.1e}"


def probe(device: torch.device | None = None) -> dict[str, str]:
    """Each operation the Transformer needs, on nested tensors on `device` (default the CPU): a
    verdict per operation, starting "works" or "FAILS"."""
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    src = [torch.randn(n, HEADS * HEAD_DIM, device=device) for n in LENGTHS]
    tgt = [torch.randn(n + 1, HEADS * HEAD_DIM, device=device) for n in LENGTHS]
    cases = {
        "encoder self-attention (float32)": lambda: _attention(src, src, False, None),
        "decoder causal self-attention (float32)": lambda: _attention(tgt, tgt, True, None),
        "cross-attention, ragged queries and keys (float32)": lambda: _attention(tgt, src, False, None),
        "encoder self-attention under bf16 autocast": lambda: _attention(src, src, False, torch.bfloat16),
    }
    results = {}
    for name, case in cases.items():
        try:
            results[name] = case()
        except Exception as e:  # the point is to report what fails, whatever it raises
            results[name] = f"FAILS: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            if not isinstance(e, RuntimeError):
                traceback.print_exc()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench nested", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    device = select_device(p.parse_args(argv).device)
    print(f"torch {torch.__version__}, nested jagged tensors on {device}:")
    results = probe(device)
    for name, verdict in results.items():
        print(f"  {name}: {verdict}")
    trainable = all(v.startswith("works") for v in results.values())
    if trainable:
        print("verdict: every operation the Transformer needs works on nested tensors here")
    else:
        print("verdict: the Transformer cannot train on nested tensors here; packed_rows (block-diagonal masks)")
        print("         is mtapp's padding-free path")
    return 0
