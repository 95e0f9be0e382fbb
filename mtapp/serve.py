"""`python -m mtapp.serve`: a translation server (FastAPI + uvicorn) that batches concurrent requests.

python -m mtapp.serve --run DIR [--engine torch|ctranslate2] [--host 127.0.0.1] [--port 8000]
                      [--batch-window-ms 5] [--max-tokens N] [--queue-limit 4096]
                      [--max-batch-requests 0] [--max-sentences 256] [--max-chars 4000]
                      [--max-body-bytes 1000000] [--timeout 60] [--api-keys FILE]
                      [decode flags as translate's]

POST /translate, in mtapp's form {"text": str | [str], "beam": int?, "nbest": int?} ->
{"translations": [...]} (with nbest: also "scores", and each translation a list, best first), or
in LibreTranslate's (`mtapp.api`): {"q", "source", "target", "format", "alternatives",
"api_key"} -> {"translatedText": ...}; GET|POST /languages and POST /detect (LibreTranslate's);
GET /health, /ready, /model, /metrics (Prometheus), / (a page to type text into), /docs and
/openapi.json (the schema, with the server's languages and limits). Texts are split into lines
(kept in the answer) and lines into sentences (`Translator`), unless --no-split-sentences.
With --api-keys FILE (one key a line), a request without one of its keys gets 403.

The model is loaded once, before the port is taken. One worker thread owns it. Each request's
lines join a queue; the worker takes the first waiting request, then every request that arrives
within `--batch-window-ms` of it (or waited meanwhile), until the token budget (`--max-tokens`,
default the run's decode.max_tokens) or `--max-batch-requests` is reached, and translates all
their lines together through `Translator.translate_nbest` — the length-bucketed token-budget
batching `translate` uses. Float32 decoding does not depend on the batch (README,
"Batch-invariant translation"), so a request's translation is the same whoever shares its batch.
`--max-batch-requests 1` serves one request at a time (as OpenNMT-py's server does): the baseline
of `bench serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib.metadata
import itertools
import logging
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from mtapp.runtime import in_own_thread, missing_extra

try:
    import py3langid  # noqa: F401 (mtapp.api's language identification)
    import uvicorn
    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
except ModuleNotFoundError as e:  # exit 2, as every command does for a setup it cannot use
    print(f"error: {missing_extra('serve', e, 'python -m mtapp.serve')}", file=sys.stderr)
    raise SystemExit(2) from None

from mtapp import inference
from mtapp.api import (
    Api,
    DetectedLanguage,
    Detector,
    ErrorResponse,
    Language,
    LibreTranslateResponse,
    Order,
    Refused,
    TranslateResponse,
    html_segments,
    join_html,
)
from mtapp.checkpoint import CheckpointError
from mtapp.config import ConfigError
from mtapp.ct2 import ExportError
from mtapp.data.corpora import CorpusError, not_a_file
from mtapp.inference import LoadedModel
from mtapp.specials import SOURCE_SPECIALS
from mtapp.translator import Scored, Translator

log = logging.getLogger("mtapp.serve")
LINE_BREAK = re.compile(r"\r?\n")  # a text's lines: each translated, the breaks kept


@dataclass(frozen=True)
class Limits:
    batch_window_ms: float = 5.0  # wait this long after a request for others to share its batch
    max_tokens: int | None = None  # subwords gathered into one batch (None: the run's decode.max_tokens)
    queue_limit: int = 4096  # lines waiting, beyond which requests get 503 (LibreTranslate's form: 429)
    max_batch_requests: int = 0  # requests per batch (0: no limit; 1: one request at a time)
    max_sentences: int = 256  # texts per request
    max_chars: int = 4000  # characters per text
    max_body_bytes: int = 1_000_000
    timeout: float = 60.0  # seconds a request may wait for its translation


@dataclass
class Job:
    lines: list[str]
    beam: int
    nbest: int
    owner: list[int]  # the line of each piece (`Translator.pieces`: sentences, made once)
    pieces: list[list[int]]  # their subwords: counted against the batch budget, then translated
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    arrived: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        """Its subwords (eos included), counted against the batch budget."""
        return sum(len(piece) + SOURCE_SPECIALS for piece in self.pieces)


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
        owner, pieces = self.translator.pieces(lines)  # once: the worker translates these
        if len(lines) > self.limits.queue_limit:  # never fits: retrying cannot help
            raise Refused(
                413,
                f"{len(lines)} lines in one request, more than the queue holds (--queue-limit "
                f"{self.limits.queue_limit}): send fewer lines a request, or start the server with a larger "
                "--queue-limit",
            )
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
        job = Job(lines, beam, nbest, owner, pieces)
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
            starts = itertools.accumulate((len(j.lines) for j in jobs), initial=0)  # each job's first line
            owner = [start + i for j, start in zip(jobs, starts) for i in j.owner]
            prepared = owner, [piece for j in jobs for piece in j.pieces]
            try:
                found = self.translator.translate_nbest(lines, beam, nbest, prepared=prepared)
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
@dataclass
class Service:
    """What the endpoints share: the model, its API models, the limits, the metrics and, once
    the server runs, the worker."""

    model: LoadedModel
    api: Api
    limits: Limits
    metrics: Metrics
    about: dict  # GET /model
    api_keys: frozenset[str] | None = None  # None: every request is served
    detector: Detector | None = None
    batcher: Batcher | None = None


def service(request: Request) -> Service:
    return request.app.state.service


Served = Annotated[Service, Depends(service)]
ERRORS = {
    400: "LibreTranslate form: a missing or wrong field, an unsupported language pair; either form: a body that is "
    "not JSON",
    403: "an API key is required (--api-keys) and the request has none of them",
    413: "the body is larger than --max-body-bytes, or has more lines than --queue-limit",
    415: "a body neither JSON nor form-encoded",
    422: "mtapp form: a missing or wrong field",
    429: "LibreTranslate form: the queue is full (see Retry-After)",
    500: "the translation failed",
    503: "mtapp form: the queue is full (see Retry-After)",
    504: "no translation within --timeout",
}


def errors(*codes: int) -> dict:
    return {code: {"model": ErrorResponse, "description": ERRORS[code]} for code in codes}


def refusal(s: Service, e: Refused) -> JSONResponse:
    s.metrics.requests.labels(str(e.status)).inc()
    return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)


router = APIRouter()


@router.get("/health", response_model=dict[str, str])
def health():
    return {"status": "alive"}


@router.get("/ready", response_model=dict[str, bool])
def ready():
    return {"ready": True}  # the model is loaded before the server starts


@router.get("/model", response_model=dict[str, Any])
def model(s: Served):
    return s.about


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"description": "Prometheus text format"}})
def prometheus(s: Served):
    return Response(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse)
def page():
    return PAGE


@router.api_route("/languages", methods=["GET", "POST"], response_model=list[Language])
def languages(s: Served):
    """LibreTranslate's: the languages and where each translates to."""
    return s.api.languages()


