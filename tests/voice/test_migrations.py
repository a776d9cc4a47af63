"""Downgrades keep the rows of the tables they do not drop (real SQLite files and PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from voice.store import Store
from voice.store.live import LiveCallStore, LiveTurn
from voice.store.migrate import alembic_config
from voice.store.qa import CallOutcome, QaStore
from voice.transcript import CallTranscript

pytestmark = pytest.mark.e2e


def _counts(store: Store, *tables: str) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def _downgrade(store: Store, revision: str) -> None:
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def test_downgrades_that_drop_calls_columns_keep_the_child_rows(
    database_url: str, sample_transcript: CallTranscript
) -> None:
    # On SQLite, rebuilding `calls` to drop a column DROPs the table with foreign keys on, which
    # cascades to every child row (segments, live turns, outcomes) before the copy is renamed.
    with Store.open(database_url) as store:
        store.save_transcript(sample_transcript)
        live = LiveCallStore(store)
        live.start_call("CA1", tenant="acme", agent_id="alice", source="twilio")
        live.add_turn("CA1", LiveTurn("t0", "inbound", "customer", 0.0, 1.0, "hello", words=[]))
        QaStore(store).set_outcome("CA1", CallOutcome(success=True, label="sale"))
        children = ("speakers", "segments", "entities", "live_turns", "call_outcomes")
        before = _counts(store, *children)
        assert all(before.values()), before

        _downgrade(store, "0004")  # 0005 drops calls.heartbeat_at
        assert _counts(store, *children) == before

        _downgrade(store, "0001")  # 0002 drops calls.kind, tenant, agent_id, started_at, ended_at
        batch_children = ("speakers", "segments", "entities")
        assert _counts(store, *batch_children) == {t: before[t] for t in batch_children}

    with Store.open(database_url) as store:
        assert store.get_transcript(sample_transcript.call_id) == sample_transcript
        assert _counts(store, "segments")["segments"] == before["segments"]
