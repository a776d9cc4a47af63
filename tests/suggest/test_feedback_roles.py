"""Feedback from mixed-leg calls reaches training, and a suggestion's ``shown`` is stored once.

On a mixed leg (both parties in one channel) finished turns carry role ``unknown`` until the
speakers' roles are decided; feedback on the suggestions made meanwhile must not be thrown away.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from suggest.feedback import feedback_from_dict, final_events, read_feedback
from voice.cli.train_cmd import _feedback
from voice.server.feedback_api import (
    FeedbackItem,
    FeedbackRecord,
    FeedbackRecorder,
    _records,
    _suggestions_of,
)
from voice.store import Store
from voice.store.feedback import FeedbackStore

pytestmark = pytest.mark.unit

MIXED_LEG_HISTORY: list[dict[str, Any]] = [
    {"type": "transcript.final", "role": "unknown", "text": "Thanks for calling Acme, this is Dana."},
    {"type": "transcript.final", "role": "unknown", "text": "Hi, my bill is forty dollars too high."},
    {"type": "transcript.final", "role": "agent", "text": "Sorry to hear that, let me check."},
    {"type": "suggestion", "model_version": "acme/v1", "arm": None,
     "suggestions": [{"id": "s1", "text": "I can refund that today.", "action": "refund"}]},
]


class _Agent:
    name = "dana"


def _stored_event(event: str, context: list[dict[str, str]]) -> dict[str, Any]:
    """A feedback row as servers before the fix stored it (``unknown`` turns in the context)."""
    return {
        "suggestion_id": "s1", "call_id": "call-1", "event": event,
        "text": "I can refund that today.", "action": "refund", "model_version": "acme/v1",
        "arm": None, "tenant": "acme", "agent_id": "dana", "turn_index": 3, "edited_text": None,
        "rank": 0, "elapsed_ms": None, "context": context,
        "created_at": "2026-11-27T01:00:00+00:00",
    }


LEGACY_CONTEXT = [
    {"role": "unknown", "text": "Thanks for calling Acme, this is Dana."},
    {"role": "unknown", "text": "Hi, my bill is forty dollars too high."},
    {"role": "agent", "text": "Sorry to hear that, let me check."},
]


def test_the_server_keeps_only_agent_and_customer_turns_as_feedback_context() -> None:
    found = _suggestions_of(MIXED_LEG_HISTORY)["s1"]
    assert found.context == [{"role": "agent", "text": "Sorry to hear that, let me check."}]
    assert found.turn_index == 3  # every finished turn before the suggestion still counts
    [record] = _records("call-1", _Agent(), "acme",  # type: ignore[arg-type]
                        [FeedbackItem(suggestion_id="s1", kind="accepted")], {"s1": found})
    parsed = feedback_from_dict(asdict(record))
    assert parsed.event == "accepted" and [t.role for t in parsed.context] == ["agent"]


def test_a_stored_record_with_unknown_role_turns_reaches_training_with_its_decision(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    with Store.open(url) as store:
        FeedbackStore(store).record_many(
            [_stored_event("shown", LEGACY_CONTEXT), _stored_event("accepted", LEGACY_CONTEXT)]
        )
    records = _feedback(True, url, None, "acme")
    assert [r.event for r in records] == ["shown", "accepted"]
    [decided] = final_events(records)
    assert decided.event == "accepted" and decided.action == "refund"
    assert [(t.role, t.text) for t in decided.context] == [
        ("agent", "Sorry to hear that, let me check.")
    ]


def test_an_exported_file_with_unknown_role_turns_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(_stored_event("dismissed", LEGACY_CONTEXT)) + "\n", encoding="utf-8")
    found = read_feedback(path)
    assert found.issues == []
    [record] = found.records
    assert record.event == "dismissed" and [t.role for t in record.context] == ["agent"]


def test_a_garbled_context_turn_still_fails_its_record() -> None:
    with pytest.raises(ValueError, match=r"context\[0\]"):
        feedback_from_dict(_stored_event("accepted", [{"role": "boss", "text": "hi"}]))
    with pytest.raises(ValueError, match=r"context\[1\]"):
        feedback_from_dict(_stored_event("accepted", [{"role": "agent", "text": "hi"}, "text"]))


def _shown(sid: str) -> FeedbackRecord:
    return FeedbackRecord(
        suggestion_id=sid, call_id="call-1", event="shown", text="t", action="a",
        model_version="acme/v1", arm=None, tenant="acme", agent_id="dana", turn_index=3,
        edited_text=None, context=[], created_at="2026-11-27T01:00:00+00:00", rank=0,
        elapsed_ms=None)


def test_two_tabs_reporting_the_same_shown_at_once_store_it_once(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'fb.db'}") as store:
        recorder = FeedbackRecorder(store, hub=None)
        feedback = recorder._store()
        real_shown = feedback.shown
        both_checked = threading.Barrier(2, timeout=0.5)

        def shown(call_id: str, ids: set[str]) -> set[str]:
            found: set[str] = real_shown(call_id, ids)
            try:  # without serialising, both requests pass the check before either inserts
                both_checked.wait()
            except threading.BrokenBarrierError:
                pass  # serialised: the other request is not checking meanwhile
            return found

        feedback.shown = shown
        stored: list[int] = []
        threads = [
            threading.Thread(target=lambda: stored.append(
                len(recorder.store_records([_shown(f"s{i}") for i in range(3)]))))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        rows = FeedbackStore(store).records(tenant="acme")
    assert sorted(stored) == [0, 3]
    assert sorted(r["suggestion_id"] for r in rows if r["event"] == "shown") == ["s0", "s1", "s2"]


def test_shown_reports_of_different_calls_do_not_wait_for_each_other(tmp_path: Path) -> None:
    # The check-then-insert is serialised per call: a slow query for one call must not hold up
    # every other call's cards (each waiting post also holds one of the server's worker threads).
    with Store.open(f"sqlite:///{tmp_path / 'fb.db'}") as store:
        recorder = FeedbackRecorder(store, hub=None)
        feedback = recorder._store()
        real_shown = feedback.shown
        both_checking = threading.Barrier(2, timeout=5)

        def shown(call_id: str, ids: set[str]) -> set[str]:
            both_checking.wait()  # breaks (and fails the test) when one call waits for the other
            found: set[str] = real_shown(call_id, ids)
            return found

        feedback.shown = shown
        errors: list[BaseException] = []

        def post(call_id: str) -> None:
            try:
                recorder.store_records([replace(_shown("s0"), call_id=call_id)])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(c,)) for c in ("call-1", "call-2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert not errors, errors
