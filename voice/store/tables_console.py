"""Tables of the agent console and QA replay: agents and their tokens, browser sessions, call
outcomes, QA reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from voice.store.tables import Base


class AgentRow(Base):
    """A person who may open the console: a phone agent or a supervisor (QA, team leads).

    Only a SHA-256 hash of the token is stored. Tokens are 32 random bytes, so a fast hash is
    enough: nobody can brute-force 256 bits, and lookups by hash stay one indexed query.
    """

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    """The agent id that calls carry (Twilio ``agent_id`` parameter, SIPREC AOR, ...)."""
    role: Mapped[str] = mapped_column(String(16))
    """``agent`` (own calls only) or ``supervisor`` (every call of its tenant, QA uploads)."""
    tenant: Mapped[str | None] = mapped_column(String(255))
    """Only this tenant's calls; None: every tenant."""
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(16))
    """The token's first characters, so people can tell tokens apart in listings."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class CallOutcomeRow(Base):
    """What the CRM says about a call (sale or not, order value), set through the API."""

    __tablename__ = "call_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    success: Mapped[bool | None] = mapped_column(Boolean)
    value: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(64))
    """Free label of the CRM disposition (``sale``, ``callback``, ``resolved``)."""
    source: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CallReviewRow(Base):
    """The suggested-vs-actual table of one call under one suggestion model version (QA cache)."""

    __tablename__ = "call_reviews"
    __table_args__ = (
        UniqueConstraint("call_pk", "model_version", name="uq_call_reviews_call_pk_model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(255))
    k: Mapped[int] = mapped_column(Integer)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentSessionRow(Base):
    """A browser sign-in (``POST /api/session``): the session cookie holds a random id, the
    database only its SHA-256, so signing out (deleting the row) ends the cookie everywhere.

    ``token_hash`` is the agent's token hash when the session was made: a session counts only
    while the agent still has that token, so a new token (``voice agents token``) ends it too.
    """

    __tablename__ = "agent_sessions"
    __table_args__ = (Index("ix_agent_sessions_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_pk: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
