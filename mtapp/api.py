"""The translation server's HTTP API (`python -m mtapp.serve`): its request and response models,
reading a request in either form, and what the LibreTranslate form needs (languages, language
identification, HTML).

Two request forms share `POST /translate`:

- mtapp's own: JSON `{"text": str | [str], "beam": int?, "nbest": int?}` ->
  `{"translations": [...]}` (with nbest: also "scores", and each translation a list, best first);
- LibreTranslate's (https://github.com/LibreTranslate/LibreTranslate, what self-hosted MT clients
  speak): `q`, `source` (the model's source language, or `auto`), `target`, `format` (`text` or
  `html`), `alternatives`, `api_key`, as JSON, form-encoded, or in the query string ->
  `{"translatedText": ...}`.

A JSON object is LibreTranslate's when it has one of its fields (`LIBRE_FIELDS`), mtapp's
otherwise; a form-encoded body or a query string is LibreTranslate's. Each model forbids fields of
the other, so a body is one form or the other, as the OpenAPI schema says (`oneOf`). The models
are built for one server (`Api`): its languages and limits are in the schema, so a request the
schema allows is one the server serves.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

MAX_BEAM = 32  # the largest beam (and n-best list) a request may ask for
LIBRE_FIELDS = ("q", "source", "target", "format", "alternatives")
LANGUAGE_NAMES = {"cs": "Czech", "de": "German", "en": "English", "fr": "French"}  # Multi30k's; others by code


class ErrorResponse(BaseModel):
    """Every refusal, in either form: what was wrong and what to do."""

    error: str


class TranslateResponse(BaseModel):
    """mtapp's answer: one translation per text (with nbest: a list per text, best first, and the
    scores: log-probability / (subwords + 1) ** length_penalty)."""

    translations: list[str] | list[list[str]]
    scores: list[list[float]] | None = None


class DetectedLanguage(BaseModel):
    """A language and the identifier's confidence in it, in percent."""

    language: str
    confidence: float


class LibreTranslateResponse(BaseModel):
    """LibreTranslate's answer: `translatedText` a string for a string `q`, a list for a list."""

    translatedText: str | list[str]  # noqa: N815 (LibreTranslate's field names)
    alternatives: list[str] | list[list[str]] | None = None
    detectedLanguage: DetectedLanguage | list[DetectedLanguage] | None = None  # noqa: N815


class Language(BaseModel):
    code: str
    name: str
    targets: list[str]


