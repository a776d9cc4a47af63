"""The access log on every route that serves a call's words, the Origin check on
cookie-signed state-changing requests, and the softphone's tenant rule on QA uploads.

Before: ``POST /api/qa/calls/{id}/review`` (the agent's words in ``rows[].actual``), ``GET
/api/calls`` (``last_text``) and ``WS /ws/supervisor`` (every final turn) wrote no access-log row;
a page on another origin of the same site could upload a recording or start a review with a
supervisor's cookie; and an upload could file a call under another tenant's agent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import voice.batch.pipeline as pipeline
from tests.server.harness import Env, ScriptedCall, make_services, new_app, scripted
from voice.audio import AudioInfo
from voice.store.access_log import AccessLog
from voice.store.agents import AgentStore
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit
OURS = "http://testserver"  # the TestClient's own origin (Host: testserver)
SIBLING = "http://testserver:8081"  # same site, another origin: SameSite=Strict still sends the cookie


def _log(env: Env, call_id: str) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in AccessLog(env.services.store).entries(call_id=call_id)]


@pytest.fixture
def no_asr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads are transcribed to nothing (no Whisper): these tests are about who may upload."""
    monkeypatch.setattr(pipeline, "transcribe_file", lambda path, options, call_id: CallTranscript(
        call_id=call_id, audio=AudioInfo(str(path), "wav", 16000, 1, 3.0), speakers=[], segments=[], entities=[]))


# F1: the access log -------------------------------------------------------------------------------


def test_a_computed_review_is_logged_like_the_qa_page(env: Env) -> None:
    scripted(env, "CA-1", "alice", end=True)
    review = env.client.post("/api/qa/calls/CA-1/review", headers=env.headers("sue"))
    assert review.status_code == 200 and review.json()["rows"][0]["actual"]  # the agent's words
    assert _log(env, "CA-1") == [("sue", "view_transcript")]
    assert env.client.get("/api/qa/calls/CA-1", headers=env.headers("sue")).status_code == 200
    assert _log(env, "CA-1") == [("sue", "view_transcript")]  # the page and its review: one entry
    assert env.client.post("/api/qa/calls/CA-1/review", headers=env.headers("bob")).status_code == 403
    assert _log(env, "CA-1") == [("sue", "view_transcript")]  # refused: served nothing, logged nothing


def test_the_call_list_logs_each_call_it_shows_words_of(env: Env) -> None:
    scripted(env, "CA-talk", "bob")  # live, two final turns
    env.run(ScriptedCall(env.services, "CA-quiet", agent_id="bob").start)  # nothing said yet
    listed = env.client.get("/api/calls", headers=env.headers("sue")).json()["calls"]
    assert {c["call_id"]: bool(c["last_text"]) for c in listed} == {"CA-talk": True, "CA-quiet": False}
    assert _log(env, "CA-talk") == [("sue", "stream_call")] and _log(env, "CA-quiet") == []
    env.client.get("/api/calls", headers=env.headers("sue"))
    assert _log(env, "CA-talk") == [("sue", "stream_call")]  # a page's next snapshot is folded
    assert env.client.get("/api/calls", headers=env.headers("gus")).json()["calls"] == []  # globex's
    assert env.client.get("/api/calls", headers=env.headers("alice")).json()["calls"] == []
    assert _log(env, "CA-talk") == [("sue", "stream_call")]  # not shown to them: not logged


def test_the_supervisor_feed_logs_each_call_once_before_its_words(env: Env) -> None:
    with env.client.websocket_connect("/ws/supervisor", headers=env.headers("sue")) as ws:
        call = scripted(env, "CA-3", "alice")
        started = json.loads(ws.receive_text())
        first = json.loads(ws.receive_text())
        assert started["type"] == "call.started" and first["text"] == "Hi, my order never arrived."
        assert _log(env, "CA-3") == [("sue", "stream_call")]  # written before the words were sent
        env.run(call.nlu, "t1", "customer", "missing_order", [], 2.0)
        env.run(call.suggest, "t2", [("Could I have your order number?", "ask_order")], 4.0)
        rest = [json.loads(ws.receive_text())["type"] for _ in range(3)]
    assert rest == ["transcript.final", "nlu", "suggestion"]
    assert _log(env, "CA-3") == [("sue", "stream_call")]
    with env.client.websocket_connect("/ws/supervisor", headers=env.headers("gus")) as ws:
        other = ScriptedCall(env.services, "CA-4", agent_id="bob", tenant="globex")
        env.run(other.start)
        env.run(other.final, "t1", "inbound", "customer", "Hello?", 0.0, 1.0)
        assert [json.loads(ws.receive_text())["type"] for _ in range(2)] == ["call.started", "transcript.final"]
    assert _log(env, "CA-4") == [("gus", "stream_call")] and _log(env, "CA-3") == [("sue", "stream_call")]


# F2: Origin on cookie-signed requests -----------------------------------------------------------


def _sign_in(env: Env, who: str) -> TestClient:
    c: TestClient = env.client
    assert c.post("/api/session", json={"token": env.tokens[who]}).status_code == 200
    return c