async def body_of(request: Request, limits: Limits) -> bytes:
    """The body, refused beyond --max-body-bytes, or when neither JSON nor form-encoded."""
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise Refused(413, f"the body has {len(body)} bytes, more than --max-body-bytes {limits.max_body_bytes}")
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if body and kind not in ("application/json", "application/x-www-form-urlencoded", ""):
        raise Refused(415, f"a body of type {kind}: send application/json or application/x-www-form-urlencoded")
    return body


def check_key(s: Service, key: str | None) -> None:
    if s.api_keys is not None and key not in s.api_keys:
        raise Refused(403, "Invalid API key: this server needs one of the keys it was given (--api-keys)")


@router.post(
    "/detect",
    response_model=list[list[DetectedLanguage]] | list[DetectedLanguage],
    responses=errors(400, 403, 413, 415),
)
async def detect(request: Request, s: Served):
    """LibreTranslate's: the server's languages ranked for `q` (a list of them for a list)."""
    try:
        body = await body_of(request, s.limits)
        texts, listed, key = s.api.detect_request(body, request.headers.get("content-type", ""), request.url.query)
        check_key(s, key)
    except Refused as e:
        return refusal(s, e)
    ranked = [s.detector.rank(text) for text in texts]
    return ranked if listed else ranked[0]


@router.post(
    "/translate",
    response_model=TranslateResponse | LibreTranslateResponse,
    response_model_exclude_none=True,
    responses=errors(400, 403, 413, 415, 422, 429, 500, 503, 504),
)
async def translate(request: Request, s: Served):
    """Translate texts, in mtapp's form or LibreTranslate's (the body says which: `mtapp.api`)."""
    started = time.monotonic()
    order = None
    try:
        body = await body_of(request, s.limits)
        order = s.api.translate_request(body, request.headers.get("content-type", ""), request.url.query)
        check_key(s, order.api_key)
        found = await translated(s, order)
    except Refused as e:
        if e.status == 503 and order is not None and order.libre:  # a full queue: LibreTranslate says 429
            e.status = 429
        return refusal(s, e)
    except Exception as e:  # the translation failed: the client learns why, the server goes on
        s.metrics.requests.labels("500").inc()
        return JSONResponse({"error": f"translation failed: {type(e).__name__}: {e}"}, status_code=500)
    s.metrics.requests.labels("200").inc()
    s.metrics.latency.observe(time.monotonic() - started)
    return answer(s, order, found)


