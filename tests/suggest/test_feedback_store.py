"""Feedback and A/B assignments round-trip through the database layer (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suggest.ab_report import calls_per_arm
from suggest.errors import DataFormatError
from suggest.feedback import feedback_from_dict, final_events, read_feedback, write_feedback
from voice.errors import StorageError
from voice.store import Store
from voice.store.feedback import FeedbackStore

pytestmark = pytest.mark.unit


def _event(suggestion: str, event: str, **extra: object) -> dict:
    return {
        "suggestion_id": suggestion,
        "call_id": "call-1",
        "event": event,
        "text": "Would you donate $1?",
        "action": "donate_ask",
        "model_version": "acme/20250101T000000Z",
        "arm": "treatment",
        "tenant": "acme",
        "agent_id": "agent-7",
        "turn_index": 4,
        "edited_text": None,
        "rank": 0,
        "elapsed_ms": 850.0,
        "context": [{"role": "customer", "text": "I might give a little."}],
        "created_at": "2026-11-27T01:00:00+00:00",
        **extra,
    }


def test_feedback_round_trips_and_feeds_the_engine_records(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'n.db'}") as store:
        feedback = FeedbackStore(store)
        assert (
            feedback.record_many(
                [
                    _event("s1", "shown"),
                    _event("s1", "accepted"),
                    _event("s2", "shown"),
                    _event("s2", "edited", edited_text="Could you give $2?"),
                ]
            )
            == 4
        )
        rows = feedback.records(tenant="acme")
        assert feedback.records(tenant="other") == []
    records = [feedback_from_dict(r) for r in rows]
    assert [r.event for r in records] == ["shown", "accepted", "shown", "edited"]
    assert records[1].arm == "treatment" and records[1].context[0].text == "I might give a little."
    decided = {r.suggestion_id: r for r in final_events(records)}
    assert decided["s1"].event == "accepted" and decided["s2"].edited_text == "Could you give $2?"
    path = tmp_path / "feedback.jsonl"
    write_feedback(path, records)
    assert read_feedback(path).records == records


def test_bad_events_are_refused_and_assignments_never_change(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'n.db'}") as store:
        feedback = FeedbackStore(store)
        with pytest.raises(StorageError, match="liked"):
            feedback.record_many([_event("s1", "liked")])
        assert feedback.assign("exp-1", "call", "call-1", "control", "models/a") == "control"
        assert feedback.assign("exp-1", "call", "call-1", "treatment", "models/b") == "control"
        assert feedback.assignments("exp-1") == {"call-1": "control"}
        assert feedback.call_outcomes() == {}


def test_feedback_jsonl_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(
        '{"suggestion_id": "s", "call_id": "c", "event": "accepted", "text": "t"}\n'
        '{"event": "nope"}\n[1]\n'
    )
    found = read_feedback(path)
    assert len(found.records) == 1 and [i.where for i in found.issues] == ["line 2", "line 3"]


def test_feedback_jsonl_with_a_bom_keeps_its_first_event_and_non_utf8_is_a_typed_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.jsonl"
    lines = [json.dumps(_event(s, "accepted")) for s in ("s1", "s2")]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")  # Excel, PowerShell
    found = read_feedback(path)
    assert [r.suggestion_id for r in found.records] == ["s1", "s2"] and found.issues == []
    path.write_bytes(lines[0].replace("donate", "donn\u00e9").encode("latin-1") + b"\n")
    with pytest.raises(DataFormatError, match="not UTF-8 text") as raised:
        read_feedback(path)
    assert str(path) in str(raised.value) and raised.value.hint


def test_ab_cli_assigns_records_and_reports(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from voice.cli import cli

    split = tmp_path / "split.json"
    split.write_text(
        json.dumps(
            {
                "experiment": "e1",
                "unit": "call",
                "arms": [
                    {"name": "control", "model": "models/t/v1", "weight": 1},
                    {"name": "treatment", "model": "models/t/v2", "weight": 1},
                ],
            }
        )
    )
    db = f"sqlite:///{tmp_path / 'n.db'}"
    runner = CliRunner()
    assigned = runner.invoke(
        cli, ["ab", "assign", "--split", str(split), "--call-id", "call-1", "--record", "--db", db]
    )
    assert assigned.exit_code == 0, assigned.output
    arm = json.loads(assigned.output)["arm"]
    with Store.open(db) as store:
        assert FeedbackStore(store).assignments("e1") == {"call-1": arm}
        events = []
        for i in range(40):
            call_arm = "control" if i % 2 else "treatment"
            events.append(_event(f"s{i}", "shown", call_id=f"call-{i}", arm=call_arm))
            if i % 4 == 0:
                events.append(_event(f"s{i}", "accepted", call_id=f"call-{i}", arm=call_arm))
        FeedbackStore(store).record_many(events)
    outcomes = tmp_path / "crm.csv"
    outcomes.write_text(
        "call_id,success\n"
        + "".join(f"call-{i},{'true' if i % 3 else 'false'}\n" for i in range(40))
    )
    report = runner.invoke(
        cli,
        ["ab", "report", "--split", str(split), "--db", db, "--outcomes", str(outcomes),
         "--lift", "0.05"],
    )
    assert report.exit_code == 0, report.output
    assert "control" in report.output and "treatment" in report.output and "n=20" in report.output
    control_rate = sum(1 for i in range(1, 40, 2) if i % 3) / 20  # odd calls are control's
    planned = calls_per_arm(control_rate, control_rate + 0.05)
    assert f"{planned} judged calls per arm" in report.output
    exported = tmp_path / "f.jsonl"
    result = runner.invoke(cli, ["feedback", "export", "--db", db, "--out", str(exported)])
    assert result.exit_code == 0 and len(read_feedback(exported).records) == len(events)
