"""Storage of live calls: the call row at start, each final turn as it happens, the transcript at end.

Committed turns are written as they happen, so a crash mid-call loses at most the open turn;
at call end the full transcript (the batch JSON schema) replaces the call's segments. A call-end
save the database refuses (unreachable, locked) is kept as a :class:`PendingSave` file in
``data_dir/pending/`` and stored by :func:`replay_pending_saves` once the database is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from voice.audio import safe_file_stem
from voice.errors import StorageError
from voice.store.store import CallNotFoundError, CallOwner, Store
from voice.store.tables import CallRow
from voice.store.tables_live import LiveTurnRow
from voice.transcript import CallTranscript

log = logging.getLogger(__name__)

PENDING_FOLDER = "pending"
"""Folder of ``data_dir`` that holds call-end saves waiting for the database."""
PENDING_LOCK = threading.RLock()
"""Held by :func:`replay_pending_saves` for each file (read, store, delete) and by
``voice.store.retention.CallEraser`` for each chunk it erases: within a process, an erasure never
lands between a replay's read of a save and its store (the call would come back). Across
processes the replay re-checks its file after storing (see :func:`replay_pending_saves`)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveTurn:
    """A finished turn of a live call."""

    turn_id: str
    leg: str
    role: str
    start: float
    end: float
    text: str
    words: list[dict[str, Any]]
    speaker: str | None = None
    intent: str | None = None
    entities: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class CallInfo:
    """What lists of calls show (QA, supervisor, the agent's own calls)."""

    call_id: str
    kind: str
    status: str
    tenant: str | None
    agent_id: str | None
    source: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None
    outcome: dict[str, Any] | None


