"""`python -m mtapp.bench <benchmark> ...`; benchmarks: claims, decode, gpu, invariance, kernels, nested, padding,
peers, profile, scale, serve, stream, train."""

from __future__ import annotations

import sys

from mtapp.bench import (
    claims,
    decode,
    gpu,
    invariance,
    kernels,
    nested,
    padding,
    peers,
    profiling,
    scale,
    serve,
    stream,
    train,
)

BENCHMARKS = {
    "claims": claims.main,
    "decode": decode.main,
    "gpu": gpu.main,
    "invariance": invariance.main,
    "kernels": kernels.main,
    "nested": nested.main,
    "padding": padding.main,
    "peers": peers.main,
    "profile": profiling.main,
    "scale": scale.main,
    "serve": serve.main,
    "stream": stream.main,
    "train": train.main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m mtapp.bench {{{','.join(BENCHMARKS)}}} ...", file=sys.stderr)
        return 2
    return BENCHMARKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
