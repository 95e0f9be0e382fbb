"""`python -m mtapp.bench serve`: what batching concurrent requests buys, on loopback.

    python -m mtapp.bench serve --run DIR [--windows 0,2,5,20] [--concurrency 1,4,16,64]
        [--sizes 1,10] [--requests 64] [--seconds 20] [--out results/serve]

For each batch window, one `python -m mtapp.serve` process (float32, CPU), and the serialized
baseline (`--max-batch-requests 1`: one request at a time, as OpenNMT-py's server serves).
Against each: closed-loop clients (each sends its next request when the last is answered) at
each concurrency, with requests of each size (sentences drawn from the run's test split), at most
`--requests` requests (4 per client at least) or `--seconds` per cell. Per cell: throughput
(sentences/s), p50/p95/p99 latency, mean sentences and requests per batch (from /metrics).
Also the offline throughput of `Translator.translate` on the same sentences in this process, in
one call and in calls of `--per-call` sentences (what batches of that size allow), and a lone
request's latency. Writes OUT/serve.json, OUT/report.md and .html (tables, a PNG of
throughput and p99 latency against concurrency per window).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mtapp import rundir
from mtapp.bench.invariance import machine, machine_line, run_config
from mtapp.data import load_split
from mtapp.report.document import Document, Paragraph, Table
from mtapp.report.plots import pyplot, save
from mtapp.runtime import set_threads
from mtapp.translator import Translator

BASELINE = "serialized"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `python -m mtapp.serve` child on a free loopback port, float32 on the CPU, ready when
    constructed (`flags`: more of its options); `stop` sends SIGTERM and returns its exit status."""

    def __init__(self, run: Path, log: Path, flags: list[str] = ()):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "mtapp.serve", "--run", str(run), "--port", str(self.port)]
        self.log = open(log, "w")  # noqa: SIM115 (the child writes it until `stop`, which closes it)
        self.process = subprocess.Popen(
            [*cmd, "--device", "cpu", "--amp", "off", *flags], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready within 300 s; see {log}")

    def post(self, body, **kwargs):
        """POST /translate with `body` (a JSON value, or raw bytes / text as they are)."""
        import httpx

        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(self.url + "/translate", content=content, timeout=120, **kwargs)

    def batch_totals(self) -> dict[str, float]:
        """Sums and counts of the batch histograms, from /metrics."""
        import httpx

        wanted = ("mtapp_batch_sentences_sum", "mtapp_batch_sentences_count", "mtapp_batch_requests_sum")
        found = {}
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            name, _, value = line.partition(" ")
            if name in wanted:
                found[name] = float(value)
        return found

    def stop(self) -> bool:
        """SIGTERM; whether the server then shut down in order (uvicorn ends by re-raising the
        signal, so the exit status is -SIGTERM either way: its log says whether it finished)."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.log.close()
        return code in (0, -signal.SIGTERM) and "Finished server process" in Path(self.log.name).read_text()


def load(server: Server, requests: list[list[str]], clients: int, seconds: float) -> dict:
    """Closed-loop clients over `requests` (taken in turn); latency and throughput of the cell."""
    import httpx

    latencies, sentences, lock = [], [0], threading.Lock()
    taken = iter(range(len(requests)))
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            while time.monotonic() < stop_at:
                with lock:
                    k = next(taken, None)
                if k is None:
                    return
                sent = time.monotonic()
                answer = http.post(server.url + "/translate", json={"text": requests[k]})
                if answer.status_code != 200:
                    raise SystemExit(f"the server answered {answer.status_code}: {answer.text[:300]}")
                with lock:
                    latencies.append(time.monotonic() - sent)
                    sentences[0] += len(requests[k])

    before = server.batch_totals()
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = server.batch_totals()
    batches = after["mtapp_batch_sentences_count"] - before["mtapp_batch_sentences_count"]
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]).tolist()
    return {
        "requests": len(latencies),
        "sentences": sentences[0],
        "seconds": wall,
        "sentences_per_s": sentences[0] / wall,
        "p50_ms": p50 * 1000,
        "p95_ms": p95 * 1000,
        "p99_ms": p99 * 1000,
        "batch_sentences": (after["mtapp_batch_sentences_sum"] - before["mtapp_batch_sentences_sum"]) / batches,
        "batch_requests": (after["mtapp_batch_requests_sum"] - before["mtapp_batch_requests_sum"]) / batches,
    }


def workload(pool: list[str], size: int, count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(pool) for _ in range(size)] for _ in range(count)]


def offline_throughput(run: Path, lines: list[str], per_call: list[int]) -> tuple[float, dict[int, float]]:
    """Sentences/s of `Translator.translate` over `lines` in one call (model loaded), and over
    their first 400 in calls of each `per_call` size: the ceiling of a server whose batches hold
    that many sentences."""
    translator = Translator.from_checkpoint(rundir.checkpoint_file(run), device="cpu", amp="off")
    translator.translate(lines[:8])  # warm-up

    def rate(some: list[str], n: int) -> float:
        started = time.monotonic()
        for i in range(0, len(some), n):
            translator.translate(some[i : i + n])
        return len(some) / (time.monotonic() - started)

    return rate(lines, len(lines)), {n: rate(lines[:400], n) for n in per_call}


def tables(cells: list[dict], offline: float, lone_ms: float) -> list[Table]:
    base = {(c["size"], c["concurrency"]): c for c in cells if c["window"] == BASELINE}
    columns = ["window", "sentences/request", "clients", "sentences/s", "× serialized", "of offline"]
    columns += ["p50 ms", "p95 ms", "p99 ms", "p99 ÷ lone", "sentences/batch", "requests/batch"]
    rows = []
    for c in cells:
        ref = base.get((c["size"], c["concurrency"]))
        rows.append(
            [c["window"], c["size"], c["concurrency"], f"{c['sentences_per_s']:.1f}"]
            + [f"{c['sentences_per_s'] / ref['sentences_per_s']:.2f}×" if ref else "–"]
            + [f"{c['sentences_per_s'] / offline:.0%}", f"{c['p50_ms']:.0f}", f"{c['p95_ms']:.0f}"]
            + [f"{c['p99_ms']:.0f}", f"{c['p99_ms'] / lone_ms:.2f}×", f"{c['batch_sentences']:.1f}"]
            + [f"{c['batch_requests']:.1f}"]
        )
    return [Table(columns, rows)]


def plot(cells: list[dict], path: Path, size: int) -> str:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(12, 4.5))
    for window in dict.fromkeys(c["window"] for c in cells):
        mine = sorted((c for c in cells if c["window"] == window and c["size"] == size), key=lambda c: c["concurrency"])
        label = window if window == BASELINE else f"window {window} ms"
        left.plot([c["concurrency"] for c in mine], [c["sentences_per_s"] for c in mine], marker="o", label=label)
        right.plot([c["concurrency"] for c in mine], [c["p99_ms"] for c in mine], marker="o", label=label)
    for ax, title in ((left, "throughput (sentences/s)"), (right, "p99 latency (ms)")):
        ax.set(title=title, xlabel="concurrent clients", xscale="log")
        ax.legend(fontsize=8)
    return save(fig, path, f"{size} sentence(s) per request")


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--windows", type=lambda s: [float(x) for x in s.split(",")], default=[0, 2, 5, 20])
    p.add_argument("--concurrency", type=ints, default=[1, 4, 16, 64])
    p.add_argument("--sizes", type=ints, default=[1, 10], help="sentences per request")
    p.add_argument("--requests", type=int, default=64, help="requests per cell at most (4 per client at least)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per cell at most")
    p.add_argument("--per-call", type=ints, default=[1, 8, 16, 32], help="offline calls of these sizes")
    p.add_argument("--out", type=Path, default=Path("results/serve"))
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    set_threads()
    started = time.monotonic()
    cfg = run_config(args.run)
    pool = [line for line in load_split(cfg.data, cfg.data.test_split).src if line.strip()]
    offline, by_call = offline_throughput(args.run, pool, args.per_call)
    calls = " / ".join(f"{by_call[n]:.1f}" for n in args.per_call)
    print(f"offline translate: {offline:.1f} sentences/s; in calls of {args.per_call}: {calls}", flush=True)
    servers = [(BASELINE, ["--max-batch-requests", "1", "--batch-window-ms", "0"])]
    servers += [(f"{w:g}", ["--batch-window-ms", str(w)]) for w in args.windows]
    servers = [(name, [*flags, "--queue-limit", "100000"]) for name, flags in servers]
    cells, lone = [], None
    for name, flags in servers:
        server = Server(args.run, args.out / f"server-{name}.log", flags)
        try:
            if lone is None:  # a lone request on an idle server, the latency yardstick
                lone = load(server, workload(pool, 1, 32, seed=99), 1, args.seconds)["p50_ms"]
            for size in args.sizes:
                for clients in args.concurrency:
                    count = max(args.requests, 4 * clients)
                    cell = load(server, workload(pool, size, count, seed=clients), clients, args.seconds)
                    cells.append({"window": name, "size": size, "concurrency": clients} | cell)
                    print(
                        f"{name:>10} size {size:>2} clients {clients:>2}: {cell['sentences_per_s']:7.1f} sentences/s, "
                        f"p99 {cell['p99_ms']:6.0f} ms, {cell['batch_sentences']:.1f} sentences/batch",
                        flush=True,
                    )
        finally:
            server.stop()
    m = machine()
    payload = {"command": [sys.executable, "-m", "mtapp.bench", "serve", *argv], "machine": m, "run": str(args.run)}
    payload |= {"offline_sentences_per_s": offline, "offline_by_call": by_call, "lone_request_ms": lone, "cells": cells}
    payload["seconds"] = time.monotonic() - started
    (args.out / "serve.json").write_text(json.dumps(payload, indent=2) + "\n")
    title = f"bench serve: {args.run.name}, {machine_line(m)}"
    intro = f"Offline `translate` of the same sentences: {offline:.1f} sentences/s (in calls of "
    intro += f"{' / '.join(map(str, args.per_call))} sentences: {calls}); a lone request: {lone:.0f} ms."
    doc = Document(title, [Paragraph(intro), *tables(cells, offline, lone)])
    for size in args.sizes:
        doc.figure(plot(cells, args.out / f"serve-{size}.png", size), f"serve-{size}")
    doc.write(args.out)
    print(tables(cells, offline, lone)[0].markdown())
    return 0
