"""Feedback and A/B storage of the suggestion engine, on the shared ``Store``.

``FeedbackStore(store)`` writes feedback events (the dicts of ``suggest.feedback.FeedbackRecord``
plus the console's ``rank`` and ``elapsed_ms``), reads them back for ``voice train --feedback``,
records A/B assignments, and joins feedback with call outcomes for the A/B report.

A feedback row that SQLite holds but cannot give back (a ``context`` that is not JSON, a
``created_at`` that is not a time: written by hand or by another tool; PostgreSQL's typed
columns refuse both) is skipped and described by :meth:`FeedbackStore.records` when the caller
asks, so one damaged row does not stop a training run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session

from voice.errors import StorageError
from voice.store.store import Store, _parse_created_at
from voice.store.tables import CallRow
from voice.store.tables_console import CallOutcomeRow
from voice.store.tables_feedback import ABAssignmentRow, SuggestionFeedbackRow

FEEDBACK_EVENTS = ("shown", "accepted", "dismissed", "edited")
ACTION_EVENTS = ("accepted", "dismissed", "edited")
_COLUMNS = (
    "suggestion_id",
    "call_id",
    "event",
    "text",
    "action",
    "model_version",
    "arm",
    "tenant",
    "agent_id",
    "turn_index",
    "rank",
    "edited_text",
    "elapsed_ms",
    "context",
)


class FeedbackStore:
    """Feedback events and A/B assignments; one transaction per method."""

    def __init__(self, store: Store) -> None:
        """Bind to an open store (its migrations include revision 0004)."""
        self.store = store

    def record_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert feedback events; returns how many.

        Raises:
            StorageError: an event is not shown/accepted/dismissed/edited, or the database failed.
        """
        rows = [_row(record) for record in records]
        with self.store.session() as session:  # database errors arrive as StorageError with a hint
            session.add_all(rows)
        return len(rows)

    def records(
        self, *, tenant: str | None = None, since: datetime | None = None, damaged: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Feedback events as dicts (``suggest.feedback.feedback_from_dict`` reads them).

        A damaged row (see the module docstring) is left out and described in ``damaged``
        (``"<suggestion id> (row <id>): <what is wrong>"``) when that list is given.

        Raises:
            StorageError: a damaged row and no ``damaged`` list, or the database failed.
        """
        table = SuggestionFeedbackRow
        raw = {"context": type_coerce(table.context, Text), "created_at": type_coerce(table.created_at, Text)}
        columns = [raw.get(key, getattr(table, key)).label(key) for key in (*_COLUMNS, "created_at", "id")]
        query = select(*columns).order_by(table.created_at, table.id)  # values as stored: parsed per row below
        if tenant is not None:
            query = query.where(table.tenant == tenant)
        if since is not None:
            query = query.where(table.created_at >= since)
        with self.store.session() as session:
            rows = [row._mapping for row in session.execute(query)]
        found = []
        for row in rows:
            try:
                found.append(_stored_dict(row))
            except ValueError as error:
                where = f"{row['suggestion_id']} (row {row['id']}): {error}"
                if damaged is None:
                    raise StorageError(f"damaged feedback row {where}",
                                       hint="fix or delete that row of suggestion_feedback") from error
                damaged.append(where)
        return found

    def suggestions(self, call_id: str, suggestion_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """suggestion id -> its oldest feedback event on this call (text, action, model version, arm,
        tenant, turn index, context, rank as they were checked when it came); ids without any are absent.

        The feedback route resolves a late action with it once the call has left the server's
        in-memory event history.
        """
        ids = sorted(set(suggestion_ids))
        if not ids:
            return {}
        query = (
            select(SuggestionFeedbackRow)
            .where(
                SuggestionFeedbackRow.call_id == call_id,
                SuggestionFeedbackRow.suggestion_id.in_(ids),
            )
            .order_by(SuggestionFeedbackRow.created_at, SuggestionFeedbackRow.id)
        )
        found: dict[str, dict[str, Any]] = {}
        with self.store.session() as session:
            for row in session.scalars(query):
                found.setdefault(row.suggestion_id, _as_dict(row))
        return found

    def shown(self, call_id: str, suggestion_ids: Iterable[str]) -> set[str]:
        """Of ``suggestion_ids``, those whose ``shown`` is already stored for this call."""
        return self._having(call_id, suggestion_ids, ("shown",))

    def acted(self, call_id: str, suggestion_ids: Iterable[str]) -> set[str]:
        """Of ``suggestion_ids``, those with an action (accepted, dismissed, edited) stored for this call."""
        return self._having(call_id, suggestion_ids, ACTION_EVENTS)

    def _having(self, call_id: str, suggestion_ids: Iterable[str], events: Iterable[str]) -> set[str]:
        ids = sorted(set(suggestion_ids))
        if not ids:
            return set()
        query = select(SuggestionFeedbackRow.suggestion_id).where(
            SuggestionFeedbackRow.call_id == call_id,
            SuggestionFeedbackRow.event.in_(list(events)),
            SuggestionFeedbackRow.suggestion_id.in_(ids),
        )
        with self.store.session() as session:
            return set(session.scalars(query))

    def assign(self, experiment: str, unit: str, unit_id: str, arm: str, model: str) -> str:
        """Record an assignment once; returns the stored arm (the first one recorded wins)."""
        try:
            with self.store.session() as session:
                stored = self._assigned(session, experiment, unit_id)
                if stored is not None:
                    return stored
                session.add(
                    ABAssignmentRow(
                        experiment=experiment,
                        unit=unit,
                        unit_id=unit_id,
                        arm=arm,
                        model=model,
                        assigned_at=datetime.now(UTC),
                    )
                )
        except StorageError:
            with (
                self.store.session() as session
            ):  # a concurrent writer assigned it first: theirs stands
                stored = self._assigned(session, experiment, unit_id)
            if stored is None:
                raise
            return stored
        return arm

    @staticmethod
    def _assigned(session: Session, experiment: str, unit_id: str) -> str | None:
        return session.scalar(
            select(ABAssignmentRow.arm).where(
                ABAssignmentRow.experiment == experiment, ABAssignmentRow.unit_id == unit_id
            )
        )

    def assignments(self, experiment: str) -> dict[str, str]:
        """unit id -> arm of one experiment."""
        with self.store.session() as session:
            rows = session.execute(
                select(ABAssignmentRow.unit_id, ABAssignmentRow.arm).where(
                    ABAssignmentRow.experiment == experiment
                )
            )
            return {unit_id: arm for unit_id, arm in rows}

    def call_outcomes(self) -> dict[str, tuple[str | None, str | None, bool | None]]:
        """call id -> (agent id, tenant, success), from the outcomes the console or CRM import
        stored (an agent experiment needs the agent of every call)."""
        query = select(CallRow.call_id, CallRow.agent_id, CallRow.tenant, CallOutcomeRow.success).join(
            CallOutcomeRow, CallOutcomeRow.call_pk == CallRow.id
        )
        with self.store.session() as session:
            return {call: (agent, tenant, success) for call, agent, tenant, success in session.execute(query)}


def _row(record: dict[str, Any]) -> SuggestionFeedbackRow:
    if record.get("event") not in FEEDBACK_EVENTS:
        raise StorageError(
            f"feedback event {record.get('event')!r} is not one of {FEEDBACK_EVENTS}"
        )
    values = {key: record.get(key) for key in _COLUMNS}
    values["context"] = [
        {"role": str(t.get("role")), "text": str(t.get("text"))} for t in values["context"] or []
    ]
    values["turn_index"] = int(values["turn_index"] or 0)
    values["action"] = values["action"] or ""
    values["model_version"] = values["model_version"] or ""
    values["tenant"] = values["tenant"] or "default"
    created = record.get("created_at")
    values["created_at"] = _parse_created_at(created) if isinstance(created, str) and created else datetime.now(UTC)
    return SuggestionFeedbackRow(**values)


def _stored_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A feedback row read with its ``context`` and ``created_at`` as stored (SQLite: text),
    as :func:`_as_dict` gives it. Raises ValueError for a value that cannot be read back."""
    data = {key: row[key] for key in _COLUMNS}
    if isinstance(data["context"], str):  # SQLite; PostgreSQL's driver hands back parsed JSON
        try:
            data["context"] = json.loads(data["context"])
        except json.JSONDecodeError as error:
            raise ValueError(f"context is not JSON ({error.msg} at column {error.colno})") from None
        except RecursionError:  # json's parser recurses once per nesting level
            raise ValueError("context is not JSON: nested too deeply") from None
    created = row["created_at"]
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError:
            raise ValueError(f"created_at {created!r} is not a time") from None
    if not isinstance(created, datetime):
        raise ValueError(f"created_at {created!r} is not a time")
    data["created_at"] = (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat()
    return data


def _as_dict(row: SuggestionFeedbackRow) -> dict[str, Any]:
    data = {key: getattr(row, key) for key in _COLUMNS}
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    data["created_at"] = created.isoformat()
    return data
