"""A live call that ends while the database is unavailable keeps its transcript: the call-end save
waits in ``data_dir/pending/`` and the heartbeat round stores it once the database is back, before
its orphan sweep, so the call ends ``done`` (not ``interrupted``) with its transcript and recording."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from tests.server.harness import make_services
from voice.errors import StorageError
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame, TranscriptFinalFrame
from voice.live.services import LiveServices
from voice.processor import Pipeline
from voice.processors.recorder import CallRecorder
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store, retention
from voice.store import live as live_module
from voice.store.live import LiveCallStore, pending_save_path, replay_pending_saves
from voice.store.retention import INTERRUPTED_ERROR, ORPHAN_AFTER, CallEraser
from voice.store.tables import CallRow

pytestmark = pytest.mark.unit

STARTED = CallStartedFrame(call_id="CA-down@pbx.example", tenant="globex", agent_id="alice", source="twilio",
                           legs={"inbound": "customer", "outbound": "agent"})
PENDING_NAME = pending_save_path(Path("."), STARTED.call_id).name  # CA-down_pbx.example-<hash>.json


class Outage:
    """The store's database going away and coming back: every transaction fails as an unreachable
    server does (a retryable StorageError) while ``down``."""

    def __init__(self, store: Store) -> None:
        self.down = False
        self._real = store.session
        store.session = self._session  # type: ignore[method-assign]

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        if self.down:
            raise StorageError("database postgresql://app@127.0.0.1/postgres: connection refused", hint="retry")
        with self._real() as session:
            yield session


def _final(index: int, text: str) -> TranscriptFinalFrame:
    start = float(index * 3)
    return TranscriptFinalFrame(turn_id=f"inbound-{index}", leg="inbound", text=text, words=[], start=start,
                                end=start + 2, audio_time=start + 2, role="customer", speaker="inbound")


def _call(services: LiveServices, outage: Outage, *, ended: bool) -> None:
    """A call with audio and two turns; the database goes down after its start, before its end
    (``ended``: it hangs up; otherwise it is cut off at shutdown, as on SIGTERM)."""

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = CallRecorder(hub=services.hub, registry=services.registry, live_store=services.live_store,
                                    store=services.store, executor=executor,
                                    audio_dir=Path(services.config.data_dir) / "audio", model_name="tiny.en",
                                    pending_dir=services.pending_dir)
            pipeline = Pipeline([recorder])
            await pipeline.process_frame(STARTED)
            await asyncio.gather(*recorder._db_tasks)  # the row exists, then the database goes
            outage.down = True
            tone = (np.sin(np.arange(8000 * 5) / 3) * 8000).astype(np.int16)
            for start in range(0, len(tone), 160):
                await pipeline.process_frame(AudioFrame(pcm=tone[start:start + 160], sample_rate=8000,
                                                        leg="inbound", pts=start / 8000))
            for frame in (_final(0, "my card was charged twice"), _final(1, "can you refund it")):
                await pipeline.process_frame(frame)
            if ended:
                await pipeline.process_frame(CallEndedFrame(call_id=STARTED.call_id, audio_time=5.0))
            await pipeline.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _row(store: Store) -> dict[str, Any]:
    with store.session() as session:
        row = session.query(CallRow).filter_by(call_id=STARTED.call_id).one()
        return {"status": row.status, "error": row.error, "audio_path": row.audio_path,
                "agent_id": row.agent_id, "ended": row.ended_at is not None}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[LiveServices]:
    opened = make_services(tmp_path)
    yield opened
    opened.db_executor.shutdown()
    opened.store.close()


@pytest.mark.parametrize("ended", [True, False], ids=["hung-up", "cut-off-at-shutdown"])
def test_a_call_ending_while_the_database_is_down_is_stored_when_it_is_back(
        services: LiveServices, tmp_path: Path, ended: bool) -> None:
    outage = Outage(services.store)
    _call(services, outage, ended=ended)

    pending = tmp_path / "pending" / PENDING_NAME
    kept = json.loads(pending.read_text())
    assert kept["source"] == "twilio" and kept["owner"]["agent_id"] == "alice"
    assert kept["audio_path"] == str(tmp_path / "audio" / "CA-down_pbx.example.wav")
    assert "connection refused" in kept["failure"]
    assert [s["text"] for s in kept["transcript"]["segments"]] == ["my card was charged twice", "can you refund it"]
    assert not list((tmp_path / "pending").glob(".*.tmp"))  # written through a temporary file, then renamed

    asyncio.run(services._liveness_round())  # still down: the file waits
    assert pending.is_file() and services.storage_failure is not None

    outage.down = False
    asyncio.run(services._liveness_round())

    assert not pending.exists()
    assert _row(services.store) == {"status": "done", "error": None, "ended": True, "agent_id": "alice",
                                    "audio_path": str(tmp_path / "audio" / "CA-down_pbx.example.wav")}
    assert [s.text for s in services.store.get_transcript(STARTED.call_id).segments] == [
        "my card was charged twice", "can you refund it"]
    assert Path(str(_row(services.store)["audio_path"])).is_file()


def _stale_heartbeat(store: Store) -> None:
    """The call's heartbeat as the sweep finds it over 3 minutes after its process went quiet."""
    stale = datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)
    with store.session() as session:
        session.execute(update(CallRow).where(CallRow.call_id == STARTED.call_id).values(heartbeat_at=stale))