def test_cookie_signed_posts_must_come_from_our_own_pages(env: Env, no_asr: None) -> None:
    scripted(env, "CA-x", "alice", end=True)
    c = _sign_in(env, "sue")
    review = "/api/qa/calls/CA-x/review"
    upload = "/api/qa/uploads?filename=x.raw&raw_rate=8000&tenant=default&agent_id=alice"
    for headers in ({"Origin": SIBLING}, {}, {"Origin": "null"}, {"Referer": f"{SIBLING}/qa"}):
        assert c.post(review, headers=headers).status_code == 403, headers
        refused = c.post(upload, content=b"\0" * 320, headers={**headers, "Content-Type": "text/plain"})
        assert refused.status_code == 403 and "Origin" in refused.json()["detail"], headers
    assert c.get("/api/qa/uploads", headers=env.headers("sue")).json()["jobs"] == []  # nothing stored
    assert c.post(review, headers={"Origin": OURS}).status_code == 200
    assert c.post(review, headers={"Referer": f"{OURS}/qa/calls/CA-x"}).status_code == 200
    assert c.get("/api/me", headers={"Origin": SIBLING}).status_code == 200  # reading changes nothing
    # A bearer token is never sent by a browser on its own: scripts need no Origin.
    assert c.post(review, headers={**env.headers("sue"), "Origin": SIBLING}).status_code == 200
    c.cookies.clear()
    assert c.post(review).status_code == 401  # no cookie at all: still "sign in", not "wrong origin"


def test_a_cookie_signed_upload_must_say_it_is_a_file(env: Env, no_asr: None) -> None:
    c = _sign_in(env, "sue")
    upload = "/api/qa/uploads?filename=call.wav"
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Origin": OURS, **({"Content-Type": kind} if kind else {})}
        assert c.post(upload, content=b"RIFF....", headers=headers).status_code == 415, kind
    for kind in ("audio/wav", "audio/x-wav", "video/mp4", "application/octet-stream"):  # what the page sends
        assert c.post(upload, content=b"RIFF....", headers={"Origin": OURS, "Content-Type": kind}).status_code == 202
    # Scripts with a token keep sending what they like (curl --data-binary sends a form's type).
    scripted_upload = c.post(upload, content=b"RIFF....", headers={
        **env.headers("sue"), "Content-Type": "application/x-www-form-urlencoded"})
    assert scripted_upload.status_code == 202
    assert c.post(upload, content=b"RIFF....", headers=env.headers("sue")).status_code == 202


# F3: the softphone's tenant rule on uploads --------------------------------------------------------


@pytest.fixture
def tenants(tmp_path: Path, no_asr: None) -> Iterator[Env]:
    """acme (alice, sam), globex (bob, gus), tina of no tenant, root over all (test_softphone_tenant)."""
    services = make_services(tmp_path)
    agents = AgentStore(services.store)
    people = (("alice", "agent", "acme"), ("sam", "supervisor", "acme"), ("bob", "agent", "globex"),
              ("gus", "supervisor", "globex"), ("tina", "agent", None), ("root", "supervisor", None))
    tokens = {name: agents.add(name, role=role, tenant=tenant)[1] for name, role, tenant in people}
    with TestClient(new_app(services)) as client:
        yield Env(client, services, tokens)


def _upload(env: Env, who: str, query: str) -> int:
    answer = env.client.post(f"/api/qa/uploads?filename=call.wav&{query}", content=b"RIFF....",
                             headers=env.headers(who))
    return answer.status_code


def test_an_upload_names_an_agent_of_the_calls_tenant_only(tenants: Env) -> None:
    env = tenants
    assert _upload(env, "gus", "agent_id=tina") == 403  # no tenant: sees every tenant's calls
    assert _upload(env, "gus", "agent_id=alice") == 403
    assert _upload(env, "gus", "agent_id=alice&tenant=acme") == 403  # a tenant's supervisor: their tenant
    assert _upload(env, "root", "agent_id=bob&tenant=acme") == 403
    assert env.client.get("/api/qa/uploads", headers=env.headers("root")).json()["jobs"] == []  # nothing stored
    assert _upload(env, "gus", "agent_id=bob") == 202
    assert _upload(env, "gus", "agent_id=carol") == 202  # an id without an account: as the softphone
    assert _upload(env, "gus", "") == 202
    assert _upload(env, "root", "agent_id=bob&tenant=globex") == 202
    assert _upload(env, "root", "agent_id=tina&tenant=acme") == 202
    # The QA page sends no tenant: an every-tenant supervisor's upload goes under the agent's own.
    assert _upload(env, "root", "agent_id=alice") == 202
    jobs = env.client.get("/api/qa/uploads", headers=env.headers("root")).json()["jobs"]
    assert sorted(f"{j['tenant']}/{j['agent_id']}" for j in jobs) == [
        "acme/alice", "acme/tina", "globex/None", "globex/bob", "globex/bob", "globex/carol"]
