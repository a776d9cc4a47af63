"""The call store against real SQLite files and a real PostgreSQL server started by the tests."""

from __future__ import annotations

import copy
import json
import socket
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from voice.errors import StorageError
from voice.frames import TimedWord, join_words
from voice.store import CallNotFoundError, Store
from voice.store.migrate import alembic_config, head_revision
from voice.store.tables import Base
from voice.transcript import CallTranscript, EntityMention, Segment

pytestmark = pytest.mark.e2e


@pytest.fixture
def store(database_url: str):
    opened = Store.open(database_url)
    yield opened
    opened.close()


def _scalar(store: Store, sql: str, **params: object) -> object:
    with store.engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def test_open_migrates_to_head_and_tables_match_models(store: Store) -> None:
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
        tables = set(inspect(connection).get_table_names())
        assert {"calls", "speakers", "segments", "entities", "alembic_version"} <= tables
        # The shipped revisions create exactly what the models declare: no drift.
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
        assert diff == []


def test_transcript_round_trips_to_an_equal_object(
    store: Store, sample_transcript: CallTranscript
) -> None:
    original = copy.deepcopy(sample_transcript)
    store.save_transcript(sample_transcript, source="/calls/SNG0696.wav")

    loaded = store.get_transcript("SNG0696-like")
    assert loaded == original
    assert loaded.segments[3].text == "It's 370 318 0482 & my e-mail is jose@example.com"
    assert loaded.segments[2].text.endswith("José?")
    assert loaded.options["asr"] == {"model": "whisper-base", "beam_size": 5}


def test_tables_hold_a_queryable_copy(store: Store, sample_transcript: CallTranscript) -> None:
    store.save_transcript(sample_transcript, source="/calls/SNG0696.wav")
    with store.engine.connect() as connection:
        call = connection.execute(
            text("SELECT call_id, source, status, sample_rate, channels, duration FROM calls")
        ).one()
        segments = connection.execute(
            text(
                "SELECT s.seq, s.start_sec, s.end_sec, s.speaker, s.role, s.text FROM segments s "
                "JOIN calls c ON c.id = s.call_pk ORDER BY s.seq"
            )
        ).all()
        speakers = connection.execute(
            text("SELECT speaker, role, channel FROM speakers ORDER BY speaker")
        ).all()
        phone = connection.execute(
            text("SELECT segment, text, value FROM entities WHERE label = 'PHONE'")
        ).one()
    assert tuple(call) == ("SNG0696-like", "/calls/SNG0696.wav", "done", 8000, 2, 33.7)
    assert [tuple(s) for s in speakers] == [
        ("SPEAKER_00", "agent", 0),
        ("SPEAKER_01", "customer", 1),
    ]
    assert [s.seq for s in segments] == [0, 1, 2, 3, 4, 5]
    assert segments[1].role == "customer" and segments[1].start_sec == pytest.approx(4.1)
    assert segments[1].text == "I'm looking for a taxi from Wagga to the theater."
    assert tuple(phone) == (3, "370 318 0482", "3703180482")


def test_the_segments_table_keeps_attached_word_pieces(
    store: Store, sample_transcript: CallTranscript
) -> None:
    """An attached piece (".m." of "7 p.m.") is marked in the table's words as in the JSON, so
    an analyst rejoining the words gets the segment's text, not "7 p .m."."""
    segment = sample_transcript.segments[1]
    segment.words = [TimedWord("At", 4.1, 4.3), TimedWord("7", 4.3, 4.5),
                     TimedWord("p", 4.5, 4.6), TimedWord(".m.", 4.6, 4.8, leading_space=False)]  # fmt: skip
    segment.text = join_words(segment.words)
    store.save_transcript(sample_transcript, source="/calls/SNG0696.wav")
    stored = _scalar(store, "SELECT words FROM segments WHERE seq = 1")
    stored = json.loads(stored) if isinstance(stored, str) else stored  # PostgreSQL parses JSON
    assert [w.get("leading_space", True) for w in stored] == [True, True, True, False]
    rejoined = join_words(TimedWord(**w) for w in stored)
    assert rejoined == segment.text == "At 7 p.m."


def test_save_is_an_idempotent_upsert(store: Store, sample_transcript: CallTranscript) -> None:
    store.save_transcript(sample_transcript, source="/calls/SNG0696.wav")
    store.save_transcript(sample_transcript)
    assert _scalar(store, "SELECT count(*) FROM calls") == 1
    assert _scalar(store, "SELECT count(*) FROM segments") == 6
    assert _scalar(store, "SELECT count(*) FROM entities") == 3

    # A reprocessed call replaces the old rows; the source given earlier is kept.
    revised = copy.deepcopy(sample_transcript)
    revised.segments = revised.segments[:2] + [
        Segment(2, 8.0, 9.5, "SPEAKER_00", "Sure.", "agent", 0)
    ]
    revised.entities = [EntityMention("GPE", "Wagga", 1, 28, 33, "Wagga")]
    store.save_transcript(revised)

    assert store.get_transcript("SNG0696-like") == revised
    assert _scalar(store, "SELECT count(*) FROM segments") == 3
    assert _scalar(store, "SELECT text FROM segments WHERE seq = 2") == "Sure."
    assert _scalar(store, "SELECT label FROM entities") == "GPE"
    assert _scalar(store, "SELECT source FROM calls") == "/calls/SNG0696.wav"


