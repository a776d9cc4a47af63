"""The database tables, as SQLAlchemy 2 declarative classes.

Every table here is created by a revision in ``voice/store/migrations/versions``; the test
``test_models_match_migrations`` fails when the two drift apart. Later features add their own
tables (live turns, suggestions, feedback, ...) in new modules that subclass :class:`Base` and in
new revisions (see docs/storage.md).

Column names avoid SQL reserved words (``start_sec`` rather than ``start``/``end``) so analysts
can query the database with plain SQL without quoting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CallStatus = Literal["active", "done", "failed", "interrupted"]
"""``active``: a live call in progress; ``done``: a transcript is stored; ``failed``: processing
failed, ``error`` says why; ``interrupted``: a live call whose server process stopped (crash,
kill) before the call ended: its turns stored until then are kept (voice/store/retention.py)."""

# Named constraints: Alembic's batch mode (needed for ALTER on SQLite) can only drop or change
# a constraint that has a name, so every constraint gets a predictable one.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every nextline table (one shared ``MetaData``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[dict[str, Any]]: JSON}


class CallRow(Base):
    """One call: where it came from, what the audio was, its status and full transcript JSON."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    audio_path: Mapped[str | None] = mapped_column(Text)
    audio_format: Mapped[str | None] = mapped_column(String(32))
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    schema_version: Mapped[str | None] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    transcript: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The whole CallTranscript.to_dict(), so nothing the pipeline produced is lost."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16), default="batch", server_default="batch", index=True)
    """``batch`` (a transcribed recording) or ``live`` (a call through the server)."""
    tenant: Mapped[str | None] = mapped_column(String(255), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=_utcnow)
    """When the process carrying this call last said it still does (every ``HEARTBEAT_SECONDS``
    while a live call runs); an ``active`` call whose heartbeat went stale is ``interrupted``."""

    speakers: Mapped[list[SpeakerRow]] = relationship(
        back_populates="call", cascade="all, delete-orphan", passive_deletes=True
    )
    segments: Mapped[list[SegmentRow]] = relationship(
        back_populates="call",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SegmentRow.seq",
    )
    entities: Mapped[list[EntityRow]] = relationship(
        back_populates="call", cascade="all, delete-orphan", passive_deletes=True
    )


class SpeakerRow(Base):
    """A party of a call, keyed by the transcript's speaker id."""

    __tablename__ = "speakers"
    __table_args__ = (UniqueConstraint("call_pk", "speaker", name="uq_speakers_call_pk_speaker"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    speaker: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[int | None] = mapped_column(Integer)
    talk_time: Mapped[float] = mapped_column(Float, default=0.0)

    call: Mapped[CallRow] = relationship(back_populates="speakers")


class SegmentRow(Base):
    """A stretch of one speaker's speech; ``seq`` is the transcript's segment id."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("call_pk", "seq", name="uq_segments_call_pk_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    start_sec: Mapped[float] = mapped_column(Float)
    end_sec: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    call: Mapped[CallRow] = relationship(back_populates="segments")


class EntityRow(Base):
    """An entity found in a segment (``segment`` is the transcript's segment id)."""

    __tablename__ = "entities"
    __table_args__ = (Index("ix_entities_label_value", "label", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    segment: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)

    call: Mapped[CallRow] = relationship(back_populates="entities")


from voice.store import (  # noqa: E402 - after Base: these modules add their tables to it
    tables_audit,  # noqa: E402,F401 - the access log
    tables_console,  # noqa: E402,F401 - agents, call outcomes and QA reviews
    tables_feedback,  # noqa: E402,F401 - suggestion feedback and A/B assignments
    tables_live,  # noqa: E402,F401 - registers the live-call tables on Base.metadata
)
