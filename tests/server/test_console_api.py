"""The console's HTTP and WebSocket API on the real app and a real SQLite database: tokens,
who may see which call (401/403/404 on API, SSE and WebSocket), sessions, outcomes, QA lists,
reviews and their exports, audio ranges, uploads and the supervisor feed."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import WebSocketDenialResponse

from tests.server.harness import Env, scripted, stored_feedback
from voice.server.console import console_for
from voice.store.agents import AgentError, AgentStore, AuthenticationError, hash_token

pytestmark = pytest.mark.unit


def test_tokens_are_stored_hashed_and_check_out(env: Env) -> None:
    store = env.services.store
    with store.engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT token_hash FROM agents"))]
    assert env.tokens["alice"] not in stored and hash_token(env.tokens["alice"]) in stored
    agents = AgentStore(store)
    assert agents.authenticate(env.tokens["alice"]).name == "alice"
    new = agents.rotate("alice")
    with pytest.raises(AuthenticationError):
        agents.authenticate(env.tokens["alice"])
    assert agents.authenticate(new).role == "agent"
    with pytest.raises(AgentError, match="exists already"):
        agents.add("alice")
    with pytest.raises(AgentError, match="bad agent name"):
        agents.add("two words")


def test_calls_need_a_token_and_agents_see_only_their_own(env: Env) -> None:
    scripted(env, "CA-alice", "alice")
    scripted(env, "CA-bob", "bob")
    c = env.client
    assert c.get("/api/calls").status_code == 401
    assert c.get("/api/calls", headers={"Authorization": "Bearer nl_wrong"}).status_code == 401
    own = c.get("/api/calls", headers=env.headers("alice")).json()["calls"]
    assert [x["call_id"] for x in own] == ["CA-alice"]
    everyone = c.get("/api/calls", headers=env.headers("sue")).json()["calls"]
    assert {x["call_id"] for x in everyone} == {"CA-alice", "CA-bob"}
    assert c.get("/api/calls", headers=env.headers("gus")).json()["calls"] == []  # another tenant's supervisor
    assert c.get("/api/calls/CA-alice", headers=env.headers("alice")).status_code == 200
    assert c.get("/api/calls/CA-bob", headers=env.headers("alice")).status_code == 403
    assert c.get("/api/calls/CA-none", headers=env.headers("alice")).status_code == 404
    assert c.get("/api/calls/CA-bob/events", headers=env.headers("alice")).status_code == 403


def test_websocket_refuses_other_agents_and_other_origins(env: Env) -> None:
    scripted(env, "CA-bob", "bob", end=True)
    c = env.client
    with pytest.raises(WebSocketDenialResponse) as refused:
        with c.websocket_connect("/ws/calls/CA-bob/events", headers=env.headers("alice")):
            pass
    assert refused.value.status_code == 403
    with pytest.raises(WebSocketDenialResponse) as anonymous:
        with c.websocket_connect("/ws/calls/CA-bob/events"):
            pass
    assert anonymous.value.status_code == 401
    with pytest.raises(WebSocketDenialResponse) as foreign:
        with c.websocket_connect("/ws/calls/CA-bob/events",
                                 headers={**env.headers("bob"), "Origin": "http://evil.example"}):
            pass
    assert foreign.value.status_code == 403
    with c.websocket_connect("/ws/calls/CA-bob/events?since=1", headers=env.headers("bob")) as ws:
        events = [json.loads(ws.receive_text()) for _ in range(3)]
    assert [e["type"] for e in events] == ["transcript.final", "transcript.final", "call.ended"]
    assert [e["seq"] for e in events] == [2, 3, 4]


def test_session_cookie_is_httponly_and_signs_in_pages(env: Env) -> None:
    c = env.client
    assert c.post("/api/session", json={"token": "nl_not-a-real-token"}).status_code == 401
    response = c.post("/api/session", json={"token": env.tokens["alice"]})
    assert response.json() == {"name": "alice", "role": "agent", "tenant": None}
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/api/me").json()["name"] == "alice"
    c.delete("/api/session")
    assert c.get("/api/me").status_code == 401


def test_feedback_refuses_suggestions_the_call_never_had(env: Env) -> None:
    call = scripted(env, "CA-alice", "alice")
    ids = env.run(call.suggest, "t2", [("Could I have your order number?", "ask_order")], 4.0)
    c = env.client
    bad = c.post("/api/calls/CA-alice/feedback", headers=env.headers("alice"),
                 json={"items": [{"suggestion_id": "made-up", "kind": "accepted"}]})
    assert bad.status_code == 404
    wrong_verb = c.post("/api/calls/CA-alice/feedback", headers=env.headers("alice"),
                        json={"items": [{"suggestion_id": ids[0], "kind": "loved"}]})
    assert wrong_verb.status_code == 422
    other = c.post("/api/calls/CA-alice/feedback", headers=env.headers("bob"),
                   json={"items": [{"suggestion_id": ids[0], "kind": "accepted"}]})
    assert other.status_code == 403
    ok = c.post("/api/calls/CA-alice/feedback", headers=env.headers("alice"),
                json={"items": [{"suggestion_id": ids[0], "kind": "shown"},
                                {"suggestion_id": ids[0], "kind": "accepted", "elapsed_ms": 1800}]})
    assert ok.status_code == 201 and ok.json() == {"stored": 2, "duplicates": 0}
    stored = stored_feedback(env.services.store, "CA-alice")
    assert [(r["event"], r["agent_id"], r["action"], r["rank"]) for r in stored] == [
        ("shown", "alice", "ask_order", 0), ("accepted", "alice", "ask_order", 0)]
    assert stored[1]["elapsed_ms"] == 1800 and stored[1]["context"][-1]["role"] == "agent"
    record = console_for(c.app).feedback.resolve("CA-alice", AgentStore(env.services.store).authenticate(
        env.tokens["alice"]), "default", [_item(ids[0], "edited", "Order number, please?")])[0]
    assert (record.event, record.action, record.model_version, record.arm) == ("edited", "ask_order", "test-v1", "A")
    assert record.edited_text == "Order number, please?" and record.turn_index == 2
    assert [t["role"] for t in record.context] == ["customer", "agent"]


def _item(suggestion_id: str, kind: str, text: str | None = None) -> Any:
    from voice.server.feedback_api import FeedbackItem

    return FeedbackItem(suggestion_id=suggestion_id, kind=kind, text=text)  # type: ignore[arg-type]


def test_outcomes_are_set_by_supervisors_and_filter_the_qa_list(env: Env) -> None:
    scripted(env, "CA-won", "alice", end=True)
    scripted(env, "CA-lost", "alice", end=True)
    c = env.client
    assert c.put("/api/calls/CA-won/outcome", headers=env.headers("alice"), json={"success": True}).status_code == 403
    put = c.put("/api/calls/CA-won/outcome", headers=env.headers("sue"), json={"success": True, "value": 120.5,
                                                                                 "label": "sale", "source": "crm"})
    assert put.status_code == 200 and put.json()["value"] == 120.5
    c.put("/api/calls/CA-lost/outcome", headers=env.headers("sue"), json={"success": False})
    assert c.put("/api/calls/CA-none/outcome", headers=env.headers("sue"), json={"success": True}).status_code == 404
    assert c.put("/api/calls/CA-won/outcome", headers=env.headers("sue"), json={"value": "lots"}).status_code == 422

    def ids(query: str, who: str = "sue") -> list[str]:
        return [x["call_id"] for x in c.get(f"/api/qa/calls{query}", headers=env.headers(who)).json()["calls"]]

    assert ids("?outcome=success") == ["CA-won"] and ids("?outcome=failure") == ["CA-lost"]
    assert ids("?outcome=unknown") == []
    assert set(ids("?agent_id=alice&kind=live")) == {"CA-won", "CA-lost"}
    assert ids("?until=2000-01-01") == [] and len(ids("?since=2000-01-01")) == 2
    assert ids("", who="bob") == []  # agents see only their own, whatever they ask for
    assert ids("?agent_id=alice", who="bob") == []
    assert c.get("/api/qa/calls?since=yesterday", headers=env.headers("sue")).status_code == 422


def test_review_export_and_audio_ranges(env: Env) -> None:
    scripted(env, "CA-qa", "alice", end=True, audio=True)
    c = env.client
    page = c.get("/api/qa/calls/CA-qa", headers=env.headers("alice")).json()
    assert page["review"] is None and page["audio_url"] == "/api/calls/CA-qa/audio"
    assert [s["role"] for s in page["transcript"]["segments"]] == ["customer", "agent"]
    assert c.get("/api/qa/calls/CA-qa/review.csv", headers=env.headers("alice")).status_code == 409
    review = c.post("/api/qa/calls/CA-qa/review", headers=env.headers("alice")).json()
    (row,) = review["rows"]
    assert row["actual"].startswith("I'm sorry") and row["segments"] == [1] and len(row["suggestions"]) == 3
    assert row["best_similarity"] == max(s["similarity"] for s in row["suggestions"]) > 0.5
    assert review["summary"]["adherence"] == 1.0 and review["summary"]["followed_actions"] == {"check_order": 1}
    listed = c.get("/api/qa/calls", headers=env.headers("alice")).json()["calls"]
    assert [(x["call_id"], x["adherence"]) for x in listed] == [("CA-qa", 1.0)]
    rows = list(csv.reader(io.StringIO(c.get("/api/qa/calls/CA-qa/review.csv", headers=env.headers("alice")).text)))
    assert rows[0][:5] == ["call_id", "turn", "start", "end", "actual"] and rows[1][4] == row["actual"]
    exported = c.get("/api/qa/calls/CA-qa/review.json", headers=env.headers("alice"))
    assert "attachment" in exported.headers["content-disposition"] and exported.json()["rows"] == review["rows"]
    assert c.get("/api/qa/calls/CA-qa/review.csv", headers=env.headers("bob")).status_code == 403
    audio = c.get("/api/calls/CA-qa/audio", headers={**env.headers("alice"), "Range": "bytes=100-199"})
    assert audio.status_code == 206 and len(audio.content) == 100
    assert c.get("/api/calls/CA-qa/audio", headers=env.headers("bob")).status_code == 403


def test_csv_cells_cannot_smuggle_formulas() -> None:
    from datetime import UTC, datetime

    from voice.server.review import review_csv
    from voice.store.qa import CallReview

    row = {"turn": 1, "actual": "=HYPERLINK(\"http://x\")", "suggestions": [{"text": "+1 555", "similarity": 0.1}]}
    out = review_csv(CallReview("c", "v", 1, [row], {}, datetime.now(UTC)))
    assert "'=HYPERLINK" in out and "'+1 555" in out
    # a call id is a file's stem for `voice transcribe --db`: anyone naming the recording chose it
    out = review_csv(CallReview("=cmd|'/c calc'!A1", "v", 1, [row], {}, datetime.now(UTC)))
    assert out.splitlines()[1].startswith("'=cmd")


def test_uploads_are_for_supervisors_and_check_their_input(env: Env) -> None:
    c = env.client
    assert c.post("/api/qa/uploads?filename=a.wav", content=b"RIFF", headers=env.headers("alice")).status_code == 403
    assert c.post("/api/qa/uploads?filename=notes.txt", content=b"x", headers=env.headers("sue")).status_code == 415
    assert c.post("/api/qa/uploads?filename=empty.wav", content=b"", headers=env.headers("sue")).status_code == 400
    jobs = c.get("/api/qa/uploads", headers=env.headers("sue")).json()["jobs"]
    assert jobs[0]["status"] == "failed" and "path" not in jobs[0]
    assert c.get("/api/qa/uploads/nope", headers=env.headers("sue")).status_code == 404


def test_upload_names_cannot_escape_the_upload_folder(env: Env) -> None:
    from voice.server.uploads import _safe_name

    assert _safe_name("../../etc/passwd.wav") == "passwd.wav"
    assert _safe_name("..\\..\\evil.wav") == "evil.wav"
    assert "/" not in _safe_name("a/b/c d.mp3") and _safe_name("...") == "recording"
    # A name in another script keeps its suffix (the call id and media type), not just "wav".
    assert _safe_name("録音.wav") == "recording.wav" and _safe_name("Звонок клиента.MP3") == "recording.MP3"


def test_supervisor_feed_summarises_every_call_and_refuses_agents(env: Env) -> None:
    c = env.client
    with pytest.raises(WebSocketDenialResponse) as refused:
        with c.websocket_connect("/ws/supervisor", headers=env.headers("alice")):
            pass
    assert refused.value.status_code == 403
    with c.websocket_connect("/ws/supervisor", headers=env.headers("sue")) as ws:
        call = scripted(env, "CA-1", "alice")
        env.run(call.nlu, "t1", "customer", "missing_order", [], 2.0)
        env.run(call.suggest, "t2", [("Could I have your order number?", "ask_order")], 4.0)
        updates = [json.loads(ws.receive_text()) for _ in range(5)]
    assert [u["type"] for u in updates] == ["call.started", "transcript.final", "transcript.final", "nlu",
                                            "suggestion"]
    assert updates[0]["agent_id"] == "alice" and updates[3]["intent"] == "missing_order"
    assert updates[4]["text"] == "Could I have your order number?" and updates[4]["latency_ms"] == 12.5


def test_pages_are_served_with_a_strict_policy(env: Env) -> None:
    c = env.client
    assert c.get("/", follow_redirects=False).headers["location"] == "/agent"
    for path in ("/agent", "/qa", "/qa/calls/anything", "/supervisor"):
        page = c.get(path)
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/js/agent/main.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/static/../voice/server/app.py").status_code == 404


def test_review_turns_merge_segments_and_keep_entity_offsets() -> None:
    from voice.audio import AudioInfo
    from voice.batch.review import conversation_turns
    from voice.transcript import CallTranscript, EntityMention, Segment

    segments = [Segment(0, 0.0, 1.0, "A", "Hi there.", "customer"),
                Segment(1, 1.1, 2.0, "A", " Call me at 555 0100.", "customer"),
                Segment(2, 2.5, 3.0, "B", "Sure.", "agent"), Segment(3, 3.1, 3.5, "C", "hmm", "unknown")]
    transcript = CallTranscript("c1", AudioInfo("x.wav", "wav", 8000, 1, 4.0), [], segments,
                                [EntityMention("PHONE", "555 0100", 1, 12, 20, "5550100")])
    turns = conversation_turns(transcript)
    assert [(t.role, t.segments) for t in turns] == [("customer", [0, 1]), ("agent", [2])]
    (entity,) = turns[0].entities
    assert turns[0].text[entity["start"]:entity["end"]] == "555 0100" and entity["value"] == "5550100"


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("https://cc.example.com", "cc.example.com", True),
        ("https://cc.example.com", "cc.example.com:443", True),  # a proxy that names the port
        ("http://cc.example.com", "cc.example.com:80", True),
        ("https://CC.example.com:8443", "cc.example.com:8443", True),
        ("https://cc.example.com:8443", "cc.example.com", False),  # nginx $host drops the port
        ("https://cc.example.com", "cc.example.com:8443", False),
        ("https://evil.example", "cc.example.com", False),
        ("https://cc.example.com", "cc.example.com:x", False),
        ("null", "cc.example.com", False),
    ],
)
def test_a_websocket_origin_matches_its_host_whatever_the_default_port(origin: str, host: str, same: bool) -> None:
    from voice.server.auth import same_host

    assert same_host(origin, host) is same
