"""Erasing calls on the real app and SQLite database: one call on request (API and CLI), all calls
past a retention period; what goes (rows, feedback, assignments, recordings, memory) and what
stays (other calls, calls in progress, the operator's own source recordings)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.server.harness import Env, scripted, stored_feedback
from voice.audio import AudioInfo
from voice.cli import cli
from voice.server.retention_api import purge_once
from voice.store.feedback import FeedbackStore
from voice.store.retention import CallEraser, cutoff
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit


def row_counts(env: Env, call_id: str) -> dict[str, int]:
    """Rows still keyed to a call, per table."""
    queries = {
        "calls": "SELECT count(*) FROM calls WHERE call_id = :c",
        "live_turns": "SELECT count(*) FROM live_turns JOIN calls ON calls.id = live_turns.call_pk "
                      "WHERE calls.call_id = :c",
        "outcomes": "SELECT count(*) FROM call_outcomes o JOIN calls ON calls.id = o.call_pk WHERE calls.call_id = :c",
        "feedback": "SELECT count(*) FROM suggestion_feedback WHERE call_id = :c",
        "assignments": "SELECT count(*) FROM ab_assignments WHERE unit_id = :c",
    }
    with env.services.store.engine.connect() as connection:
        return {table: connection.execute(text(q), {"c": call_id}).scalar_one() for table, q in queries.items()}


def call_with_everything(env: Env, call_id: str) -> Path:
    """An ended, recorded call with an outcome, accepted feedback and an A/B assignment; its WAV."""
    call = scripted(env, call_id, "alice", audio=True)
    ids = env.run(call.suggest, "t2", [("Could I have your order number?", "ask_order")], 4.0)
    env.run(call.end, 4.0)
    c = env.client
    assert c.post(f"/api/calls/{call_id}/feedback", headers=env.headers("alice"),
                  json={"items": [{"suggestion_id": ids[0], "kind": "accepted"}]}).status_code == 201
    assert c.put(f"/api/calls/{call_id}/outcome", headers=env.headers("sue"),
                 json={"success": True, "value": 120.0}).status_code == 200
    FeedbackStore(env.services.store).assign("exp1", "call", call_id, "A", "model-v1")
    wav = Path(env.services.config.data_dir) / "audio" / f"{call_id}.wav"
    assert wav.exists()
    return wav


def old_batch_call(env: Env, call_id: str, source: Path, days_ago: float) -> None:
    created = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")
    transcript = CallTranscript(call_id=call_id, audio=AudioInfo(str(source), "wav", 8000, 1, 3.0),
                                speakers=[], segments=[], created_at=created)
    env.services.store.save_transcript(transcript, source=str(source))


def test_supervisor_erases_a_call_and_everything_about_it(env: Env) -> None:
    wav = call_with_everything(env, "CA-erase")
    call_with_everything(env, "CA-keep")
    assert row_counts(env, "CA-erase") == {"calls": 1, "live_turns": 2, "outcomes": 1, "feedback": 1,
                                           "assignments": 1}
    c = env.client
    assert c.delete("/api/calls/CA-erase", headers=env.headers("alice")).status_code == 403
    assert c.delete("/api/calls/CA-erase", headers=env.headers("gus")).status_code == 403  # globex only
    response = c.delete("/api/calls/CA-erase", headers=env.headers("sue"))
    assert response.status_code == 200, response.text
    assert response.json() == {"erased": ["CA-erase"], "feedback_rows": 1, "files": 1, "kept_source_files": []}
    assert row_counts(env, "CA-erase") == dict.fromkeys(("calls", "live_turns", "outcomes", "feedback",
                                                         "assignments"), 0)
    assert not wav.exists() and (wav.parent / "CA-keep.wav").exists()
    assert row_counts(env, "CA-keep")["feedback"] == 1 and len(stored_feedback(env.services.store, "CA-keep")) == 1
    # nothing of it is served any more, from the database or from memory
    assert c.get("/api/calls/CA-erase", headers=env.headers("sue")).status_code == 404
    assert env.services.hub.history("CA-erase") == [] and env.services.hub.history("CA-keep")
    assert c.delete("/api/calls/CA-erase", headers=env.headers("sue")).status_code == 404


def test_a_call_in_progress_is_not_erased(env: Env) -> None:
    scripted(env, "CA-live", "alice")
    response = env.client.delete("/api/calls/CA-live", headers=env.headers("sue"))
    assert response.status_code == 409 and "in progress" in response.json()["detail"]
    # the recorder writes turns on its own thread, after NLU: wait for both, then none is erased
    deadline = time.monotonic() + 10
    while row_counts(env, "CA-live")["live_turns"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert row_counts(env, "CA-live") == {"calls": 1, "live_turns": 2, "outcomes": 0, "feedback": 0,
                                          "assignments": 0}


def test_retention_purge_erases_only_old_calls_and_keeps_source_recordings(env: Env, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "old.wav").write_bytes(b"RIFF")
    old_batch_call(env, "batch-old", archive / "old.wav", days_ago=100)
    old_batch_call(env, "batch-new", archive / "old.wav", days_ago=10)
    call_with_everything(env, "CA-today")
    services = env.services
    services.config = type(services.config)(**{**services.config.__dict__, "retention_days": 90.0})
    eraser = CallEraser(services.store, services.config.data_dir)
    dry = eraser.erase(eraser.find(created_before=cutoff(90)), dry_run=True)
    assert dry.calls == ["batch-old"] and row_counts(env, "batch-old")["calls"] == 1
    report = purge_once(services)
    assert report is not None and report.calls == ["batch-old"]
    assert report.kept_source_files == [str(archive / "old.wav")] and (archive / "old.wav").exists()
    assert row_counts(env, "batch-old")["calls"] == 0
    assert row_counts(env, "batch-new")["calls"] == 1 and row_counts(env, "CA-today")["calls"] == 1


def test_cli_erase_and_purge(env: Env) -> None:
    wav = call_with_everything(env, "CA-cli")
    scripted(env, "CA-active", "bob")
    common = ["--db", env.services.config.database_url, "--data-dir", env.services.config.data_dir]
    runner = CliRunner()
    listed = runner.invoke(cli, ["calls", "list", *common])
    assert listed.exit_code == 0 and "CA-cli\tlive" in listed.output and "CA-active" in listed.output
    dry = runner.invoke(cli, ["calls", "erase", "CA-cli", "CA-nope", "--dry-run", *common])
    assert dry.exit_code == 0 and "would erase 1 calls, 1 feedback rows, 1 A/B assignments, 1 files" in dry.output
    assert "not stored" in dry.output and wav.exists()
    refused = runner.invoke(cli, ["calls", "erase", "CA-cli", *common], input="n\n")
    assert refused.exit_code == 1 and wav.exists()
    done = runner.invoke(cli, ["calls", "purge", "--older-than", "1e-9", "--yes", *common])
    assert done.exit_code == 0, done.output
    assert "erased 1 calls" in done.output and "in progress, left alone: CA-active" in done.output
    assert not wav.exists() and row_counts(env, "CA-cli")["calls"] == 0 and row_counts(env, "CA-active")["calls"] == 1
    bad = runner.invoke(cli, ["calls", "purge", "--older-than", "0", *common])
    assert bad.exit_code == 2
