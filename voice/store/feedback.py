"""Feedback and A/B storage of the suggestion engine, on the shared ``Store``.

``FeedbackStore(store)`` writes feedback events (the dicts of ``suggest.feedback.FeedbackRecord``
plus the console's ``rank`` and ``elapsed_ms``), reads them back for ``voice train --feedback``,
records A/B assignments, and joins feedback with call outcomes for the A/B report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
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
        self, *, tenant: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Feedback events as dicts (``suggest.feedback.feedback_from_dict`` reads them)."""
        query = select(SuggestionFeedbackRow).order_by(
            SuggestionFeedbackRow.created_at, SuggestionFeedbackRow.id
        )
        if tenant is not None:
            query = query.where(SuggestionFeedbackRow.tenant == tenant)
        if since is not None:
            query = query.where(SuggestionFeedbackRow.created_at >= since)
        with self.store.session() as session:
            return [_as_dict(row) for row in session.scalars(query)]

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


def _as_dict(row: SuggestionFeedbackRow) -> dict[str, Any]:
    data = {key: getattr(row, key) for key in _COLUMNS}
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    data["created_at"] = created.isoformat()
    return data
