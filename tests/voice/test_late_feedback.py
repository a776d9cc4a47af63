"""Feedback that comes after the call left the server's memory (a restart, or many later calls)
is resolved against what the database holds of the suggestion; ids the call never had, or
stored for another tenant, are still refused. And QA offers audio only when there is a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.harness import scripted, stored_feedback
from tests.voice.console_app import console_env
from voice.store.feedback import FeedbackStore

pytestmark = pytest.mark.unit


def _call_with_a_shown_suggestion(data_dir: Path) -> tuple[dict[str, str], list[str]]:
    """CA-fb (alice): two suggestions, both shown on the console, then the call ends. Also CA-2."""
    with console_env(data_dir) as env:
        call = scripted(env, "CA-fb", "alice")
        ids = env.run(call.suggest, "t2", [("Let me check that order.", "check_order"),
                                            ("Could I have your order number?", "ask_order")], 4.0)
        env.run(call.end, 5.0)
        shown = {"items": [{"suggestion_id": sid, "kind": "shown"} for sid in ids]}
        assert env.client.post("/api/calls/CA-fb/feedback", json=shown, headers=env.headers("alice")).status_code == 201
        other = scripted(env, "CA-2", "alice")
        ids += env.run(other.suggest, "t2", [("Anything else?", "wrap_up")], 4.0)
        env.run(other.end, 5.0)
        other_shown = {"items": [{"suggestion_id": ids[2], "kind": "shown"}]}
        assert env.client.post("/api/calls/CA-2/feedback", json=other_shown,
                               headers=env.headers("alice")).status_code == 201
        return env.tokens, ids


def test_a_late_accept_after_a_restart_is_stored_with_the_suggestion_as_it_was(tmp_path: Path) -> None:
    tokens, ids = _call_with_a_shown_suggestion(tmp_path)
    with console_env(tmp_path, tokens) as env:  # restarted: the hub never saw CA-fb
        assert not env.services.hub.knows("CA-fb")
        late = {"items": [{"suggestion_id": ids[1], "kind": "accepted", "elapsed_ms": 5000},
                          {"suggestion_id": ids[0], "kind": "dismissed"}]}
        answer = env.client.post("/api/calls/CA-fb/feedback", json=late, headers=env.headers("alice"))
        assert answer.status_code == 201, answer.text
        rows = stored_feedback(env.services.store, "CA-fb")
    shown = {r["suggestion_id"]: r for r in rows if r["event"] == "shown"}
    accepted = next(r for r in rows if r["event"] == "accepted")
    assert accepted["suggestion_id"] == ids[1] and accepted["elapsed_ms"] == 5000
    for field in ("text", "action", "model_version", "arm", "turn_index", "rank", "context", "tenant"):
        assert accepted[field] == shown[ids[1]][field], field
    assert accepted["text"] == "Could I have your order number?" and accepted["rank"] == 1
    assert [r["event"] for r in rows].count("dismissed") == 1


def test_late_feedback_is_refused_for_ids_the_call_never_had(tmp_path: Path) -> None:
    tokens, ids = _call_with_a_shown_suggestion(tmp_path)
    with console_env(tmp_path, tokens) as env:
        post = env.client.post
        made_up = {"items": [{"suggestion_id": "CA-fb:t9:0:999", "kind": "accepted"}]}
        assert post("/api/calls/CA-fb/feedback", json=made_up, headers=env.headers("alice")).status_code == 404
        of_other_call = {"items": [{"suggestion_id": ids[2], "kind": "accepted"}]}
        assert post("/api/calls/CA-fb/feedback", json=of_other_call, headers=env.headers("alice")).status_code == 404
        FeedbackStore(env.services.store).record_many([{  # a row claiming CA-fb, but of another tenant
            "suggestion_id": "CA-fb:t2:9:1", "call_id": "CA-fb", "event": "shown", "text": "planted",
            "action": "x", "model_version": "m", "arm": None, "tenant": "globex", "agent_id": "gus",
            "turn_index": 1, "rank": 0, "edited_text": None, "elapsed_ms": None, "context": []}])
        planted = {"items": [{"suggestion_id": "CA-fb:t2:9:1", "kind": "accepted"}]}
        assert post("/api/calls/CA-fb/feedback", json=planted, headers=env.headers("alice")).status_code == 404
        assert post("/api/calls/CA-fb/feedback", json=made_up, headers=env.headers("bob")).status_code == 403
        events = [r["event"] for r in stored_feedback(env.services.store, "CA-fb")]
    assert events == ["shown", "shown", "shown"]  # nothing was added


def test_a_live_call_without_a_recording_offers_no_audio(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        scripted(env, "CA-mute", "alice", end=True)
        scripted(env, "CA-rec", "alice", end=True, audio=True)
        mute = env.client.get("/api/qa/calls/CA-mute", headers=env.headers("alice")).json()
        recorded = env.client.get("/api/qa/calls/CA-rec", headers=env.headers("alice")).json()
        listing = env.client.get("/api/qa/calls", headers=env.headers("alice")).json()["calls"]
        assert recorded["call"]["has_audio"] is True and recorded["audio_url"] == "/api/calls/CA-rec/audio"
        assert env.client.get(recorded["audio_url"], headers=env.headers("alice")).status_code == 200
    assert mute["call"]["has_audio"] is False and mute["audio_url"] is None
    assert {c["call_id"]: c["has_audio"] for c in listing} == {"CA-mute": False, "CA-rec": True}


def test_a_suggestion_is_counted_shown_once_whichever_tab_reports_it(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        call = scripted(env, "CA-tabs", "alice")
        ids = env.run(call.suggest, "t2", [("Let me check that order.", "check_order"),
                                            ("Could I have your order number?", "ask_order")], 4.0)
        first_tab = {"items": [{"suggestion_id": sid, "kind": "shown"} for sid in ids]}
        second_tab = {"items": [{"suggestion_id": ids[0], "kind": "shown"}, {"suggestion_id": ids[0], "kind": "shown"},
                                {"suggestion_id": ids[1], "kind": "accepted"}]}

        def post(body: dict) -> int:
            answer = env.client.post("/api/calls/CA-tabs/feedback", json=body, headers=env.headers("alice"))
            assert answer.status_code == 201, answer.text
            return answer.json()["stored"]

        stored = [post(first_tab), post(second_tab)]
        metrics = env.client.get("/metrics").text
        rows = stored_feedback(env.services.store, "CA-tabs")
    assert stored == [2, 1]
    assert sorted((r["suggestion_id"], r["event"]) for r in rows) == sorted(
        [(ids[0], "shown"), (ids[1], "shown"), (ids[1], "accepted")])
    assert 'event="shown"} 2.0' in metrics
