"""Calls a crashed server process left ``active``: heartbeats per call, and the sweep that marks the
orphans ``interrupted`` (keeping their turns and recovering their recordings) so they can be replayed,
erased and purged; on SQLite and PostgreSQL, and through a restarted server."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.server.harness import bundled_sample, make_services, new_app
from voice.audio import spool_files
from voice.processors.audio_spool import AudioSpool
from voice.store import Store
from voice.store.agents import AgentStore
from voice.store.live import LiveCallStore, LiveTurn
from voice.store.retention import ORPHAN_AFTER, CallEraser, interrupt_orphans, touch_calls
from voice.store.tables import CallRow

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _live_call(store: Store, call_id: str, *, heartbeat: datetime | None, started: datetime = NOW) -> None:
    """A live call in progress with one stored turn, last stamped at ``heartbeat``."""
    live = LiveCallStore(store)
    live.start_call(call_id, tenant="acme", agent_id="alice", source="twilio")
    live.add_turn(call_id, LiveTurn("t1", "inbound", "customer", 0.5, 2.0, "my card was charged twice", []))
    with store.session() as session:
        session.execute(update(CallRow).where(CallRow.call_id == call_id)
                        .values(heartbeat_at=heartbeat, started_at=started, created_at=started))


def _statuses(store: Store) -> dict[str, str]:
    return {c.call_id: c.status for c in LiveCallStore(store).calls()}


@pytest.fixture
def store(database_url: str):
    opened = Store.open(database_url)
    yield opened
    opened.close()


def test_a_new_live_call_row_has_a_heartbeat(store: Store) -> None:
    LiveCallStore(store).start_call("CA-new", tenant="acme", agent_id="alice", source="twilio")
    with store.session() as session:
        row = session.query(CallRow).filter_by(call_id="CA-new").one()
        assert row.heartbeat_at is not None


def test_only_calls_whose_process_stopped_heartbeating_are_interrupted(store: Store) -> None:
    _live_call(store, "CA-crashed", heartbeat=NOW - ORPHAN_AFTER - timedelta(seconds=1))
    _live_call(store, "CA-neighbour", heartbeat=NOW - timedelta(seconds=20))  # another live process's call
    _live_call(store, "CA-old-release", heartbeat=None, started=NOW - timedelta(minutes=30))
    _live_call(store, "CA-legacy-orphan", heartbeat=None, started=NOW - timedelta(days=2))

    assert sorted(interrupt_orphans(store, now=NOW)) == ["CA-crashed", "CA-legacy-orphan"]

    assert _statuses(store) == {"CA-crashed": "interrupted", "CA-neighbour": "active",
                                "CA-old-release": "active", "CA-legacy-orphan": "interrupted"}
    assert [t.text for t in LiveCallStore(store).turns("CA-crashed")] == ["my card was charged twice"]
    assert interrupt_orphans(store, now=NOW) == []  # a second sweep finds nothing more


def test_an_orphaned_call_can_be_erased_but_a_running_one_cannot(store: Store, tmp_path: Path) -> None:
    stale = datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)
    _live_call(store, "CA-crashed", heartbeat=stale, started=stale)
    _live_call(store, "CA-running", heartbeat=datetime.now(UTC), started=stale)
    eraser = CallEraser(store, tmp_path)
    (tmp_path / "audio").mkdir()
    crashed_part = tmp_path / "audio" / "CA-crashed.inbound.8000hz.part.pcm"  # the dead recorder's spool
    running_part = tmp_path / "audio" / "CA-running.inbound.8000hz.part.pcm"
    for part in (crashed_part, running_part):
        part.write_bytes(bytes(3200))

    # Even before any server swept it (the CLI erases with no server running).
    report = eraser.erase(eraser.find(created_before=datetime.now(UTC)))

    assert report.calls == ["CA-crashed"]
    assert report.refused_active == ["CA-running"]
    assert report.files == [str(crashed_part)] and not crashed_part.exists()
    assert running_part.exists()


def test_the_carrying_process_stamps_its_calls_and_takes_back_one_marked_interrupted(store: Store) -> None:
    _live_call(store, "CA-stalled", heartbeat=NOW - ORPHAN_AFTER - timedelta(seconds=1))
    _live_call(store, "CA-other", heartbeat=NOW - ORPHAN_AFTER - timedelta(seconds=1))
    interrupt_orphans(store, now=NOW)  # a neighbour swept while this process's loop was stalled

    assert touch_calls(store, ["CA-stalled"], now=NOW + timedelta(seconds=1)) == ["CA-stalled"]

    assert _statuses(store) == {"CA-stalled": "active", "CA-other": "interrupted"}
    assert interrupt_orphans(store, now=NOW + timedelta(seconds=2)) == []


def test_a_restarted_server_lets_a_call_left_by_a_crash_be_erased(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    stale = datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)
    _live_call(services.store, "CA-crashed", heartbeat=stale, started=stale)
    _, token = AgentStore(services.store).add("sue", role="supervisor", tenant=None)

    with TestClient(new_app(services)) as client:
        assert _statuses(services.store)["CA-crashed"] == "interrupted"  # swept at start-up
        answer = client.delete("/api/calls/CA-crashed", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["erased"] == ["CA-crashed"]


def test_a_restarted_server_recovers_the_recording_of_a_call_left_by_a_crash(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    stale = datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)
    _live_call(services.store, "CA-crashed", heartbeat=stale, started=stale)
    pcm, rate = sf.read(bundled_sample()[0], dtype="int16")
    phone = soxr.resample(pcm[: 5 * rate], rate, 8000)  # 5 s of a phone leg
    with ThreadPoolExecutor(1) as writer:  # the dead process's recorder, up to its last flush
        spool = AudioSpool(tmp_path / "audio", "CA-crashed", writer, leg_order=["inbound", "outbound"])
        for start in range(0, len(phone), 160):
            spool.push("inbound", start / 8000, phone[start:start + 160], 8000)
    left = spool_files(tmp_path / "audio", "CA-crashed")
    for path in left:
        os.utime(path, (stale.timestamp(), stale.timestamp()))
    _, token = AgentStore(services.store).add("sue", role="supervisor", tenant=None)
    auth = {"Authorization": f"Bearer {token}"}

    with TestClient(new_app(services)) as client:
        audio = client.get("/api/calls/CA-crashed/audio", headers=auth)
        assert audio.status_code == 200, audio.text
        played, played_rate = sf.read(io.BytesIO(audio.content), dtype="float32")
        assert [p.exists() for p in left] == [False, False]
        erased = client.delete("/api/calls/CA-crashed", headers=auth)

    # At least 4 s were flushed (a write is due every 2 s); what was still in memory died with the process.
    assert played_rate == 16000 and 4 * 16000 <= len(played) <= 5 * 16000
    heard = soxr.resample(phone.astype(np.float32) / 32768, 8000, 16000)
    assert np.abs(played[:-100] - heard[: len(played) - 100]).max() < 1e-3
    assert erased.status_code == 200 and erased.json()["erased"] == ["CA-crashed"]
    assert list((tmp_path / "audio").iterdir()) == []
