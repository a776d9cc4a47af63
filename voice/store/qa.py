"""What QA replay reads and writes: call listings with outcomes, outcomes from a CRM, review cache.

Outcomes live in their own table rather than in ``calls.options``: a live call's transcript is
saved when the call ends and replaces ``options``, while a CRM may post the outcome at any time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from voice.store.store import CallNotFoundError, Store
from voice.store.tables import CallRow
from voice.store.tables_console import CallOutcomeRow, CallReviewRow

OutcomeFilter = Literal["success", "failure", "unknown"]


@dataclass(frozen=True)
class CallOutcome:
    """The CRM's verdict on a call."""

    success: bool | None
    value: float | None = None
    label: str | None = None
    source: str | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return data


@dataclass(frozen=True)
class CallFilter:
    """Which calls a QA list shows."""

    agent_id: str | None = None
    tenant: str | None = None
    kind: str | None = None
    status: str | None = None
    outcome: OutcomeFilter | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0
    before: ListCursor | None = None
    """Only calls listed after this one (newest first): the ``cursor`` of a page's last row."""


@dataclass(frozen=True)
class ListCursor:
    """A place in the newest-first call list: a row's ``created_at`` and database id.

    Paging with it instead of an offset, a call that starts between two pages neither shifts the
    next page (repeating a call) nor is skipped later: it is above the cursor.
    """

    created_at: datetime
    pk: int

    def __str__(self) -> str:
        """``2026-11-27T01:00:00.123456Z,42``: what ``GET /api/qa/calls?before=`` takes."""
        moment = _as_utc(self.created_at).astimezone(UTC).replace(tzinfo=None)
        return f"{moment.isoformat(timespec='microseconds')}Z,{self.pk}"

    @classmethod
    def parse(cls, text: str) -> ListCursor:
        """Read :meth:`__str__`'s form back.

        Raises:
            ValueError: not a time and an id separated by a comma.
        """
        moment, sep, pk = text.strip().rpartition(",")
        if not sep or not pk.isdigit() or len(pk) > 18:  # a database integer
            raise ValueError(f"a list cursor is a time and an id, like 2026-11-27T01:00:00.123456Z,42; not {text!r}")
        return cls(_as_utc(datetime.fromisoformat(moment)).astimezone(UTC), int(pk))


@dataclass(frozen=True)
class QaCall:
    """One row of the QA call list."""

    call_id: str
    kind: str
    status: str
    tenant: str | None
    agent_id: str | None
    source: str | None
    started_at: datetime
    duration: float | None
    has_audio: bool
    outcome: CallOutcome | None
    error: str | None = None
    adherence: float | None = None
    """Share of agent turns that followed a suggestion, from the newest review (None: not reviewed)."""
    cursor: ListCursor | None = None
    """Where this row is in the list (``CallFilter.before`` for the rows after it)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the cursor as its string)."""
        data = asdict(self)
        data["started_at"] = _iso(self.started_at)
        data["outcome"] = self.outcome.to_dict() if self.outcome else None
        data["cursor"] = str(self.cursor) if self.cursor else None
        return data


@dataclass(frozen=True)
class CallReview:
    """The suggested-vs-actual table of a call, as computed once by the suggestion model."""

    call_id: str
    model_version: str
    k: int
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    created_at: datetime