async def translated(s: Service, order: Order) -> list[list[Scored]]:
    """Each text's hypotheses: its lines (or, for HTML, the texts between its tags) translated
    by the worker, then put back together (`combined`)."""
    parts = [
        html_segments(text) if order.html else [(True, line) for line in LINE_BREAK.split(text)] for text in order.texts
    ]
    lines = [content for text in parts for translate, content in text if translate]
    beam = max(order.beam or s.model.translator.decode.beam, order.nbest)
    found: list[list[Scored]] = []
    if lines:
        future = s.batcher.submit(lines, beam, order.nbest)
        try:
            found = await asyncio.wait_for(asyncio.wrap_future(future), s.limits.timeout)
        except asyncio.TimeoutError:
            raise Refused(
                504, f"no translation within --timeout {s.limits.timeout:g} s: send less text or retry"
            ) from None
    out, start = [], 0
    for text in parts:
        n = sum(translate for translate, _ in text)
        out.append(combined(text, found[start : start + n], order.html))
        start += n
    return out


def combined(parts: list[tuple[bool, str]], found: list[list[Scored]], markup: bool) -> list[Scored]:
    """A text's k-th hypothesis made of the k-th of each of its translated parts, for every k
    that each non-blank part has (a blank line has one, empty: it stays blank in each); its
    score the mean of the non-blank parts'."""
    sources = [content for translate, content in parts if translate]
    ranked = [hyps for hyps, source in zip(found, sources) if source.strip()]
    out = []
    for k in range(min((len(hyps) for hyps in ranked), default=1)):
        texts = [hyps[k].text if len(hyps) > k else hyps[0].text for hyps in found]
        scores = [hyps[k].score for hyps in ranked]
        text = join_html(parts, texts) if markup else "\n".join(texts)
        out.append(Scored(text, sum(scores) / len(scores) if scores else 0.0))
    return out


def answer(s: Service, order: Order, found: list[list[Scored]]) -> dict:
    """The response body in the request's form."""
    if not order.libre:
        if not order.scored:
            return {"translations": [hyps[0].text for hyps in found]}
        return {
            "translations": [[h.text for h in hyps] for hyps in found],
            "scores": [[h.score for h in hyps] for hyps in found],
        }
    texts = [hyps[0].text for hyps in found]
    out: dict[str, Any] = {"translatedText": texts if order.listed else texts[0]}
    if order.nbest > 1:
        alternatives = [[h.text for h in hyps[1:]] for hyps in found]
        out["alternatives"] = alternatives if order.listed else alternatives[0]
    if order.detect:
        detected = [DetectedLanguage(language=s.api.source, confidence=confidence(s, text)) for text in order.texts]
        out["detectedLanguage"] = detected if order.listed else detected[0]
    return out


def confidence(s: Service, text: str) -> float:
    """The identifier's confidence that `text` is in the model's source language (`auto` takes it)."""
    return next((d.confidence for d in s.detector.rank(text) if d.language == s.api.source), 0.0)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    s: Service = app.state.service
    s.batcher = Batcher(s.model.translator, s.limits, s.metrics)
    yield
    s.batcher.close()  # in-flight requests have been answered: drain and stop


def create_app(model: LoadedModel, limits: Limits, api_keys: frozenset[str] | None = None) -> FastAPI:
    """The FastAPI app serving `model`, loaded already (`inference.load`)."""
    data = model.config.data
    api = Api(data.src_lang, data.tgt_lang, limits.max_sentences, limits.max_chars)
    app = FastAPI(title="mtapp", version=importlib.metadata.version("mtapp"), lifespan=lifespan)
    app.state.service = Service(
        model,
        api,
        limits,
        Metrics(),
        model.describe() | {"api_key_required": api_keys is not None},
        api_keys,
        Detector([data.src_lang, data.tgt_lang]),
    )
    app.include_router(router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=__doc__)
            bodies = {"/translate": api.openapi_body(api.own, api.libre), "/detect": api.openapi_body(api.detect)}
            for path, (body, components) in bodies.items():
                schema["paths"][path]["post"]["requestBody"] = body
                schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mtapp</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222}
