"""Erasure at the store level on both backends (SQLite and PostgreSQL): the call row's children go
through the database's ON DELETE CASCADE, feedback and A/B assignments by call id, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from voice.store import Store
from voice.store.feedback import FeedbackStore
from voice.store.live import LiveCallStore, LiveTurn
from voice.store.qa import CallOutcome, QaStore
from voice.store.retention import CallEraser
from voice.transcript import CallTranscript

pytestmark = pytest.mark.e2e

TABLES = ("calls", "speakers", "segments", "entities", "live_turns", "call_outcomes", "suggestion_feedback",
          "ab_assignments")


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def live_call(store: Store, call_id: str) -> None:
    live = LiveCallStore(store)
    live.start_call(call_id, tenant="acme", agent_id="alice", source="twilio")
    live.add_turn(call_id, LiveTurn("t1", "inbound", "customer", 0.5, 2.0, "my card number is 4111", []))
    live.end_call(call_id, duration=3.0)
    QaStore(store).set_outcome(call_id, CallOutcome(success=True, value=50.0))
    FeedbackStore(store).record_many([{"suggestion_id": f"{call_id}:t1:0", "call_id": call_id, "event": "accepted",
                                       "text": "Thanks!", "context": [{"role": "customer", "text": "my card"}]}])
    FeedbackStore(store).assign("exp1", "call", call_id, "A", "model-v1")


def test_erasing_a_call_removes_its_rows_only(database_url: str, sample_transcript: CallTranscript,
                                              tmp_path: Path) -> None:
    store = Store.open(database_url)
    try:
        store.save_transcript(sample_transcript)
        live_call(store, "L1")
        live_call(store, "L2")
        before = counts(store)
        eraser = CallEraser(store, tmp_path / "data")
        report = eraser.erase(eraser.find(call_ids=["L1", "missing"]))
        assert report.calls == ["L1"] and (report.feedback_rows, report.assignments) == (1, 1)
        after = counts(store)
        assert {t: before[t] - after[t] for t in TABLES} == {
            "calls": 1, "speakers": 0, "segments": 0, "entities": 0, "live_turns": 1, "call_outcomes": 1,
            "suggestion_feedback": 1, "ab_assignments": 1}
        assert QaStore(store).call("L2").agent_id == "alice"
        assert store.get_transcript(sample_transcript.call_id).segments == sample_transcript.segments
        report = eraser.erase(eraser.find(call_ids=[sample_transcript.call_id]))
        assert counts(store)["segments"] == 0 and report.kept_source_files == [sample_transcript.audio.path]
    finally:
        store.close()


def test_an_uploaded_call_takes_its_upload_folder_with_it(database_url: str, sample_transcript: CallTranscript,
                                                         tmp_path: Path) -> None:
    from dataclasses import replace

    job = tmp_path / "data" / "uploads" / "job1"
    (job / "parts").mkdir(parents=True)
    (job / "call.wav").write_bytes(b"RIFF" * 10)
    (job / "parts" / "meta.json").write_text("{}")
    store = Store.open(database_url)
    try:
        store.save_transcript(replace(sample_transcript, audio=replace(sample_transcript.audio,
                                                                       path=str(job / "call.wav"))))
        eraser = CallEraser(store, tmp_path / "data")
        report = eraser.erase(eraser.find(call_ids=[sample_transcript.call_id]))
        assert report.bytes_freed == 42 and len(report.files) == 2 and report.kept_source_files == []
        assert not job.exists() and (tmp_path / "data" / "uploads").exists()
    finally:
        store.close()


def test_a_purge_of_many_calls_stays_under_the_bind_parameter_limit(database_url: str, tmp_path: Path) -> None:
    """PostgreSQL takes at most 65,535 bind parameters a statement; one IN list of every call id
    failed a purge of years of calls after their files were gone, on every hourly retry."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import event, insert

    from voice.store.retention import ERASE_CHUNK, cutoff
    from voice.store.tables import CallRow

    calls = 2 * ERASE_CHUNK + 3
    old = datetime.now(UTC) - timedelta(days=100)
    store = Store.open(database_url)
    widest: list[int] = [0]

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if not executemany:
            widest[0] = max(widest[0], len(parameters or ()))

    try:
        with store.session() as session:
            session.execute(insert(CallRow), [dict(call_id=f"old{i}", status="done", kind="live", options={},
                                                   redacted=False, created_at=old, updated_at=old)
                                              for i in range(calls)])
        live_call(store, "recent")
        event.listen(store.engine, "before_cursor_execute", count)
        eraser = CallEraser(store, tmp_path / "data")
        report = eraser.erase(eraser.find(created_before=cutoff(30)))
        assert len(report.calls) == calls and counts(store)["calls"] == 1
        assert widest[0] <= ERASE_CHUNK + 10
    finally:
        store.close()