def test_the_heartbeat_stores_a_pending_save_before_its_sweep_could_call_the_call_interrupted(
        services: LiveServices, tmp_path: Path) -> None:
    """The database came back over 3 minutes after the call ended: the call's heartbeat is stale,
    so without the save the sweep would say its process stopped."""
    outage = Outage(services.store)
    _call(services, outage, ended=True)
    outage.down = False
    _stale_heartbeat(services.store)

    asyncio.run(services._liveness_round())

    assert _row(services.store)["status"] == "done"
    assert not (tmp_path / "pending" / PENDING_NAME).exists()


def test_a_pending_save_the_database_refuses_stays_and_its_call_is_not_swept(
        services: LiveServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(services.store)
    _call(services, outage, ended=True)
    outage.down = False
    _stale_heartbeat(services.store)
    refused = StorageError("database: value too long", hint="the database refused the data")
    refused.retryable = False

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise refused

    monkeypatch.setattr(services.store, "save_transcript", refuse)
    for _ in range(3):
        asyncio.run(services._liveness_round())

    assert (tmp_path / "pending" / PENDING_NAME).is_file()
    assert _row(services.store)["status"] == "active"  # not "interrupted": its process did not stop
    assert _row(services.store)["error"] != INTERRUPTED_ERROR
    assert services.storage_failure is None and services.pending_saves == 1
    assert sum("could not store the pending call-end save" in r.message for r in caplog.records) == 1


def test_a_save_that_never_reached_the_database_creates_the_call(tmp_path: Path) -> None:
    """The database was down for the whole call: not even its row exists until the save is stored."""
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    outage = Outage(store)
    outage.down = True

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = CallRecorder(hub=EventHub(), registry=CallRegistry(), live_store=LiveCallStore(store),
                                    store=store, executor=executor, audio_dir=None, model_name="tiny.en",
                                    pending_dir=tmp_path / "pending")
            pipeline = Pipeline([recorder])
            for frame in (STARTED, _final(0, "hello"), CallEndedFrame(call_id=STARTED.call_id, audio_time=3.0)):
                await pipeline.process_frame(frame)

    asyncio.run(asyncio.wait_for(scenario(), 30))
    with pytest.raises(StorageError):
        replay_pending_saves(LiveCallStore(store), tmp_path / "pending")
    outage.down = False

    assert replay_pending_saves(LiveCallStore(store), tmp_path / "pending") == [STARTED.call_id]
    assert _row(store) | {"audio_path": None} == {"status": "done", "error": None, "ended": True,
                                                  "agent_id": "alice", "audio_path": None}
    assert _row(store)["audio_path"] == "live:twilio"
    assert list((tmp_path / "pending").iterdir()) == []
    store.close()


def test_a_server_starting_stores_the_saves_a_stopped_one_left(services: LiveServices, tmp_path: Path) -> None:
    """SIGTERM with the database down: the saves wait on disk; the next start stores them before serving."""
    from starlette.testclient import TestClient

    from tests.server.harness import new_app

    outage = Outage(services.store)
    _call(services, outage, ended=False)
    outage.down = False
    assert (tmp_path / "pending" / PENDING_NAME).is_file()

    with TestClient(new_app(services)) as client:
        assert _row(services.store)["status"] == "done"
        assert client.get("/healthz").json()["status"] == "ok"
    assert not (tmp_path / "pending" / PENDING_NAME).exists()


def _stale_heartbeat(store: Store) -> None:
    """The call ended long ago as the sweep sees it: its heartbeat is older than ORPHAN_AFTER."""
    stale = datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)
    with store.session() as session:
        session.execute(update(CallRow).where(CallRow.call_id == STARTED.call_id).values(heartbeat_at=stale))


class _HeldSave:
    """``Store.save_transcript`` held until ``go``: the replay has read its file and is storing it."""

    def __init__(self, store: Store) -> None:
        self.entered, self.go = threading.Event(), threading.Event()
        self._real = store.save_transcript
        store.save_transcript = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.entered.set()
        assert self.go.wait(10)
        self._real(*args, **kwargs)


