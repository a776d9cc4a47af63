"""Bad input gets a 4xx that encodes (never a 500), and the OpenAPI document describes how to
sign in, what each route refuses, and what the audio and export routes send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import Env, scripted
from tests.voice.console_app import console_env

pytestmark = pytest.mark.unit


@pytest.fixture
def env(tmp_path: Path) -> Any:
    with console_env(tmp_path) as env:
        yield env


def test_a_far_future_until_lists_everything_instead_of_failing(env: Env) -> None:
    scripted(env, "CA-1", "alice", end=True)
    for until in ("9999-12-31", "9999-12-30"):
        answer = env.client.get(f"/api/qa/calls?until={until}", headers=env.headers("alice"))
        assert answer.status_code == 200 and [c["call_id"] for c in answer.json()["calls"]] == ["CA-1"]
    assert env.client.get("/api/qa/calls?until=10000-01-01", headers=env.headers("alice")).status_code == 422


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422_that_says_why(env: Env, literal: str) -> None:
    call = scripted(env, "CA-1", "alice")
    ids = env.run(call.suggest, "t2", [("Let me check.", "check")], 4.0)
    env.run(call.end, 5.0)
    requests = [
        ("PUT", "/api/calls/CA-1/outcome", "sue", f'{{"success": true, "value": {literal}}}'),
        ("PUT", "/api/calls/CA-1/outcome", "sue", f'{{"success": {literal}}}'),  # refused by type
        ("POST", "/api/calls/CA-1/feedback", "alice",
         f'{{"items": [{{"suggestion_id": "{ids[0]}", "kind": "shown", "elapsed_ms": {literal}}}]}}'),
    ]
    for method, url, who, body in requests:
        answer = env.client.request(method, url, content=body,
                                    headers={**env.headers(who), "content-type": "application/json"})
        assert answer.status_code == 422, (url, body, answer.text)
        detail = json.loads(answer.text)["detail"]  # strict JSON: no NaN/Infinity tokens
        assert detail and all(isinstance(error["msg"], str) for error in detail)
    assert env.client.get("/api/qa/calls/CA-1", headers=env.headers("alice")).json()["call"]["outcome"] is None


def test_a_lone_surrogate_is_a_422_that_encodes(env: Env) -> None:
    """A JSON string may escape a lone UTF-16 surrogate; the 422 echoing it must still encode."""
    call = scripted(env, "CA-1", "alice")
    ids = env.run(call.suggest, "t2", [("Let me check.", "check")], 4.0)
    requests = [
        ("PUT", "/api/calls/CA-1/outcome", "sue", '{"success": true, "label": "\\ud800"}'),
        ("POST", "/api/calls/CA-1/feedback", "alice",
         f'{{"items": [{{"suggestion_id": "{ids[0]}", "kind": "edited", "text": "hi \\ud83d"}}]}}'),
    ]
    for method, url, who, body in requests:
        answer = env.client.request(method, url, content=body,
                                    headers={**env.headers(who), "content-type": "application/json"})
        assert answer.status_code == 422, (url, body, answer.text)
        assert "ud8" in answer.text


def test_an_offset_past_the_databases_integers_is_a_422(env: Env) -> None:
    scripted(env, "CA-1", "alice", end=True)
    for offset, status in ((0, 200), (1_000_000_000, 200), (2**63, 422)):
        answer = env.client.get(f"/api/qa/calls?offset={offset}", headers=env.headers("alice"))
        assert answer.status_code == status, (offset, answer.text)


def _spec(env: Env) -> dict[str, Any]:
    answer = env.client.get("/openapi.json")
    assert answer.status_code == 200
    spec: dict[str, Any] = answer.json()
    return spec


def test_openapi_declares_how_to_sign_in(env: Env) -> None:
    spec = _spec(env)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"] == "nextline_token"
    for path, method in (("/api/me", "get"), ("/api/qa/calls", "get"), ("/api/calls", "get"),
                         ("/api/calls/{call_id}/outcome", "put"), ("/api/qa/uploads", "post")):
        assert spec["paths"][path][method]["security"] == [{"bearer": []}, {"session": []}], path
    assert "security" not in spec["paths"]["/api/session"]["post"]


def test_openapi_documents_refusals(env: Env) -> None:
    paths = _spec(env)["paths"]
    expected = {
        ("/api/me", "get"): {"401"},
        ("/api/qa/calls", "get"): {"401"},
        ("/api/qa/calls/{call_id}", "get"): {"401", "403", "404"},
        ("/api/qa/calls/{call_id}/review", "post"): {"401", "403", "404", "409"},
        ("/api/qa/calls/{call_id}/review.{fmt}", "get"): {"401", "403", "404", "409"},
        ("/api/calls/{call_id}/audio", "get"): {"401", "403", "404"},
        ("/api/calls/{call_id}/outcome", "put"): {"401", "403", "404"},
        ("/api/calls/{call_id}/feedback", "post"): {"401", "403", "404", "503"},
        ("/api/calls/{call_id}", "delete"): {"401", "403", "404", "409"},
        ("/api/qa/uploads", "post"): {"401", "403", "413", "415"},
        ("/api/qa/uploads/{job_id}", "get"): {"401", "403", "404"},
        ("/api/calls", "get"): {"401"},
        ("/api/calls/{call_id}", "get"): {"401", "403", "404"},
        ("/api/calls/{call_id}/events", "get"): {"401", "403", "404"},
    }
    for (path, method), codes in expected.items():
        responses = paths[path][method]["responses"]
        assert codes <= set(responses), (path, method, sorted(responses))
        assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}


def test_openapi_media_types_and_formats(env: Env) -> None:
    paths = _spec(env)["paths"]
    audio = paths["/api/calls/{call_id}/audio"]["get"]["responses"]["200"]["content"]
    assert list(audio) == ["audio/*"]
    events = paths["/api/calls/{call_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    export = paths["/api/qa/calls/{call_id}/review.{fmt}"]["get"]
    fmt = next(p for p in export["parameters"] if p["name"] == "fmt")
    assert fmt["schema"]["enum"] == ["csv", "json"]
    assert {"text/csv", "application/json"} <= set(export["responses"]["200"]["content"])
    upload = paths["/api/qa/uploads"]["post"]["requestBody"]["content"]
    assert upload["audio/*"]["schema"] == {"type": "string", "format": "binary"}


def test_an_unknown_export_format_is_refused(env: Env) -> None:
    scripted(env, "CA-1", "alice", end=True)
    answer = env.client.get("/api/qa/calls/CA-1/review.xml", headers=env.headers("alice"))
    assert answer.status_code == 422 and "csv" in answer.text


def test_no_docs_pages_load_cdn_scripts_into_the_consoles_origin(env: Env) -> None:
    # FastAPI's /docs and /redoc pull their scripts from a CDN; the consoles keep the sign-in
    # token in this origin's localStorage. The description itself stays public.
    for page in ("/docs", "/redoc"):
        assert env.client.get(page).status_code == 404, page
    assert env.client.get("/openapi.json").status_code == 200
