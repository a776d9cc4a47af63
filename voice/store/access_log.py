"""Writing and reading the access log (table ``access_log``, revision 0006).

The server records an entry whenever someone opens a call's transcript (QA page, live event
stream), plays its recording, exports its review, sets its outcome or erases it; ``voice calls
access-log`` lists them. Entries name people and calls, never what was said, and outlive the
erasure of the call they record (that is what an auditor asks for).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from voice.store.store import Store, _as_utc
from voice.store.tables_audit import AccessLogRow

AccessAction = Literal["view_transcript", "stream_call", "play_audio", "export_review", "set_outcome",
                       "erase_call"]


@dataclass(frozen=True)
class AccessEntry:
    """One access to a call."""

    at: datetime
    actor: str
    actor_role: str
    actor_tenant: str | None
    action: AccessAction
    call_id: str
    client: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready, ``at`` as ISO-8601 UTC."""
        return {"at": self.at.isoformat(timespec="milliseconds"), "actor": self.actor, "actor_role": self.actor_role,
                "actor_tenant": self.actor_tenant, "action": self.action, "call_id": self.call_id,
                "client": self.client}


class AccessLog:
    """The access log on a :class:`Store` (one transaction per method)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, entry: AccessEntry) -> None:
        """Append one entry."""
        with self.store.session() as session:
            session.add(AccessLogRow(at=entry.at, actor=entry.actor, actor_role=entry.actor_role,
                                     actor_tenant=entry.actor_tenant, action=entry.action, call_id=entry.call_id,
                                     client=(entry.client or "")[:64] or None))

    def entries(self, *, call_id: str | None = None, actor: str | None = None, since: datetime | None = None,
                limit: int = 1000) -> list[AccessEntry]:
        """The newest ``limit`` entries, filtered by call, person and time, oldest first."""
        query = select(AccessLogRow).order_by(AccessLogRow.at.desc(), AccessLogRow.id.desc())
        if call_id is not None:
            query = query.where(AccessLogRow.call_id == call_id)
        if actor is not None:
            query = query.where(AccessLogRow.actor == actor)
        if since is not None:
            query = query.where(AccessLogRow.at >= since)
        with self.store.session() as session:
            rows = list(reversed(session.scalars(query.limit(limit)).all()))
            return [AccessEntry(_as_utc(r.at), r.actor, r.actor_role, r.actor_tenant, r.action,  # type: ignore[arg-type]
                                r.call_id, r.client) for r in rows]


def now() -> datetime:
    """The time an entry is stamped with."""
    return datetime.now(UTC)
