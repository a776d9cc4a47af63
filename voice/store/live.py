"""Storage of live calls: the call row at start, each final turn as it happens, the transcript at end.

Committed turns are written as they happen, so a crash mid-call loses at most the open turn;
at call end the full transcript (the batch JSON schema) replaces the call's segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from voice.store.store import CallNotFoundError, Store
from voice.store.tables import CallRow
from voice.store.tables_live import LiveTurnRow


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

    def end_call(self, call_id: str, *, duration: float, error: str | None = None) -> None:
        """Mark the call ended (its transcript is saved with ``Store.save_transcript``); ``error``:
        why it ended abnormally (a protocol error of the far end), kept with what it said."""
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            if row is not None:
                now = _now()
                row.ended_at, row.updated_at, row.duration = now, now, duration
                if row.status == "active":
                    row.status = "done" if row.transcript is not None else "failed"
                    row.error = None if row.transcript is not None else "call ended before a transcript was stored"
                if error is not None:
                    row.error = error

    def status(self, call_id: str) -> str | None:
        """The call's status, or None when there is no such call."""
        with self.store.session() as session:
            return session.scalar(select(CallRow.status).where(CallRow.call_id == call_id))

    def attach_recovered_audio(self, call_id: str, path: str) -> None:
        """Record the recording assembled from an interrupted call's spool (QA plays it, erasure
        deletes it). Only an ``interrupted`` call takes it.

        Raises:
            CallNotFoundError: the call is gone or no longer interrupted (the spool is then kept).
        """
        with self.store.session() as session:
            row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).one_or_none()
            if row is None or row.status != "interrupted":
                raise CallNotFoundError(f"no interrupted call {call_id!r}", hint="its spool is kept")
            row.audio_path, row.updated_at = path, _now()

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


def _info(row: CallRow) -> CallInfo:
    outcome = (row.options or {}).get("outcome")
    return CallInfo(row.call_id, row.kind, row.status, row.tenant, row.agent_id, row.source, row.started_at,
                    row.ended_at, row.duration, outcome)
