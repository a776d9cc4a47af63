"""Feedback kept once per suggestion and action, an hour-long card still counted, and the QA list
paged by cursor: on the real app and a real SQLite database."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from tests.server.harness import Env, ScriptedCall, scripted, stored_feedback
from voice.store.qa import QaStore
from voice.store.store import CallNotFoundError

pytestmark = pytest.mark.unit


def _post(env: Env, call_id: str, *items: dict[str, Any]) -> Any:
    return env.client.post(f"/api/calls/{call_id}/feedback", json={"items": list(items)},
                           headers=env.headers("alice"))


def test_only_the_first_action_on_a_suggestion_is_stored(env: Env) -> None:
    # A reloaded page or a second tab offers a card again: accepting it there, or dismissing it,
    # must not add a second verdict on the same suggestion.
    call = scripted(env, "CA-once", "alice")
    ids = env.run(call.suggest, "t2", [("Let me check that order.", "check_order"),
                                        ("Could I have your order number?", "ask_order")], 4.0)
    first = _post(env, "CA-once", {"suggestion_id": ids[0], "kind": "shown"},
                  {"suggestion_id": ids[0], "kind": "accepted", "elapsed_ms": 900})
    again = _post(env, "CA-once", {"suggestion_id": ids[0], "kind": "accepted", "elapsed_ms": 5000})
    other_verb = _post(env, "CA-once", {"suggestion_id": ids[0], "kind": "dismissed"})
    in_one_request = _post(env, "CA-once", {"suggestion_id": ids[1], "kind": "edited", "text": "Your order number?"},
                           {"suggestion_id": ids[1], "kind": "dismissed"})
    rows = [(r["suggestion_id"], r["event"], r["elapsed_ms"]) for r in stored_feedback(env.services.store, "CA-once")]
    assert rows == [(ids[0], "shown", None), (ids[0], "accepted", 900), (ids[1], "edited", None)]
    assert [a.status_code for a in (first, again, other_verb, in_one_request)] == [201] * 4
    assert [a.json() for a in (first, again, other_verb, in_one_request)] == [
        {"stored": 2, "duplicates": 0}, {"stored": 0, "duplicates": 1}, {"stored": 0, "duplicates": 1},
        {"stored": 1, "duplicates": 1}]
    assert 'event="accepted"} 1.0' in env.client.get("/metrics").text  # duplicates are not counted


def test_an_action_on_a_card_shown_over_an_hour_is_kept_as_an_hour(env: Env) -> None:
    call = scripted(env, "CA-lunch", "alice")
    ids = env.run(call.suggest, "t2", [("Let me check that order.", "check_order")], 4.0)
    late = _post(env, "CA-lunch", {"suggestion_id": ids[0], "kind": "dismissed", "elapsed_ms": 3_700_000.5})
    assert late.status_code == 201 and late.json()["stored"] == 1
    [row] = stored_feedback(env.services.store, "CA-lunch")
    assert row["event"] == "dismissed" and row["elapsed_ms"] == 3_600_000
    assert _post(env, "CA-lunch", {"suggestion_id": ids[0], "kind": "shown", "elapsed_ms": -1}).status_code == 422
    spec = env.client.get("/openapi.json").json()["components"]["schemas"]["FeedbackItem"]["properties"]
    assert "hour" in spec["elapsed_ms"]["description"]


def _listing(env: Env, query: str) -> list[dict[str, Any]]:
    answer = env.client.get(f"/api/qa/calls?{query}", headers=env.headers("sue"))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["calls"])


def _start(env: Env, call_id: str) -> None:
    """Start a call and wait for its row (written off the event loop)."""
    env.run(ScriptedCall(env.services, call_id, agent_id="alice").start)
    deadline = time.monotonic() + 10
    while True:
        try:
            QaStore(env.services.store).call(call_id)
            return
        except CallNotFoundError:
            assert time.monotonic() < deadline, f"{call_id} was not stored"
            time.sleep(0.02)


def test_the_qa_list_pages_by_cursor_while_calls_start(env: Env) -> None:
    for index in range(5):
        _start(env, f"CA-{index}")
    first = _listing(env, "limit=2")
    assert [c["call_id"] for c in first] == ["CA-4", "CA-3"]
    _start(env, "CA-new")  # starts between two pages
    by_offset = [c["call_id"] for c in _listing(env, "limit=2&offset=2")]  # still answered, but shifted
    assert by_offset == ["CA-3", "CA-2"]
    second = _listing(env, f"limit=2&before={first[-1]['cursor']}")
    third = _listing(env, f"limit=2&before={second[-1]['cursor']}")
    assert [c["call_id"] for c in second + third] == ["CA-2", "CA-1", "CA-0"]
    assert _listing(env, f"limit=2&before={third[-1]['cursor']}") == []


def test_the_cursor_orders_calls_created_at_the_same_time_by_id(env: Env) -> None:
    for index in range(5):
        _start(env, f"CA-{index}")
    with env.services.store.engine.begin() as connection:
        connection.execute(text("UPDATE calls SET created_at = '2026-11-27 01:00:00.123456'"))
    seen: list[str] = []
    cursor = ""
    while True:
        page = _listing(env, f"limit=2&before={cursor}")
        if not page:
            break
        seen += [c["call_id"] for c in page]
        cursor = page[-1]["cursor"]
    assert seen == ["CA-4", "CA-3", "CA-2", "CA-1", "CA-0"]
    assert cursor.startswith("2026-11-27T01:00:00.123456Z,")


@pytest.mark.parametrize("before", ["yesterday", "2026-11-27T01:00:00Z", "2026-11-27T01:00:00Z,x",
                                    "2026-13-01T00:00:00Z,4", f"2026-11-27T01:00:00Z,{10 ** 19}"])
def test_a_bad_cursor_is_a_422_that_says_why(env: Env, before: str) -> None:
    answer = env.client.get("/api/qa/calls", params={"before": before}, headers=env.headers("sue"))
    assert answer.status_code == 422 and "cursor" in answer.text


def test_the_cursor_is_documented(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/qa/calls"]["get"]["parameters"]}
    assert "cursor" in params["before"]["description"] and "before" in params["offset"]["description"]