def test_list_calls_orders_filters_and_counts(
    store: Store, sample_transcript: CallTranscript
) -> None:
    for call_id in ("call-a", "call-b", "call-c"):
        transcript = copy.deepcopy(sample_transcript)
        transcript.call_id = call_id
        store.save_transcript(transcript, source=f"/calls/{call_id}.wav")
    store.record_failure(None, "AudioDecodeError: truncated file", source="/calls/broken.mp3")

    calls = store.list_calls()
    assert [c.call_id for c in calls] == ["broken", "call-c", "call-b", "call-a"]
    assert calls[1].segment_count == 6 and calls[1].duration == pytest.approx(33.7)
    assert calls[1].status == "done" and calls[1].error is None
    assert calls[0].status == "failed" and calls[0].segment_count == 0
    assert calls[0].error == "AudioDecodeError: truncated file"
    assert calls[0].source == "/calls/broken.mp3"
    assert calls[0].created_at.tzinfo is not None
    assert [c.call_id for c in store.list_calls(status="failed")] == ["broken"]
    assert [c.call_id for c in store.list_calls(status="done", limit=2)] == ["call-c", "call-b"]
    assert [c.call_id for c in store.list_calls(limit=2, offset=2)] == ["call-b", "call-a"]


def test_failure_keeps_the_last_good_transcript(
    store: Store, sample_transcript: CallTranscript
) -> None:
    store.save_transcript(sample_transcript)
    assert store.record_failure("SNG0696-like", "diarization crashed") == "SNG0696-like"
    [summary] = store.list_calls()
    assert (summary.status, summary.error) == ("failed", "diarization crashed")
    assert store.get_transcript("SNG0696-like") == sample_transcript

    store.save_transcript(sample_transcript)
    [summary] = store.list_calls()
    assert (summary.status, summary.error) == ("done", None)


def test_missing_transcripts_raise_a_typed_error(store: Store) -> None:
    with pytest.raises(CallNotFoundError, match="no transcript stored for call 'nope'"):
        store.get_transcript("nope")
    store.record_failure("bad", "ffmpeg could not decode")
    with pytest.raises(CallNotFoundError, match="it failed: ffmpeg could not decode") as info:
        store.get_transcript("bad")
    assert info.value.retryable is False and info.value.hint


def test_concurrent_saves_of_one_new_call_leave_one_row(
    database_url: str, sample_transcript: CallTranscript
) -> None:
    Store.open(database_url).close()  # migrate once, so the writers race on the insert only
    stores = [Store.open(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def save(store: Store) -> None:
        try:
            barrier.wait()
            store.save_transcript(sample_transcript)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _scalar(stores[0], "SELECT count(*) FROM calls") == 1
    assert _scalar(stores[0], "SELECT count(*) FROM segments") == 6
    for store in stores:
        store.close()


def test_two_first_outcomes_of_a_call_at_once_both_succeed(database_url: str) -> None:
    """A CRM posting a call's outcome twice at once: one insert lost the race on the unique
    call key and the CRM got a 500; the loser now updates the winner's row."""
    from voice.store.live import LiveCallStore
    from voice.store.qa import CallOutcome, QaStore

    stores = [Store.open(database_url) for _ in range(2)]
    errors: list[BaseException] = []
    try:
        for race in range(12):
            LiveCallStore(stores[0]).start_call(f"r{race}", tenant="t", agent_id="a", source="test")
            barrier = threading.Barrier(len(stores))

            def post(store: Store, value: float, call_id: str = f"r{race}",
                     barrier: threading.Barrier = barrier) -> None:
                try:
                    barrier.wait()
                    QaStore(store).set_outcome(call_id, CallOutcome(True, value, "sale", "crm"))
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=post, args=(s, float(i))) for i, s in enumerate(stores)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert errors == []
        assert _scalar(stores[0], "SELECT count(*) FROM call_outcomes") == 12
    finally:
        for store in stores:
            store.close()


def test_a_creation_time_with_an_offset_is_stored_as_the_same_instant(
    store: Store, sample_transcript: CallTranscript
) -> None:
    """SQLite drops the offset: 10:00+02:00 was kept as 10:00 UTC there (08:00 on PostgreSQL),
    moving retention cut-offs and QA day filters by the offset."""
    import dataclasses
    from datetime import UTC, datetime

    from voice.store.feedback import FeedbackStore

    store.save_transcript(dataclasses.replace(sample_transcript, created_at="2026-01-01T10:00:00+02:00"))
    [summary] = store.list_calls()
    assert summary.created_at == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    FeedbackStore(store).record_many([{"suggestion_id": "s1", "call_id": sample_transcript.call_id,
                                       "event": "shown", "text": "Hello", "created_at": "2026-01-01T10:00:00+02:00"}])
    [record] = FeedbackStore(store).records()
    assert datetime.fromisoformat(record["created_at"]) == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_reopening_keeps_data_and_downgrade_upgrade_cycle_works(
    database_url: str, sample_transcript: CallTranscript
) -> None:
    with Store.open(database_url) as store:
        store.save_transcript(sample_transcript)
    with Store.open(database_url) as store:
        assert store.get_transcript("SNG0696-like") == sample_transcript
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        with store.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    with Store.open(database_url) as store:
        assert store.list_calls() == []


def test_database_from_a_newer_release_is_refused(database_url: str) -> None:
    Store.open(database_url).close()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="schema revision unknown") as info:
        Store.open(database_url)
    assert info.value.retryable is False
    assert "upgrade nextline" in (info.value.hint or "")


def test_unreachable_postgres_raises_storage_error_with_hint() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match=f"127.0.0.1:{port}") as info:
        Store.open(f"postgresql+psycopg://agent:secret@127.0.0.1:{port}/nextline")
    assert info.value.retryable is True
    assert "is running" in (info.value.hint or "")
    assert "secret" not in str(info.value)


def test_bad_urls_raise_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot use database URL") as info:
        Store.open("not a url")
    assert "sqlite:///" in (info.value.hint or "")