class LiveCallStore:
    """Live-call writes and call listings on top of a :class:`Store` (one transaction each)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start_call(self, call_id: str, *, tenant: str | None, agent_id: str | None, source: str,
                   metadata: dict[str, Any] | None = None) -> None:
        """Create (or reset) the call row of a live call with status ``active``."""
        now = _now()
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            if row is None:
                row = CallRow(call_id=call_id, created_at=now, options={})
                session.add(row)
            row.kind, row.status, row.tenant, row.agent_id = "live", "active", tenant, agent_id
            row.source, row.started_at, row.updated_at = source, now, now
            row.options = {"metadata": metadata or {}}

    def add_turn(self, call_id: str, turn: LiveTurn) -> None:
        """Write a final turn (replacing an earlier write of the same turn id)."""
        with self.store.session() as session:
            call_pk = self._pk(session, call_id)
            row = session.scalars(select(LiveTurnRow).where(
                LiveTurnRow.call_pk == call_pk, LiveTurnRow.turn_id == turn.turn_id)).one_or_none()
            if row is None:
                row = LiveTurnRow(call_pk=call_pk, turn_id=turn.turn_id, created_at=_now())
                session.add(row)
            row.leg, row.role, row.speaker = turn.leg, turn.role, turn.speaker
            row.start_sec, row.end_sec, row.text, row.words = turn.start, turn.end, turn.text, turn.words
            row.intent, row.entities = turn.intent, turn.entities or []

    def set_turn_nlu(self, call_id: str, turn_id: str, intent: str | None, entities: list[dict[str, Any]]) -> None:
        """Attach intent and entities to a stored turn."""
        with self.store.session() as session:
            call_pk = self._pk(session, call_id)
            row = session.scalars(select(LiveTurnRow).where(
                LiveTurnRow.call_pk == call_pk, LiveTurnRow.turn_id == turn_id)).one_or_none()
            if row is not None:
                row.intent, row.entities = intent, entities

    def end_call(self, call_id: str, *, duration: float, error: str | None = None,
                 ended_at: datetime | None = None) -> None:
        """Mark the call ended (its transcript is saved with ``Store.save_transcript``); ``error``:
        why it ended abnormally (a protocol error of the far end), kept with what it said;
        ``ended_at``: when it ended, if not now (a save replayed after a database outage)."""
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            if row is not None:
                now = _now()
                row.ended_at, row.updated_at, row.duration = ended_at or now, now, duration
                if row.status == "active":
                    row.status = "done" if row.transcript is not None else "failed"
                    row.error = None if row.transcript is not None else "call ended before a transcript was stored"
                if error is not None:
                    row.error = error

    def status(self, call_id: str) -> str | None:
        """The call's status, or None when there is no such call."""
        with self.store.session() as session:
            return session.scalar(select(CallRow.status).where(CallRow.call_id == call_id))

    def spool_status(self, call_id: str) -> str | None:
        """The call's status as the recovery of spooled audio reads it: ``interrupted`` also for a
        ``done`` live call without its recording (its WAV could not be written at the call's end,
        e.g. a full disk, and its part files were kept); None when there is no such call."""
        with self.store.session() as session:
            row = session.execute(select(CallRow.status, CallRow.kind, CallRow.audio_path)
                                  .where(CallRow.call_id == call_id)).one_or_none()
        if row is None:
            return None
        return "interrupted" if _lacks_recording(row.status, row.kind, row.audio_path) else str(row.status)

    def attach_recovered_audio(self, call_id: str, path: str) -> None:
        """Record the recording assembled from a call's spool (QA plays it, erasure deletes it).
        Only an ``interrupted`` call takes it, or a ``done`` live call without its recording
        (:meth:`spool_status`), whose stored transcript then names the WAV too.

        Raises:
            CallNotFoundError: the call is gone, or neither (the spool is then kept).
        """
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            done_without = row is not None and (_lacks_recording(row.status, row.kind, row.audio_path)
                                                or (row.status == "done" and row.audio_path == path))
            if row is None or not (row.status == "interrupted" or done_without):
                raise CallNotFoundError(f"no interrupted call {call_id!r}", hint="its spool is kept")
            row.audio_path, row.updated_at = path, _now()
            if row.transcript is not None:  # a new dict: the JSON column sees the change
                row.transcript = {**row.transcript, "audio": {**row.transcript.get("audio", {}), "path": path}}

    def turns(self, call_id: str) -> list[LiveTurn]:
        """The stored turns of a call, in time order."""
        with self.store.session() as session:
            call_pk = self._pk(session, call_id)
            rows = session.scalars(select(LiveTurnRow).where(LiveTurnRow.call_pk == call_pk)
                                   .order_by(LiveTurnRow.start_sec)).all()
            return [LiveTurn(r.turn_id, r.leg, r.role, r.start_sec, r.end_sec, r.text, r.words, r.speaker,
                             r.intent, r.entities) for r in rows]

    def calls(self, *, agent_id: str | None = None, tenant: str | None = None, kind: str | None = None,
              since: datetime | None = None, until: datetime | None = None, limit: int = 200) -> list[CallInfo]:
        """Calls newest first, filtered by agent, tenant, kind and time."""
        query = select(CallRow).order_by(CallRow.created_at.desc(), CallRow.id.desc()).limit(limit)
        for column, value in ((CallRow.agent_id, agent_id), (CallRow.tenant, tenant), (CallRow.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(CallRow.created_at >= since)
        if until is not None:
            query = query.where(CallRow.created_at <= until)
        with self.store.session() as session:
            return [_info(row) for row in session.scalars(query).all()]

    def call(self, call_id: str) -> CallInfo:
        """One call's listing row.

        Raises:
            CallNotFoundError: there is no such call.
        """
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            if row is None:
                raise CallNotFoundError(f"no call {call_id!r}", hint="list calls with GET /api/calls")
            return _info(row)

    @staticmethod
    def _pk(session: Any, call_id: str) -> int:
        pk = session.scalar(select(CallRow.id).where(CallRow.call_id == call_id))
        if pk is None:
            raise CallNotFoundError(f"no call {call_id!r}", hint="start_call() must come first")
        return int(pk)


def _lacks_recording(status: str, kind: str | None, audio_path: str | None) -> bool:
    """A ``done`` live call whose recording is not on disk (``live:<source>``, NULL or a missing file)."""
    return (status == "done" and kind == "live"
            and (not audio_path or audio_path.startswith("live:") or not Path(audio_path).is_file()))


@dataclass(frozen=True)
class PendingSave:
    """A live call's call-end save that the database refused, kept on disk until it is stored."""

    transcript: CallTranscript
    """The whole transcript; its ``audio.path`` is the call's WAV (or ``live:<source>`` without one)."""
    source: str
    owner: CallOwner
    duration: float
    error: str | None
    """Why the call ended abnormally (as for :meth:`LiveCallStore.end_call`), not the save's failure."""
    ended_at: datetime
    failure: str = ""
    """Why the save failed (for the operator reading the file)."""

    @property
    def call_id(self) -> str:
        """The call's id."""
        return self.transcript.call_id

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON."""
        started = self.owner.started_at
        return {"format": 1, "call_id": self.call_id, "source": self.source,
                "audio_path": self.transcript.audio.path, "duration": self.duration, "error": self.error,
                "ended_at": self.ended_at.isoformat(), "failure": self.failure,
                "owner": {"kind": self.owner.kind, "tenant": self.owner.tenant, "agent_id": self.owner.agent_id,
                          "started_at": started.isoformat() if started else None},
                "transcript": self.transcript.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingSave:
        """Read back :meth:`to_dict`."""
        owner = data["owner"]
        started = owner.get("started_at")
        return cls(CallTranscript.from_dict(data["transcript"]), str(data["source"]),
                   CallOwner(owner.get("kind") or "live", owner.get("tenant"), owner.get("agent_id"),
                             datetime.fromisoformat(started) if started else None),
                   float(data["duration"]), data.get("error"), datetime.fromisoformat(data["ended_at"]),
                   str(data.get("failure") or ""))


def pending_save_path(folder: Path, call_id: str) -> Path:
    """Where a call's pending call-end save is kept: ``<folder>/<safe call id>-<hash>.json``.

    Why the hash (12 hex digits of the id's SHA-256): ids that differ only in characters
    :func:`safe_file_stem` replaces (``CA-1@pbx``, ``CA-1_pbx``) would share one file and
    overwrite each other's save. Readers take the call id from the file's content, never its name.
    """
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:12]
    return folder / f"{safe_file_stem(call_id)[:180]}-{digest}.json"


def write_pending_save(folder: Path, pending: PendingSave) -> Path:
    """Keep ``pending`` on disk, durably (a temporary file, fsync, rename); returns its path."""
    from voice.formats import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    path = pending_save_path(folder, pending.call_id)
    write_atomic(path, json.dumps(pending.to_dict(), ensure_ascii=False))
    return path


def pending_call_ids(folder: Path) -> list[str]:
    """The calls whose call-end save waits in ``folder`` (an unreadable file names none)."""
    ids = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            ids.append(str(json.loads(path.read_text(encoding="utf-8"))["call_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return ids


def replay_pending_saves(live_store: LiveCallStore, folder: Path, *, reported: set[str] | None = None,
                         refused_after: timedelta | None = None) -> list[str]:
    """Store the call-end saves waiting in ``folder`` and delete each file once stored; returns
    the ids of the calls stored. Blocking (database and file work): run it off the event loop.

    A call so stored ends ``done`` with its transcript and recording, as if the database had been
    there at its end, also when a sweep marked it ``interrupted`` meanwhile.

    A file that cannot be stored for another reason stays, is retried every round and is logged
    once (its name is added to ``reported``). Once its call ended over ``refused_after`` ago
    (default ``ORPHAN_AFTER``), its call, still ``active``, is marked ``failed`` with the reason
    (:data:`REFUSED_SAVE_ERROR`): visible in listings, and no longer spared by the orphan sweep.

    A file erased while its save was being stored (``voice calls erase``, another server: the
    in-process erasures wait on :data:`PENDING_LOCK`) is gone once the save is stored: the call
    it brought back is erased again, through ``CallEraser`` as any erasure.

    Raises:
        StorageError: the database is still unreachable (retryable); the files stay.
    """
    reported = set() if reported is None else reported
    stored = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with PENDING_LOCK:
            pending = _replay_one(live_store, path, reported, refused_after)
            if pending is None:
                continue
            if not path.exists():
                _erase_again(live_store, folder, pending.call_id)
                continue
            path.unlink(missing_ok=True)
        reported.discard(path.name)
        stored.append(pending.call_id)
        log.warning("stored the transcript of call %s, kept in %s while the database was unavailable",
                    pending.call_id, path)
    return stored


REFUSED_SAVE_ERROR = "the database refused the call-end save ({reason}); its transcript is kept in {path}"
"""The error of a call whose pending save the database keeps refusing (docs/storage.md)."""


def _replay_one(live_store: LiveCallStore, path: Path, reported: set[str],
                refused_after: timedelta | None) -> PendingSave | None:
    """Store one pending save; None when it could not be (kept for the next round)."""
    pending = None
    try:
        pending = PendingSave.from_dict(json.loads(path.read_text(encoding="utf-8")))
        live_store.store.save_transcript(pending.transcript, source=pending.source, owner=pending.owner)
        live_store.end_call(pending.call_id, duration=pending.duration, error=pending.error,
                            ended_at=pending.ended_at)
    except Exception as exc:  # noqa: BLE001 - one bad file must not keep the others waiting
        if isinstance(exc, StorageError) and exc.retryable:
            raise
        _report_once(reported, path, exc)
        if pending is not None:
            _fail_if_refused_long(live_store, pending, path, exc, refused_after)
        return None
    return pending


def _fail_if_refused_long(live_store: LiveCallStore, pending: PendingSave, path: Path, exc: Exception,
                          refused_after: timedelta | None) -> None:
    """Mark the still ``active`` call of a refused save ``failed`` once it ended ``refused_after`` ago."""
    if refused_after is None:
        from voice.store.retention import ORPHAN_AFTER

        refused_after = ORPHAN_AFTER
    if pending.ended_at > _now() - refused_after:
        return
    error = REFUSED_SAVE_ERROR.format(reason=f"{type(exc).__name__}: {exc}", path=path)
    try:
        with live_store.store.session() as session:
            session.execute(update(CallRow).where(CallRow.call_id == pending.call_id, CallRow.status == "active")
                            .values(status="failed", error=error, ended_at=pending.ended_at,
                                    updated_at=_now()))
    except Exception:  # noqa: BLE001 - the file stays; retried next round
        log.warning("could not mark call %s failed after its save was refused", pending.call_id, exc_info=True)


def _erase_again(live_store: LiveCallStore, folder: Path, call_id: str) -> None:
    """Erase a call whose pending save was erased while it was being stored (it came back)."""
    from voice.store.retention import CallEraser

    eraser = CallEraser(live_store.store, folder.parent)
    report = eraser.erase(eraser.find(call_ids=[call_id]))
    log.warning("call %s was erased while its pending save was being stored: erased again (%d calls)",
                call_id, len(report.calls))


def _report_once(reported: set[str], path: Path, exc: Exception) -> None:
    if path.name not in reported:
        reported.add(path.name)
        log.error("could not store the pending call-end save %s (kept; retried every heartbeat): %s: %s",
                  path, type(exc).__name__, exc)


def _info(row: CallRow) -> CallInfo:
    outcome = (row.options or {}).get("outcome")
    return CallInfo(row.call_id, row.kind, row.status, row.tenant, row.agent_id, row.source, row.started_at,
                    row.ended_at, row.duration, outcome)
