"""`python -m mtapp.serve`: a translation server (FastAPI + uvicorn) that batches concurrent requests.

python -m mtapp.serve --run DIR [--engine torch|ctranslate2] [--host 127.0.0.1] [--port 8000]
                      [--batch-window-ms 5] [--max-tokens N] [--queue-limit 4096]
                      [--max-batch-requests 0] [--max-sentences 256] [--max-chars 4000]
                      [--max-body-bytes 1000000] [--timeout 60] [decode flags as translate's]

POST /translate {"text": [str, ...], "beam": int?, "nbest": int?} -> {"translations": [...]}
(with nbest: also "scores", and each translation a list, best first); GET /health, /ready, /model,
/metrics (Prometheus), and / (a page to type text into).

One worker thread owns the model. Each request's sentences join a queue; the worker takes the
first waiting request, then every request that arrives within `--batch-window-ms` of it (or
waited meanwhile), until the token budget (`--max-tokens`, default the run's decode.max_tokens)
or `--max-batch-requests` is reached, and translates all their sentences together through
`Translator.translate_nbest` — the length-bucketed token-budget batching `translate` uses.
Float32 decoding does not depend on the batch (README, "Batch-invariant translation"), so a
request's translation is the same whoever shares its batch. `--max-batch-requests 1` serves one
request at a time (as OpenNMT-py's server does): the baseline of `bench serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError, decode_with
from mtapp.ct2 import ExportError
from mtapp.data.corpora import CorpusError
from mtapp.data.download import file_sha256
from mtapp.translate import add_model_args, checkpoint_path, engine_of, load_translator, run_config
from mtapp.translator import Translator

log = logging.getLogger("mtapp.serve")


@dataclass(frozen=True)
class Limits:
    batch_window_ms: float = 5.0  # wait this long after a request for others to share its batch
    max_tokens: int | None = None  # subwords gathered into one batch (None: the run's decode.max_tokens)
    queue_limit: int = 4096  # sentences waiting, beyond which requests get 503
    max_batch_requests: int = 0  # requests per batch (0: no limit; 1: one request at a time)
    max_sentences: int = 256  # per request
    max_chars: int = 4000  # per sentence
    max_body_bytes: int = 1_000_000
    timeout: float = 60.0  # seconds a request may wait for its translation


REQUEST_FIELDS = {"beam": '"beam"', "nbest": '"nbest"'}  # how errors name the request's fields


class Refused(Exception):
    """A request the server does not take: HTTP `status`, and what to change."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Job:
    lines: list[str]
    beam: int
    nbest: int
    ids: list[list[int]]  # its lines' subwords: counted against the batch budget, then translated
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    arrived: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        """Its subwords (eos included), counted against the batch budget."""
        return sum(len(ids) + 1 for ids in self.ids)


