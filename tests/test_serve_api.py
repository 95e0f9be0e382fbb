"""The server's API as other programs meet it: the LibreTranslate client library (`libretranslatepy`)
against a real `python -m mtapp.serve` on loopback, the LibreTranslate request forms (JSON,
form-encoded, query string; HTML; alternatives; API keys; a full queue), and a schema-driven fuzzer
(schemathesis, every check) against the server's own OpenAPI schema."""

import json
import subprocess
import sys
import urllib.error

import httpx
import pytest

from mtapp.bench.serve import Server
from mtapp.translator import Translator


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    _, run = trained
    folder = tmp_path_factory.mktemp("serve_api")
    (folder / "keys.txt").write_text("# the test's keys\nsecret-1\n\nsecret-2\n")
    server = Server(run, folder / "server.log", ["--api-keys", str(folder / "keys.txt")])
    yield server
    assert server.stop(), (folder / "server.log").read_text()


@pytest.fixture(scope="module")
def offline(trained):
    _, run = trained
    return Translator.from_checkpoint(run / "checkpoint_best.pt", device="cpu", amp="off").with_sentences()


def sources(trained, n):
    tmp, _ = trained
    return (tmp / "corpus" / "test.xx").read_text(encoding="utf-8").splitlines()[:n]


def test_the_libretranslate_client_library_translates_lists_languages_detects_and_sees_errors(served, trained, offline):
    from libretranslatepy import LibreTranslateAPI

    lines = sources(trained, 3)
    client = LibreTranslateAPI(served.url, api_key="secret-2")
    assert client.translate(lines[0], "xx", "yy") == offline.translate(lines[:1])[0]
    assert client.translate(lines[1], "auto", "yy") == offline.translate(lines[1:2])[0]
    assert client.languages() == [
        {"code": "xx", "name": "xx", "targets": ["yy"]},
        {"code": "yy", "name": "yy", "targets": []},
    ]
    assert client.detect(lines[0]) == []  # the test languages are none the identifier knows
    with pytest.raises(urllib.error.HTTPError) as refused:
        client.translate(lines[0], "fr", "yy")
    assert refused.value.code == 400 and "'xx' or 'auto'" in json.loads(refused.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as no_key:
        LibreTranslateAPI(served.url).translate(lines[0], "xx", "yy")
    assert no_key.value.code == 403 and "API key" in json.loads(no_key.value.read())["error"]


def test_libretranslate_requests_in_every_form_get_libretranslate_answers(served, trained, offline):
    lines = sources(trained, 3)
    key = {"api_key": "secret-1"}
    expected = offline.translate(lines)
    as_json = httpx.post(served.url + "/translate", json={"q": lines, "source": "xx", "target": "yy"} | key)
    assert as_json.json() == {"translatedText": expected}
    form = httpx.post(served.url + "/translate", data={"q": lines[0], "source": "xx", "target": "yy"} | key)
    assert form.json() == {"translatedText": expected[0]}
    query = httpx.post(served.url + "/translate", params={"q": lines[1], "source": "auto", "target": "yy"} | key)
    assert query.json()["translatedText"] == expected[1] and query.json()["detectedLanguage"]["language"] == "xx"
    script = f'<script>x = "{lines[2]}";</script>'
    html = f'<p class="a">{lines[0]}</p>\n<ul><li>{lines[1]} &amp;</li><li> </li></ul>{script}'
    asked = {"q": html, "source": "xx", "target": "yy", "format": "html"} | key
    marked = httpx.post(served.url + "/translate", json=asked)
    and_ = offline.translate([lines[1] + " &"])[0].replace("&", "&amp;")
    assert marked.json()["translatedText"] == (
        f'<p class="a">{expected[0]}</p>\n<ul><li>{and_}</li><li> </li></ul>{script}'
    )
    alternatives = httpx.post(
        served.url + "/translate", json={"q": lines[0], "source": "xx", "target": "yy", "alternatives": 2} | key
    ).json()
    nbest = offline.translate_nbest(lines[:1], max(offline.decode.beam, 3), 3)[0]
    assert alternatives == {"translatedText": nbest[0].text, "alternatives": [h.text for h in nbest[1:]]}
    own = httpx.post(served.url + "/translate", json={"text": lines[:1]} | key)
    assert own.json() == {"translations": expected[:1]}
    assert httpx.post(served.url + "/translate", json={"text": lines[:1]}).status_code == 403  # both forms need a key


def test_a_request_larger_than_the_queue_is_413_in_either_form(trained, tmp_path):
    _, run = trained
    server = Server(run, tmp_path / "server.log", ["--queue-limit", "2"])
    try:
        libre = server.post({"q": ["w01", "w02\nw03"], "source": "xx", "target": "yy"})  # 3 lines
        own = server.post({"text": ["w01", "w02", "w03"]})
        assert (libre.status_code, own.status_code) == (413, 413)
        assert "--queue-limit 2" in libre.json()["error"] and "3 lines" in own.json()["error"]
        assert server.post({"text": "w01\nw02"}).status_code == 200  # 2 lines fit
    finally:
        assert server.stop()


def test_language_identification_ranks_the_servers_languages():
    from mtapp.api import Detector

    detector = Detector(["de", "en", "de"])
    german, english = detector.rank("Ein Hund rennt über eine Wiese."), detector.rank("A dog runs across a meadow.")
    assert [d.language for d in german] == ["de", "en"] and [d.language for d in english] == ["en", "de"]
    assert german[0].confidence > 90 and sum(d.confidence for d in english) == pytest.approx(100, abs=0.2)
    only = Detector(["xx", "en"]).rank("Ein Hund.")  # one language it knows: nothing to choose between
    assert [(d.language, d.confidence) for d in only] == [("en", 100.0)]


def test_the_openapi_schema_holds_against_a_schema_driven_fuzzer(trained, tmp_path):
    """schemathesis with every check: each schema-valid request served, each invalid one refused
    with a documented status and body; then the server still translates."""
    _, run = trained
    server = Server(run, tmp_path / "server.log", ["--max-sentences", "8", "--max-chars", "200"])
    try:
        schema = httpx.get(server.url + "/openapi.json").json()
        body = schema["paths"]["/translate"]["post"]["requestBody"]["content"]
        assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
        assert set(schema["paths"]["/translate"]["post"]["responses"]) >= {"200", "400", "403", "413", "422", "429"}
        assert "text/plain" in schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        fuzz = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json", "--checks", "all"]
            + ["--max-examples", "25", "--seed", "1", "--request-timeout", "60", "--no-color"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        summary = [line for line in fuzz.stdout.splitlines() if "passed" in line or "failed" in line]
        print("\n".join(summary[-3:]))
        assert fuzz.returncode == 0, fuzz.stdout[-6000:]
        assert server.post({"text": ["w01 w02"]}).status_code == 200
    finally:
        assert server.stop()
