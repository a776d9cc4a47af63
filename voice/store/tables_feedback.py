"""Tables of the suggestion engine: agent feedback per suggestion and A/B assignments.

Created by revision ``0004_suggestion_feedback``. Feedback rows keep everything training needs
to relabel an event under a future model (the shown text, the edited text, recent turns), plus
the model version and A/B arm that produced the suggestion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voice.store.tables import Base


class SuggestionFeedbackRow(Base):
    """One feedback event (shown / accepted / dismissed / edited) on one suggestion."""

    __tablename__ = "suggestion_feedback"
    __table_args__ = (
        Index("ix_suggestion_feedback_tenant_created_at", "tenant", "created_at"),
        Index("ix_suggestion_feedback_call_id", "call_id"),
        Index("ix_suggestion_feedback_suggestion_id", "suggestion_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(String(255))
    call_id: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(255), default="")
    model_version: Mapped[str] = mapped_column(String(255), default="")
    arm: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(255), default="default")
    agent_id: Mapped[str | None] = mapped_column(String(255))
    turn_index: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int | None] = mapped_column(Integer)
    edited_text: Mapped[str | None] = mapped_column(Text)
    elapsed_ms: Mapped[float | None] = mapped_column(Float)
    context: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """The call's recent turns before the suggestion, as ``{role, text}``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ABAssignmentRow(Base):
    """Which arm of an experiment a call (or agent) was assigned to, first seen when."""

    __tablename__ = "ab_assignments"
    __table_args__ = (
        UniqueConstraint("experiment", "unit_id", name="uq_ab_assignments_experiment_unit_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str] = mapped_column(String(16))
    """``call`` or ``agent``."""
    unit_id: Mapped[str] = mapped_column(String(255))
    arm: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(Text)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