class QaStore:
    """Call listings, outcomes and review cache on top of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def calls(self, where: CallFilter) -> list[QaCall]:
        """Calls newest first (by ``created_at``, then id), filtered as asked; each with its cursor."""
        query = _filtered(select(CallRow, CallOutcomeRow).outerjoin(
            CallOutcomeRow, CallOutcomeRow.call_pk == CallRow.id), where)
        if where.before is not None:
            # The column holds UTC (naive on SQLite, which compares its text): compare like with like.
            at = where.before.created_at.astimezone(UTC)
            query = query.where(or_(CallRow.created_at < at,
                                    and_(CallRow.created_at == at, CallRow.id < where.before.pk)))
        query = query.order_by(CallRow.created_at.desc(), CallRow.id.desc())
        query = query.offset(max(where.offset, 0)).limit(min(max(where.limit, 1), 1000))
        with self.store.session() as session:
            rows = session.execute(query).all()
            adherence = _adherence(session, [call.id for call, _ in rows])
            return [_qa_call(call, outcome, adherence.get(call.id), ListCursor(call.created_at, call.id))
                    for call, outcome in rows]

    def call(self, call_id: str) -> QaCall:
        """One call's row.

        Raises:
            CallNotFoundError: no such call.
        """
        with self.store.session() as session:
            found = session.execute(select(CallRow, CallOutcomeRow).outerjoin(
                CallOutcomeRow, CallOutcomeRow.call_pk == CallRow.id).where(CallRow.call_id == call_id)).one_or_none()
        if found is None:
            raise CallNotFoundError(f"no call {call_id!r}", hint="list calls with GET /api/qa/calls")
        return _qa_call(found[0], found[1])

    def audio_path(self, call_id: str) -> str | None:
        """Where the call's audio is (live recording or the batch source), if anywhere."""
        with self.store.session() as session:
            row = session.execute(select(CallRow.audio_path, CallRow.source)
                                  .where(CallRow.call_id == call_id)).one_or_none()
        if row is None:
            raise CallNotFoundError(f"no call {call_id!r}", hint="list calls with GET /api/qa/calls")
        return _stored_audio(row.audio_path)

    def set_outcome(self, call_id: str, outcome: CallOutcome) -> CallOutcome:
        """Insert or replace the outcome of a call; returns what was stored.

        Raises:
            CallNotFoundError: no such call.
        """
        now = datetime.now(UTC)

        def write(session: Session) -> None:  # two first outcomes at once: the later one updates
            call_pk = _pk(session, call_id)
            row = session.scalars(select(CallOutcomeRow).where(CallOutcomeRow.call_pk == call_pk)).one_or_none()
            if row is None:
                row = CallOutcomeRow(call_pk=call_pk)
                session.add(row)
            row.success, row.value, row.label = outcome.success, outcome.value, outcome.label
            row.source, row.updated_at = outcome.source, now

        self.store.upsert(write)
        return CallOutcome(outcome.success, outcome.value, outcome.label, outcome.source, now)

    def stored_transcripts(self, tenant: str) -> Iterator[tuple[str, str | None, dict[str, Any], CallOutcome | None]]:
        """(call id, agent id, transcript JSON, outcome or None) of the tenant's stored calls that
        have a transcript, oldest first, one at a time (a year of calls is not held at once)."""
        query = (select(CallRow.call_id, CallRow.agent_id, CallRow.transcript, CallOutcomeRow)
                 .outerjoin(CallOutcomeRow, CallOutcomeRow.call_pk == CallRow.id)
                 .where(CallRow.tenant == tenant, CallRow.transcript.is_not(None))
                 .order_by(CallRow.created_at, CallRow.id))
        with self.store.session() as session:
            for call_id, agent_id, transcript, row in session.execute(query.execution_options(yield_per=200)):
                outcome = (None if row is None or row.success is None
                           else CallOutcome(row.success, row.value, row.label, row.source, row.updated_at))
                yield call_id, agent_id, transcript, outcome

    def save_review(self, review: CallReview) -> None:
        """Store (or replace) a call's review under its model version."""
        def write(session: Session) -> None:
            call_pk = _pk(session, review.call_id)
            row = session.scalars(select(CallReviewRow).where(
                CallReviewRow.call_pk == call_pk, CallReviewRow.model_version == review.model_version)).one_or_none()
            if row is None:
                row = CallReviewRow(call_pk=call_pk, model_version=review.model_version)
                session.add(row)
            row.k, row.rows, row.summary, row.created_at = review.k, review.rows, review.summary, review.created_at

        self.store.upsert(write)

    def review(self, call_id: str, model_version: str | None = None) -> CallReview | None:
        """The newest review of a call (of ``model_version`` when given), or None when never computed."""
        with self.store.session() as session:
            query = (select(CallReviewRow).join(CallRow, CallRow.id == CallReviewRow.call_pk)
                     .where(CallRow.call_id == call_id).order_by(CallReviewRow.created_at.desc()).limit(1))
            if model_version is not None:
                query = query.where(CallReviewRow.model_version == model_version)
            row = session.scalars(query).first()
            if row is None:
                return None
            return CallReview(call_id, row.model_version, row.k, list(row.rows), dict(row.summary),
                              _as_utc(row.created_at))


def _filtered(query: Any, where: CallFilter) -> Any:
    """Add the filter's WHERE clauses to a select over calls (joined with their outcomes)."""
    for column, value in ((CallRow.agent_id, where.agent_id), (CallRow.tenant, where.tenant),
                          (CallRow.kind, where.kind), (CallRow.status, where.status)):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(CallRow.created_at >= where.since)
    if where.until is not None:
        query = query.where(CallRow.created_at < where.until)
    if where.outcome == "success":
        query = query.where(CallOutcomeRow.success.is_(True))
    elif where.outcome == "failure":
        query = query.where(CallOutcomeRow.success.is_(False))
    elif where.outcome == "unknown":
        query = query.where(CallOutcomeRow.success.is_(None))
    return query


def _pk(session: Session, call_id: str) -> int:
    pk = session.scalar(select(CallRow.id).where(CallRow.call_id == call_id))
    if pk is None:
        raise CallNotFoundError(f"no call {call_id!r}", hint="list calls with GET /api/qa/calls")
    return int(pk)


def _adherence(session: Session, call_pks: list[int]) -> dict[int, float | None]:
    """call pk -> adherence of its newest review, in one query for a whole page of calls."""
    if not call_pks:
        return {}
    query = (select(CallReviewRow.call_pk, CallReviewRow.summary).where(CallReviewRow.call_pk.in_(call_pks))
             .order_by(CallReviewRow.created_at))
    return {pk: (summary or {}).get("adherence") for pk, summary in session.execute(query).all()}


def _qa_call(call: CallRow, outcome: CallOutcomeRow | None, adherence: float | None = None,
             cursor: ListCursor | None = None) -> QaCall:
    started = call.started_at or call.created_at
    verdict = None if outcome is None else CallOutcome(outcome.success, outcome.value, outcome.label,
                                                       outcome.source, _as_utc(outcome.updated_at))
    return QaCall(call.call_id, call.kind, call.status, call.tenant, call.agent_id, call.source,
                  _as_utc(started), call.duration, _stored_audio(call.audio_path) is not None, verdict,
                  call.error, adherence, cursor)


LIVE_WITHOUT_AUDIO = "live:"
"""Prefix of the audio path a live call recorded without audio stores (``live:<source>``)."""


def _stored_audio(path: str | None) -> str | None:
    """The path of a real audio file, or None: ``live:<source>`` names where a call came from,
    not a file (a QA page offered an audio URL that always 404ed)."""
    return path if path and not path.startswith(LIVE_WITHOUT_AUDIO) else None


def _as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything nextline writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _as_utc(value).isoformat(timespec="seconds")
