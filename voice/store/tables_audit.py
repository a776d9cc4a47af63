"""The access log: who opened which call's transcript, recording or export, and who erased it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from voice.store.tables import Base


class AccessLogRow(Base):
    """One access to a call's personal data (PCI DSS 10.2, GDPR accountability).

    Keyed by call id, not by foreign key: the entry outlives the call's erasure, which it records.
    It names people and calls, never what was said.
    """

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_call_id", "call_id"), Index("ix_access_log_at", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    actor_role: Mapped[str] = mapped_column(String(16))
    actor_tenant: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str] = mapped_column(String(255))
    client: Mapped[str | None] = mapped_column(String(64))
    """The requesting address as the server saw it (a proxy's, behind one)."""