h1{margin:.2rem 0}#pair{color:#555;margin:.2rem 0 1rem}
.panes{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
@media (max-width:48rem){.panes{grid-template-columns:1fr}}
label{font-weight:600;display:block;margin-bottom:.3rem}
textarea,#output{box-sizing:border-box;width:100%;min-height:14rem;font:1rem/1.45 system-ui,sans-serif;padding:.6rem;
border:1px solid #bbb;border-radius:4px}
#output{white-space:pre-wrap;background:#fafafa}
#output .line{cursor:pointer;border-radius:3px}#output .line:hover{background:#e8f0fe}
#alternatives{margin:.6rem 0;color:#333}#alternatives ol{margin:.3rem 0}
button{font-size:1rem;padding:.4rem 1.2rem;margin:.6rem .6rem .6rem 0}#info{color:#666}
#keybox{display:none}
</style></head><body>
<h1>mtapp</h1><p id="pair">loading the model&hellip;</p>
<p id="keybox"><label for="key">API key</label><input id="key" type="password" size="40"></p>
<div class="panes">
<div><label for="source">Source text (paragraphs and line breaks are kept)</label>
<textarea id="source"></textarea></div>
<div><label id="output-label">Translation <span id="hint" style="font-weight:normal;color:#666">(click a line for
its alternatives)</span></label><div id="output" aria-labelledby="output-label" aria-live="polite"></div></div>
</div>
<button id="go">Translate</button><span id="info"></span>
<div id="alternatives"></div>
<script>
const $ = id => document.getElementById(id);
let lines = [];
fetch('/model').then(r => r.json()).then(m => {
  $('pair').textContent = m.source_language + ' \\u2192 ' + m.target_language + ' \\u00b7 ' + m.model_type +
    ' \\u00b7 ' + m.engine + ' engine \\u00b7 beam ' + m.decode.beam;
  if (m.api_key_required) $('keybox').style.display = 'block';
});
async function post(body) {
  const key = $('key').value;
  if (key) body.api_key = key;
  const r = await fetch('/translate', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                       body: JSON.stringify(body)});
  return [r, await r.json()];
}
$('go').addEventListener('click', async () => {
  const source = $('source').value;
  $('info').textContent = 'translating\\u2026';
  $('alternatives').textContent = '';
  const started = performance.now();
  const [r, body] = await post({text: source});
  const ms = Math.round(performance.now() - started);
  if (!r.ok) { $('output').textContent = ''; $('info').textContent = 'error ' + r.status + ': ' + body.error; return; }
  lines = source.split(/\\r?\\n/);
  const out = $('output');
  out.textContent = '';
  body.translations[0].split('\\n').forEach((text, i) => {
    const span = document.createElement('span');
    span.className = 'line'; span.textContent = text; span.dataset.line = i;
    span.addEventListener('click', () => alternatives(i));
    out.appendChild(span); out.appendChild(document.createTextNode('\\n'));
  });
  $('info').textContent = 'translated in ' + ms + ' ms';
});
async function alternatives(i) {
  if (!lines[i] || !lines[i].trim()) return;
  const box = $('alternatives');
  box.textContent = 'finding alternatives\\u2026';
  const [r, body] = await post({text: [lines[i]], nbest: 3});
  if (!r.ok) { box.textContent = 'error ' + r.status + ': ' + body.error; return; }
  box.textContent = 'Alternatives for line ' + (i + 1) + ':';
  const list = document.createElement('ol');
  body.translations[0].forEach((text, k) => {
    const item = document.createElement('li');
    item.textContent = text + '  (score ' + body.scores[0][k].toFixed(3) + ')';
    list.appendChild(item);
  });
  box.appendChild(list);
}
</script></body></html>
"""


def read_api_keys(path: Path) -> frozenset[str]:
    """The keys of an --api-keys file: one a line, blank lines and # comments skipped."""
    if not path.is_file():
        raise ConfigError(f"--api-keys {path}: {not_a_file(path)}")
    keys = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    keys = frozenset(key for key in keys if key and not key.startswith("#"))
    if not keys:
        raise ConfigError(f"--api-keys {path} holds no key: write one key a line")
    return keys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.serve", description=__doc__.split("\n\n")[0])
    inference.add_model_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    defaults = Limits()
    p.add_argument("--batch-window-ms", type=float, default=defaults.batch_window_ms)
    p.add_argument("--queue-limit", type=int, default=defaults.queue_limit, help="sentences waiting at most")
    p.add_argument("--max-batch-requests", type=int, default=defaults.max_batch_requests, help="0 = no limit")
    p.add_argument("--max-sentences", type=int, default=defaults.max_sentences, help="per request")
    p.add_argument("--max-chars", type=int, default=defaults.max_chars, help="per text")
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    p.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds a request may wait")
    p.add_argument("--api-keys", type=Path, help="a file of API keys, one a line: requests without one get 403")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("batch_window_ms", "queue_limit", "max_sentences", "max_chars", "max_body_bytes", "timeout"):
        if getattr(args, name) < 0 or (name != "batch_window_ms" and getattr(args, name) == 0):
            p.error(f"--{name.replace('_', '-')} must be {'at least 0' if name == 'batch_window_ms' else 'positive'}")
    try:  # the keys and the model (loaded once), before the port is taken
        keys = read_api_keys(args.api_keys) if args.api_keys else None
        model = in_own_thread(inference.load, args)  # the batching worker's OpenMP team stays the only one
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
    uvicorn.run(
        create_app(model, limits, keys), host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=30
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