class Metrics:
    """Prometheus metrics of one server (their own registry, so that tests can start several)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mtapp_requests", "Translation requests answered, by HTTP status", ["status"], registry=r
        )
        self.sentences = Counter("mtapp_sentences", "Sentences translated", registry=r)
        counts = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        self.batch_sentences = Histogram("mtapp_batch_sentences", "Sentences per batch", buckets=counts, registry=r)
        self.batch_requests = Histogram("mtapp_batch_requests", "Requests per batch", buckets=counts, registry=r)
        tokens = (16, 64, 256, 1024, 2048, 4096, 8192, 16384)
        self.batch_tokens = Histogram("mtapp_batch_tokens", "Source subwords per batch", buckets=tokens, registry=r)
        self.queue = Gauge("mtapp_queue_sentences", "Sentences waiting for the worker", registry=r)
        self.latency = Histogram("mtapp_request_seconds", "Time from arrival to answer", registry=r)


class Batcher:
    """The worker that owns the translator: gathers waiting requests into batches (module docstring)."""

    def __init__(self, translator: Translator, limits: Limits, metrics: Metrics):
        self.translator, self.limits, self.metrics = translator, limits, metrics
        self.budget = limits.max_tokens or translator.decode.max_tokens
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.waiting = 0  # sentences queued, not yet taken
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="mtapp-batcher", daemon=True)
        self.thread.start()

    def submit(self, lines: list[str], beam: int, nbest: int) -> concurrent.futures.Future:
        ids = self.translator.tokenizer.encode(lines)  # once: the worker translates these
        with self.lock:
            if self.waiting + len(lines) > self.limits.queue_limit:
                raise Refused(
                    503,
                    f"the queue is full ({self.waiting} sentences wait; --queue-limit {self.limits.queue_limit}): "
                    "retry later, or start the server with a larger --queue-limit",
                    {"Retry-After": "1"},
                )
            self.waiting += len(lines)
            self.metrics.queue.set(self.waiting)
        job = Job(lines, beam, nbest, ids)
        self.jobs.put(job)
        return job.future

    def close(self) -> None:
        """Translate what is queued, then stop the worker."""
        self.jobs.put(None)
        self.thread.join()

    def _take(self, job: Job) -> bool:
        with self.lock:
            self.waiting -= len(job.lines)
            self.metrics.queue.set(self.waiting)
        return job.future.set_running_or_notify_cancel()  # False: its client gave up (timeout)

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        """`first` and the jobs that join it; whether the server is closing."""
        batch, tokens = [first], first.tokens
        deadline = first.arrived + self.limits.batch_window_ms / 1000
        most = self.limits.max_batch_requests or float("inf")
        while tokens < self.budget and len(batch) < most:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if self._take(job):
                batch.append(job)
                tokens += job.tokens
        return batch, False

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self.jobs.get()
            if first is None:
                break
            if not self._take(first):
                continue
            batch, closing = self._gather(first)
            self._translate(batch)
        while (job := self._next_left()) is not None:  # closing: what is still queued is translated
            if self._take(job):
                self._translate([job])

    def _next_left(self) -> Job | None:
        with contextlib.suppress(queue.Empty):
            while (job := self.jobs.get_nowait()) is None:
                pass
            return job
        return None

    def _translate(self, batch: list[Job]) -> None:
        m = self.metrics
        m.batch_requests.observe(len(batch))
        m.batch_sentences.observe(sum(len(j.lines) for j in batch))
        m.batch_tokens.observe(sum(j.tokens for j in batch))
        for beam, nbest in {(j.beam, j.nbest) for j in batch}:  # one search per setting
            jobs = [j for j in batch if (j.beam, j.nbest) == (beam, nbest)]
            lines = [line for j in jobs for line in j.lines]
            try:
                found = self.translator.translate_nbest(lines, beam, nbest, ids=[i for j in jobs for i in j.ids])
            except Exception as e:  # every request of the batch learns of it; the worker goes on
                log.exception("translation failed")
                for j in jobs:
                    j.future.set_exception(e)
                continue
            m.sentences.inc(len(lines))
            start = 0
            for j in jobs:
                j.future.set_result(found[start : start + len(j.lines)])
                start += len(j.lines)


# ---- the HTTP side ----------------------------------------------------------------------------
def parse_request(body: bytes, limits: Limits, decode) -> tuple[list[str], int, int, bool]:
    """The request's lines, beam, nbest and whether n-best output was asked, checked."""
    if len(body) > limits.max_body_bytes:
        raise Refused(413, f"the body has {len(body)} bytes, more than --max-body-bytes {limits.max_body_bytes}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Refused(400, f'the body is not valid JSON ({e}); send {{"text": ["a sentence", ...]}}') from None
    if not isinstance(data, dict) or "text" not in data:
        raise Refused(422, 'the body must be a JSON object with "text": a list of strings')
    text = [data["text"]] if isinstance(data["text"], str) else data["text"]
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        raise Refused(422, '"text" must be a list of strings (or one string)')
    if len(text) > limits.max_sentences:
        raise Refused(413, f"{len(text)} sentences in one request, more than --max-sentences {limits.max_sentences}")
    for i, t in enumerate(text):
        if len(t) > limits.max_chars:
            raise Refused(413, f"text[{i}] has {len(t)} characters, more than --max-chars {limits.max_chars}")
        if "\n" in t or "\r" in t:
            raise Refused(422, f"text[{i}] holds a line break: send each line as its own string")
    try:  # the rules of the decode.* keys, the request's field named
        checked = decode_with(decode, {"beam": data.get("beam"), "nbest": data.get("nbest", 1)}, REQUEST_FIELDS)
    except ConfigError as e:
        raise Refused(422, str(e)) from None
    return text, checked.beam, checked.nbest, "nbest" in data


def describe(args: argparse.Namespace, translator: Translator) -> dict:
    """What GET /model reports."""
    cfg, engine = run_config(args), engine_of(args)
    weights = args.run / "model.bin" if engine == "ctranslate2" else checkpoint_path(args)
    return {
        "source_language": cfg.data.src_lang,
        "target_language": cfg.data.tgt_lang,
        "model_type": cfg.model.type,
        "engine": engine,
        "quantize": args.quantize,
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
        "decode": asdict(translator.decode),
    }


def create_app(args: argparse.Namespace, limits: Limits):
    """The FastAPI app; the model loads in the background at start-up (GET /ready says when)."""
    metrics = Metrics()
    state: dict = {"batcher": None, "model": None, "error": None}

    def load() -> None:
        try:
            translator = load_translator(args)
            state["model"] = describe(args, translator)
            state["batcher"] = Batcher(translator, limits, metrics)
            log.info("model loaded: %s", state["model"]["weights"])
        except Exception as e:  # reported by /ready and every /translate
            log.exception("the model could not be loaded")
            state["error"] = f"{type(e).__name__}: {e}"

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loader = threading.Thread(target=load, name="mtapp-load", daemon=True)
        loader.start()
        yield
        loader.join()
        if state["batcher"] is not None:  # in-flight requests have been answered: drain and stop
            state["batcher"].close()

    app = FastAPI(title="mtapp", lifespan=lifespan)

    def refused(e: Refused) -> JSONResponse:
        metrics.requests.labels(str(e.status)).inc()
        return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)

    @app.get("/health")
    def health():
        return {"status": "alive"}

    @app.get("/ready")
    def ready():
        if state["error"]:
            return JSONResponse({"ready": False, "error": state["error"]}, status_code=503)
        if state["batcher"] is None:
            return JSONResponse({"ready": False, "error": "the model is loading"}, status_code=503)
        return {"ready": True}

    @app.get("/model")
    def model():
        if state["model"] is None:
            return JSONResponse({"error": state["error"] or "the model is loading"}, status_code=503)
        return state["model"]

    @app.get("/metrics")
    def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE

    @app.post("/translate")
    async def translate(request: Request):
        started = time.monotonic()
        try:
            batcher = state["batcher"]
            if batcher is None:
                raise Refused(503, state["error"] or "the model is loading: retry in a moment", {"Retry-After": "1"})
            lines, beam, nbest, scored = parse_request(await request.body(), limits, batcher.translator.decode)
            future = batcher.submit(lines, beam, nbest)
            try:
                found = await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout)
            except asyncio.TimeoutError:
                raise Refused(
                    504, f"no translation within --timeout {limits.timeout:g} s: send fewer sentences or retry"
                ) from None
        except Refused as e:
            return refused(e)
        except Exception as e:  # the translation failed: the client learns why, the server goes on
            metrics.requests.labels("500").inc()
            return JSONResponse({"error": f"translation failed: {type(e).__name__}: {e}"}, status_code=500)
        metrics.requests.labels("200").inc()
        metrics.latency.observe(time.monotonic() - started)
        if not scored:
            return {"translations": [hyps[0].text for hyps in found]}
        return {
            "translations": [[h.text for h in hyps] for hyps in found],
            "scores": [[h.score for h in hyps] for hyps in found],
        }

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mtapp</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
textarea{width:100%;height:8rem;font-size:1rem}button{font-size:1rem;padding:.4rem 1.2rem;margin:.5rem 0}
#output{white-space:pre-wrap;border:1px solid #ccc;padding:.6rem;min-height:3rem}#info{color:#666}
</style></head><body>
<h1>mtapp</h1><p id="model"></p>
<label for="source">Text, one sentence per line:</label>
<textarea id="source"></textarea><br>
<button id="go">Translate</button> <span id="info"></span>
<div id="output"></div>
<script>
fetch('/model').then(r => r.json()).then(m => {
  if (m.source_language) document.getElementById('model').textContent =
    m.source_language + ' \\u2192 ' + m.target_language + ' (' + m.model_type + ', ' + m.engine + ')';
});
document.getElementById('go').addEventListener('click', async () => {
  const info = document.getElementById('info'), out = document.getElementById('output');
  const text = document.getElementById('source').value.split(/\\r?\\n/);
  info.textContent = 'translating\\u2026';
  const started = performance.now();
  const r = await fetch('/translate', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                       body: JSON.stringify({text})});
  const body = await r.json();
  const ms = Math.round(performance.now() - started);
  if (!r.ok) { out.textContent = ''; info.textContent = 'error ' + r.status + ': ' + body.error; return; }
  out.textContent = body.translations.join('\\n');
  info.textContent = 'translated in ' + ms + ' ms';
});
</script></body></html>
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.serve", description=__doc__.split("\n\n")[0])
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    defaults = Limits()
    p.add_argument("--batch-window-ms", type=float, default=defaults.batch_window_ms)
    p.add_argument("--queue-limit", type=int, default=defaults.queue_limit, help="sentences waiting at most")
    p.add_argument("--max-batch-requests", type=int, default=defaults.max_batch_requests, help="0 = no limit")
    p.add_argument("--max-sentences", type=int, default=defaults.max_sentences, help="per request")
    p.add_argument("--max-chars", type=int, default=defaults.max_chars, help="per sentence")
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    p.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds a request may wait")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("batch_window_ms", "queue_limit", "max_sentences", "max_chars", "max_body_bytes", "timeout"):
        if getattr(args, name) < 0 or (name != "batch_window_ms" and getattr(args, name) == 0):
            p.error(f"--{name.replace('_', '-')} must be {'at least 0' if name == 'batch_window_ms' else 'positive'}")
    try:  # the model's settings and files, checked before the port is taken
        run_config(args)
    except (CheckpointError, ConfigError, CorpusError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    limits = Limits(
        args.batch_window_ms,
        args.max_tokens,
        args.queue_limit,
        args.max_batch_requests,
        args.max_sentences,
        args.max_chars,
        args.max_body_bytes,
        args.timeout,
    )
    import uvicorn

    uvicorn.run(
        create_app(args, limits), host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=30
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
