"""`python -m mtapp.bench <benchmark> ...`; benchmarks: claims, decode, gpu, invariance, kernels, nested, padding,
paragraphs, profile, scale, serve, speed, stream, train. (mtapp against OpenNMT-py and JoeyNMT is
scripts/bench_peers.sh.)"""

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
    paragraphs,
    profiling,
    scale,
    serve,
    speed,
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
    "paragraphs": paragraphs.main,
    "profile": profiling.main,
    "scale": scale.main,
    "serve": serve.main,
    "speed": speed.main,
    "stream": stream.main,
    "train": train.main,
}
# Benchmarks that live outside the package, in a checkout: name -> how to run them.
ELSEWHERE = {"peers": "scripts/bench_peers.sh in a checkout of mtapp (it installs OpenNMT-py and JoeyNMT first)"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m mtapp.bench {{{','.join(BENCHMARKS)}}} ...", file=sys.stderr)
        if argv and argv[0] in ELSEWHERE:
            where = ELSEWHERE[argv[0]]
            print(f"error: the {argv[0]} benchmark is not part of the package: run {where}", file=sys.stderr)
        elif argv:
            print(f"error: unknown benchmark {argv[0]!r}", file=sys.stderr)
        return 2
    return BENCHMARKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