class Refused(Exception):
    """A request the server does not take: HTTP `status`, and what to change."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Order:
    """A translation request in either form, checked: its texts, search and answer settings."""

    texts: list[str]
    listed: bool  # the texts came as a list (else one string)
    beam: int | None  # None: the model's decode.beam (either way raised to nbest if smaller)
    nbest: int
    libre: bool  # answer in LibreTranslate's form
    scored: bool = False  # mtapp form: nbest was given, so the answer has n-best lists and scores
    html: bool = False
    detect: bool = False  # source `auto`: say which language was taken
    api_key: str | None = None


def _whole(value: Any) -> Any:
    """A number with no fraction as the integer it is (JSON Schema's integer admits 17.0)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(low: int, high: int) -> Any:
    """An integer in [low, high], given as one or as a number with no fraction."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_whole)]


class Api:
    """The request models of one server: its languages and limits are part of the schema."""

    def __init__(self, source: str, target: str, max_texts: int, max_chars: int):
        self.source, self.target, self.max_texts, self.max_chars = source, target, max_texts, max_chars
        text = Annotated[str, Field(max_length=max_chars)]
        texts = text | Annotated[list[text], Field(min_length=1, max_length=max_texts)]  # a form cannot send []
        strict = ConfigDict(extra="forbid", strict=True)  # the schema's types exactly: "5" is not a number
        self.own = create_model(
            "MtappTranslateRequest",
            __config__=strict,
            __doc__="mtapp's request: texts (line breaks kept), beam (1 = greedy; raised to nbest if smaller), "
            "nbest (asks for n-best lists and scores).",
            text=(texts, ...),
            beam=(whole(1, MAX_BEAM) | None, None),
            nbest=(whole(1, MAX_BEAM) | None, None),
            api_key=(str | None, None),
        )
        self.libre = create_model(
            "LibreTranslateRequest",
            __config__=strict,
            __doc__=f"LibreTranslate's request; this server translates {source} -> {target} (source `auto`: {source}).",
            q=(texts, ...),
            source=(Literal[source, "auto"], ...),  # type: ignore[valid-type]
            target=(Literal[target], ...),  # type: ignore[valid-type]
            format=(Literal["text", "html"], "text"),
            alternatives=(whole(0, MAX_BEAM - 1), 0),
            api_key=(str | None, None),
        )
        self.detect = create_model("DetectRequest", __config__=strict, q=(texts, ...), api_key=(str | None, None))

    def openapi_body(self, *models: type[BaseModel], form: bool = True) -> tuple[dict, dict]:
        """(the OpenAPI requestBody of an operation taking `models` as JSON and the last one
        form-encoded, the models' schemas by name for `components`)."""
        schemas = [m.model_json_schema(ref_template="#/components/schemas/{model}") for m in models]
        json_schema = {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]}
        content: dict[str, Any] = {"application/json": {"schema": json_schema if len(models) > 1 else schemas[0]}}
        if form:
            content["application/x-www-form-urlencoded"] = {
                "schema": {"$ref": f"#/components/schemas/{models[-1].__name__}"}
            }
        return {"required": True, "content": content}, dict(zip([m.__name__ for m in models], schemas))

    def languages(self) -> list[Language]:
        """LibreTranslate's /languages: the source with its target, and the target."""
        return [
            Language(code=self.source, name=language_name(self.source), targets=[self.target]),
            Language(code=self.target, name=language_name(self.target), targets=[]),
        ]

    def translate_request(self, body: bytes, content_type: str, query: str) -> Order:
        """The request in whichever form it came (module docstring), checked against the models."""
        if content_type.lower().startswith("application/x-www-form-urlencoded") or (not body and query):
            return self._libre(self._check(self.libre, form_fields(body.decode("utf-8", "replace") or query), True))
        data = json_body(body, libre=False)
        if isinstance(data, dict) and any(key in data for key in LIBRE_FIELDS):
            return self._libre(self._check(self.libre, data, True))
        own = self._check(self.own, data, False)
        texts = [own.text] if isinstance(own.text, str) else list(own.text)
        listed = not isinstance(own.text, str)
        return Order(texts, listed, own.beam, own.nbest or 1, False, own.nbest is not None, api_key=own.api_key)

    def detect_request(self, body: bytes, content_type: str, query: str) -> tuple[list[str], bool, str | None]:
        """(texts, whether they came as a list, API key) of a /detect request."""
        if content_type.lower().startswith("application/x-www-form-urlencoded") or (not body and query):
            data = form_fields(body.decode("utf-8", "replace") or query)
        else:
            data = json_body(body, libre=True)
        checked = self._check(self.detect, data, True)
        return (
            ([checked.q] if isinstance(checked.q, str) else list(checked.q)),
            not isinstance(checked.q, str),
            checked.api_key,
        )

    def _libre(self, r) -> Order:
        texts = [r.q] if isinstance(r.q, str) else list(r.q)
        listed, html_ = not isinstance(r.q, str), r.format == "html"
        return Order(texts, listed, None, r.alternatives + 1, True, False, html_, r.source == "auto", r.api_key)

    def _check(self, model: type[BaseModel], data: Any, libre: bool):
        """`data` as `model`, or the refusal: LibreTranslate's 400 or mtapp's 422 (too many
        texts or too long a text: the server's limit named)."""
        try:
            return model.model_validate(data)
        except ValidationError as e:
            problems = _without_other_branches(e.errors())
            too_long = [p for p in problems if p["type"] in ("too_long", "string_too_long")]
            status = 400 if libre else 422
            if too_long:
                raise Refused(status, "; ".join(self._too_long(p) for p in too_long)) from None
            raise Refused(status, "invalid request: " + "; ".join(map(_problem, problems))) from None

    def _too_long(self, problem: dict) -> str:
        where = _where(problem)
        if isinstance(problem["input"], list):
            return f"{where} has {len(problem['input'])} texts, more than --max-sentences {self.max_texts}"
        return f"{where} has {len(problem['input'])} characters, more than --max-chars {self.max_chars}"


def _is_tag(part) -> bool:
    """A union member's tag in an error's location ("str", "constrained-str", "list[...]")."""
    return isinstance(part, str) and ("[" in part or part.endswith("str") or part == "int")


def _without_other_branches(errors: list[dict]) -> list[dict]:
    """A string-or-list field's errors without the branch its value is not: a list of texts
    is not told that it is no string."""
    mismatch = ("string_type", "list_type")
    real = [e for e in errors if not (e["type"] in mismatch and e["loc"] and _is_tag(e["loc"][-1]))]
    fields = {e["loc"][0] for e in real if e["loc"]}
    return real + [e for e in errors if e not in real and e["loc"] and e["loc"][0] not in fields]


def _where(error: dict) -> str:
    """The field an error is about, as a request names it: "text", "q[2]"."""
    parts = [p for p in error["loc"] if not _is_tag(p)]
    return "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + p for i, p in enumerate(parts)) or "body"


def _problem(error: dict) -> str:
    return f'"{_where(error)}": {error["msg"]}'


def json_body(body: bytes, libre: bool) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        example = '{"q": "text", "source": "auto", "target": "en"}' if libre else '{"text": ["a sentence", ...]}'
        raise Refused(400, f"the body is not valid JSON ({e}); send {example}") from None


def form_fields(encoded: str) -> dict[str, Any]:
    """A form-encoded body or query string as the fields of a request: a repeated `q` is a list
    (a single one a string); `alternatives` a number when it reads as one."""
    fields: dict[str, Any] = {}
    for key, values in parse_qs(encoded, keep_blank_values=True).items():
        fields[key] = values if key == "q" and len(values) > 1 else values[-1]
    if isinstance(fields.get("alternatives"), str) and re.fullmatch(r"\d+", fields["alternatives"]):
        fields["alternatives"] = int(fields["alternatives"])
    return fields


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


# ---- HTML: the tags kept, the text between them translated ------------------------------------
RAW_TEXT = ("script", "style")  # elements whose text is code, not language


class _Segments(HTMLParser):
    """Markup and text, in order; the text of script and style elements kept as markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[tuple[bool, str]] = []  # (is text to translate, content)
        self.raw = 0

    def handle_starttag(self, tag, attrs):
        self.parts.append((False, self.get_starttag_text() or ""))
        if tag in RAW_TEXT:
            self.raw += 1

    def handle_startendtag(self, tag, attrs):
        self.parts.append((False, self.get_starttag_text() or ""))

    def handle_endtag(self, tag):
        if tag in RAW_TEXT and self.raw:
            self.raw -= 1
        self.parts.append((False, f"</{tag}>"))

    def handle_data(self, data):
        self.parts.append((not self.raw and bool(data.strip()), data))

    def handle_pi(self, data):
        self.parts.append((False, f"<?{data}>"))

    def unknown_decl(self, data):
        self.parts.append((False, f"<![{data}]>"))

    def handle_comment(self, data):
        self.parts.append((False, f"<!--{data}-->"))

    def handle_decl(self, decl):
        self.parts.append((False, f"<!{decl}>"))


def html_segments(document: str) -> list[tuple[bool, str]]:
    """`document` as (translate?, content) parts: texts to translate (entities resolved), and
    markup (tags, comments, white space, script and style text) to keep as it is."""
    parser = _Segments()
    parser.feed(document)
    parser.close()
    return parser.parts


def join_html(parts: list[tuple[bool, str]], translations: list[str]) -> str:
    """The document with its texts replaced by `translations` (escaped), in order; a text's
    leading and trailing white space kept."""
    out, it = [], iter(translations)
    for translatable, content in parts:
        if not translatable:
            out.append(content)
            continue
        lead, trail = content[: len(content) - len(content.lstrip())], content[len(content.rstrip()) :]
        out.append(lead + html.escape(next(it), quote=False) + trail)
    return "".join(out)


# ---- language identification ------------------------------------------------------------------
class Detector:
    """Which of the server's languages a text is in (py3langid: langid.py's model, shipped in
    the package, nothing downloaded), with its probability in percent; languages the identifier
    does not know are left out of the ranking."""

    def __init__(self, languages: list[str]):
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_modelpath(Path(MODEL_DIR) / MODEL_FILE, norm_probs=True)
        known = [code for code in dict.fromkeys(languages) if code in self.identifier.nb_classes]
        self.languages = known
        if len(known) > 1:
            self.identifier.set_languages(known)

    def rank(self, text: str) -> list[DetectedLanguage]:
        """The server's languages, most likely first."""
        if len(self.languages) < 2:  # nothing to choose between: the one language, fully trusted
            return [DetectedLanguage(language=code, confidence=100.0) for code in self.languages]
        ranked = self.identifier.rank(text)
        return [DetectedLanguage(language=code, confidence=round(100 * float(p), 1)) for code, p in ranked]