class _AnnouncedLock:
    """The eraser's side of the pending-save lock, saying when the eraser reaches it."""

    def __init__(self) -> None:
        self.reached = threading.Event()

    def __enter__(self) -> None:
        self.reached.set()
        live_module.PENDING_LOCK.acquire()

    def __exit__(self, *_exc: object) -> None:
        live_module.PENDING_LOCK.release()


def _erased(store: Store) -> bool:
    with store.session() as session:
        return session.query(CallRow).filter_by(call_id=STARTED.call_id).one_or_none() is None


def test_an_erasure_while_the_replay_stores_the_save_waits_for_it_and_the_call_stays_erased(
        services: LiveServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DELETE /api/calls/{id} (a thread of its own) while the heartbeat stores the call's save:
    the replay had read the file; without the lock its store brought the erased call back."""
    outage = Outage(services.store)
    _call(services, outage, ended=True)
    outage.down = False
    _stale_heartbeat(services.store)  # the call is erasable (not in progress)
    held, lock = _HeldSave(services.store), _AnnouncedLock()
    monkeypatch.setattr(retention, "PENDING_LOCK", lock)
    replayed: list[list[str]] = []
    replay = threading.Thread(target=lambda: replayed.append(
        replay_pending_saves(services.live_store, services.pending_dir)))
    replay.start()
    assert held.entered.wait(10)
    eraser = CallEraser(services.store, tmp_path)
    reports: list[Any] = []
    erase = threading.Thread(target=lambda: reports.append(eraser.erase(eraser.find(call_ids=[STARTED.call_id]))))
    erase.start()
    assert lock.reached.wait(10)  # the eraser waits for the replay's file to be done
    held.go.set()
    replay.join(10)
    erase.join(10)

    assert replayed == [[STARTED.call_id]] and reports[0].calls == [STARTED.call_id]
    assert _erased(services.store)
    assert not (tmp_path / "pending" / PENDING_NAME).exists()
    assert not (tmp_path / "audio" / "CA-down_pbx.example.wav").exists()


def test_a_save_erased_by_another_process_while_it_was_stored_is_erased_again(
        services: LiveServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """``voice calls erase`` (another process: not this one's lock) deletes the file and the row
    while the replay stores the save: the replay finds its file gone and erases the call again."""
    outage = Outage(services.store)
    _call(services, outage, ended=True)
    outage.down = False
    _stale_heartbeat(services.store)
    held = _HeldSave(services.store)
    monkeypatch.setattr(retention, "PENDING_LOCK", threading.RLock())  # another process's lock
    replay = threading.Thread(target=lambda: replay_pending_saves(services.live_store, services.pending_dir))
    replay.start()
    assert held.entered.wait(10)
    eraser = CallEraser(services.store, tmp_path)
    report = eraser.erase(eraser.find(call_ids=[STARTED.call_id]))
    assert report.calls == [STARTED.call_id] and _erased(services.store)
    held.go.set()
    replay.join(10)

    assert _erased(services.store)  # not brought back by the replay's store
    assert not (tmp_path / "pending" / PENDING_NAME).exists()
    assert any("erased again" in r.message for r in caplog.records)


def test_a_save_the_database_refuses_for_good_fails_its_call_keeps_the_file_and_shows_in_healthz(
        services: LiveServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused (not retryable) and its call ended over ORPHAN_AFTER ago: the call is ``failed`` with
    why (not ``active`` for ever), the transcript stays on disk and is retried each round, and
    /healthz says ``degraded`` with the waiting save (200: a storage problem)."""
    from starlette.testclient import TestClient

    from tests.server.harness import new_app

    outage = Outage(services.store)
    _call(services, outage, ended=True)
    outage.down = False
    _stale_heartbeat(services.store)
    pending = tmp_path / "pending" / PENDING_NAME
    kept = json.loads(pending.read_text())
    kept["ended_at"] = (datetime.now(UTC) - ORPHAN_AFTER - timedelta(minutes=1)).isoformat()
    pending.write_text(json.dumps(kept))
    refused = StorageError("database: value too long for type character varying(64)", hint="refused")
    refused.retryable = False

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise refused

    real = services.store.save_transcript
    monkeypatch.setattr(services.store, "save_transcript", refuse)
    client = TestClient(new_app(services))  # no lifespan: the rounds are run by hand
    for _ in range(2):
        asyncio.run(services._liveness_round())

    row = _row(services.store)
    assert row["status"] == "failed" and "value too long" in str(row["error"]) and str(pending) in str(row["error"])
    assert pending.is_file() and services.pending_saves == 1
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "degraded"
    assert answer.json()["storage"]["pending_saves"] == 1 and answer.json()["storage"]["error"] is None

    monkeypatch.setattr(services.store, "save_transcript", real)  # the operator fixed the database
    asyncio.run(services._liveness_round())
    assert _row(services.store)["status"] == "done" and not pending.exists()
    assert client.get("/healthz").json()["status"] == "ok"
