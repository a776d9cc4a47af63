"""The call store: CallTranscripts in SQLite or PostgreSQL through SQLAlchemy 2.

``Store.open(url)`` creates the engine and runs the packaged Alembic migrations to head. Each
public method is one transaction. The full transcript JSON is kept on the call row, so
``get_transcript`` returns exactly what was saved; the speakers, segments and entities tables
are a queryable copy of it, replaced as a whole on every save.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, delete, event, func, make_url, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from voice.errors import StorageError
from voice.frames import word_dict
from voice.store.migrate import head_revision, upgrade
from voice.store.tables import CallRow, CallStatus, EntityRow, SegmentRow, SpeakerRow
from voice.transcript import CallTranscript

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
SERVER_DB_URL_ENV = "NEXTLINE_DB_URL"
"""The server's database URL (``ServerConfig.db_url``): the one every command defaults to."""
DATABASE_URL_ENV = "NEXTLINE_DATABASE_URL"
"""Older name, still read when ``NEXTLINE_DB_URL`` is not set."""
DATA_DIR_ENV = "NEXTLINE_DATA_DIR"
DEFAULT_DATA_DIR = "data"
"""``ServerConfig.data_dir``'s default: the server's SQLite file lives there."""
DEFAULT_DB_FILE = "nextline.db"
_URL_HINT = "use sqlite:///path/to/nextline.db or postgresql+psycopg://user:password@host:5432/db"


class CallNotFoundError(StorageError):
    """No transcript is stored for the requested call id."""

    retryable = False


@dataclass(frozen=True)
class CallSummary:
    """One row of :meth:`Store.list_calls`."""

    call_id: str
    status: CallStatus
    source: str | None
    error: str | None
    audio_path: str | None
    duration: float | None
    segment_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CallOwner:
    """Who a call belongs to, saved with its transcript (:meth:`Store.save_transcript`).

    A live call's row is created at call start with its tenant and agent; passing them again at
    call end means a failed start write cannot leave a call nobody may see.
    """

    kind: str = "live"
    tenant: str | None = None
    agent_id: str | None = None
    started_at: datetime | None = None
    """Used only when the row has no start time yet (its start write failed)."""


def default_url() -> str:
    """The database ``voice serve`` uses with no ``--db``: ``$NEXTLINE_DB_URL``, else SQLite
    ``nextline.db`` in ``$NEXTLINE_DATA_DIR`` (default ``data``), so that ``voice train --feedback``,
    ``voice feedback``, ``voice ab`` and ``python -m voice.store`` read what the server wrote.
    ``$NEXTLINE_DATABASE_URL`` (what they read before, with ``./nextline.db``) still counts when
    set and ``$NEXTLINE_DB_URL`` is not.

    An earlier release's ``./nextline.db`` (A/B assignments, feedback commands) is still used, with
    a warning, while ``data/nextline.db`` does not exist: a new empty database beside it would
    hide its rows; once both exist, the server's is used and the other named in a warning. Two
    different databases in the two variables are warned about too (``voice serve`` also takes
    ``$NEXTLINE_DATABASE_URL`` when ``$NEXTLINE_DB_URL`` is not set).
    """
    server_url, older_url = os.environ.get(SERVER_DB_URL_ENV), os.environ.get(DATABASE_URL_ENV)
    if server_url and older_url and _normalised(server_url) != _normalised(older_url):
        _log.warning("%s and %s name different databases: using %s's", SERVER_DB_URL_ENV,
                     DATABASE_URL_ENV, SERVER_DB_URL_ENV)
    if server_url or older_url:
        return server_url or older_url or ""
    server_file = (Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / DEFAULT_DB_FILE).resolve()
    earlier_file = (Path.cwd() / DEFAULT_DB_FILE).resolve()
    if earlier_file.is_file() and earlier_file != server_file:
        if not server_file.is_file():
            _log.warning("using %s, the earlier default; voice serve uses %s: move the file there "
                         "(or pass --db) so both read the same calls", earlier_file, server_file)
            return f"sqlite:///{earlier_file}"
        _log.warning("using %s, voice serve's; %s (the earlier default) is left out: pass --db to "
                     "read it", server_file, earlier_file)
    return f"sqlite:///{server_file}"


def _normalised(url: str) -> str:
    """``url`` with a SQLite file's path made absolute, so one file named two ways is one database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
    return parsed.render_as_string(hide_password=False)


def create_engine_for(url: str | URL) -> Engine:
    """An Engine with the per-dialect settings nextline relies on.

    SQLite: foreign keys on (for ON DELETE CASCADE), WAL so readers do not block the batch
    writer, a 30 s busy timeout, and explicit BEGIN statements (pysqlite's own transaction
    handling skips DDL, which would leave half-migrated schemas); the parent directory is
    created. PostgreSQL: a 10 s connect timeout so an unreachable host fails fast.
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 10
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN ourselves, see below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything nextline writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parse_created_at(value: str) -> datetime:
    """An ISO time as UTC: SQLite drops an offset and keeps the wall time, so ``10:00+02:00``
    was stored as 10:00 UTC there and as 08:00 UTC on PostgreSQL. Unreadable: now."""
    try:
        return _as_utc(datetime.fromisoformat(value)).astimezone(UTC)
    except ValueError:
        return _utcnow()


class Store:
    """Calls and their transcripts in a SQL database. Use :meth:`open`, then :meth:`close`."""

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine whose database is already migrated; prefer :meth:`open`."""
        self._engine = engine
        # Writers take SQLite's write lock at BEGIN: two deferred transactions that both read
        # and then write would otherwise fail with "database is locked" instead of waiting.
        self._sessions = sessionmaker(
            engine.execution_options(sqlite_begin="BEGIN IMMEDIATE"), expire_on_commit=False
        )

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Connect to ``url`` (default: :func:`default_url`) and migrate it to head.

        Raises:
            StorageError: the URL is malformed, its driver is missing, the database cannot be
                reached, or it was migrated by a newer nextline.
        """
        url = url or default_url()
        try:
            engine = create_engine_for(url)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot use database URL {url!r}: {exc}", hint=_URL_HINT) from exc
        safe_url = engine.url.render_as_string(hide_password=True)
        try:
            upgrade(engine)
        except CommandError as exc:
            engine.dispose()
            error = StorageError(
                f"{safe_url} is at a schema revision unknown to this nextline "
                f"(head {head_revision()}): {exc}",
                hint="upgrade nextline, or point NEXTLINE_DB_URL at another database",
            )
            error.retryable = False
            raise error from exc
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StorageError(
                f"cannot open database {safe_url}: {_first_line(exc)}",
                hint=_unreachable_hint(engine.url),
            ) from exc
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for modules that add their own tables."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on error; errors become StorageError."""
        try:
            with self._sessions.begin() as session:
                yield session
        except StorageError:
            raise
        except SQLAlchemyError as exc:
            raise self._storage_error(exc) from exc

    def save_transcript(self, transcript: CallTranscript, *, source: str | None = None,
                        owner: CallOwner | None = None) -> None:
        """Insert or replace the call ``transcript.call_id`` with its speakers, segments, entities.

        Idempotent: saving the same transcript twice leaves one call. ``source`` (the input file
        or stream) is kept from an earlier save when not given. The row's ``options`` are merged
        with the transcript's, so what was stored during a live call (ingress metadata such as
        Twilio's CallSid, an outcome) survives. ``owner`` sets the call's kind, tenant and agent.
        """
        document = transcript.to_dict()

        def write(session: Session) -> None:
            call = self._call_for_update(session, transcript.call_id)
            self._fill_call(call, transcript, document, source)
            if owner is not None:
                _set_owner(call, owner)
            self._replace_children(session, call, transcript)

        self.upsert(write)

    def upsert(self, change: Callable[[Session], _T]) -> _T:
        """``change`` in one transaction, run once more when a concurrent writer inserted the same
        unique row first: the loser's second run finds that row and updates it."""
        for attempt in (1, 2):
            try:
                with self.session() as session:
                    return change(session)
            except StorageError as exc:
                # Only a unique-key conflict is a concurrent insert; a refused row fails as it is.
                if attempt == 2 or not isinstance(exc.__cause__, IntegrityError) or not exc.retryable:
                    raise
        raise AssertionError("unreachable")

    def get_transcript(self, call_id: str) -> CallTranscript:
        """The transcript last saved for ``call_id``, equal to the object that was saved.

        A call whose latest run failed still returns its last good transcript, if any.

        Raises:
            CallNotFoundError: no transcript was ever saved for ``call_id``.
        """
        with self.session() as session:
            row = session.execute(
                select(CallRow.transcript, CallRow.error).where(CallRow.call_id == call_id)
            ).one_or_none()
        if row is None or row.transcript is None:
            why = f" (it failed: {row.error})" if row is not None and row.error else ""
            raise CallNotFoundError(
                f"no transcript stored for call {call_id!r}{why}",
                hint="list stored calls with Store.list_calls()",
            )
        return CallTranscript.from_dict(row.transcript)

    def list_calls(
        self, *, status: CallStatus | None = None, limit: int | None = None, offset: int = 0
    ) -> list[CallSummary]:
        """Stored calls, most recently updated first, optionally only those with ``status``."""
        segment_count = (
            select(func.count(SegmentRow.id))
            .where(SegmentRow.call_pk == CallRow.id)
            .scalar_subquery()
        )
        query = (
            select(CallRow, segment_count)
            .order_by(CallRow.updated_at.desc(), CallRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        if status is not None:
            query = query.where(CallRow.status == status)
        with self.session() as session:
            rows = session.execute(query).all()
        return [_summary(call, count) for call, count in rows]

    def record_failure(self, call_id: str | None, reason: str, *, source: str | None = None) -> str:
        """Mark a call as failed with ``reason``; returns the call id used.

        ``call_id`` defaults to the file name stem of ``source``, as batch runs name calls.
        An earlier good transcript of the same call is kept (see :meth:`get_transcript`).
        """
        if call_id is None:
            if not source:
                raise ValueError("record_failure needs a call_id or a source")
            call_id = Path(source).stem

        def write(session: Session) -> str:
            call = self._call_for_update(session, call_id)
            call.status = "failed"
            call.error = reason
            call.source = source or call.source
            call.updated_at = _utcnow()
            return call_id

        return self.upsert(write)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @staticmethod
    def _call_for_update(session: Session, call_id: str) -> CallRow:
        """The row of ``call_id`` (row-locked on PostgreSQL), or a new pending one."""
        call = session.scalars(
            select(CallRow).where(CallRow.call_id == call_id).with_for_update()
        ).one_or_none()
        if call is None:
            now = _utcnow()
            call = CallRow(
                call_id=call_id, status="failed", options={}, created_at=now, updated_at=now
            )
            session.add(call)
        return call

    @staticmethod
    def _fill_call(
        call: CallRow, transcript: CallTranscript, document: dict[str, Any], source: str | None
    ) -> None:
        audio = transcript.audio
        call.source = source or call.source
        call.status = "done"
        call.error = None
        call.audio_path = audio.path
        call.audio_format = audio.format
        call.sample_rate = audio.sample_rate
        call.channels = audio.channels
        call.duration = audio.duration
        call.redacted = transcript.redacted
        call.schema_version = transcript.schema_version
        # Merged: the live store keeps ingress metadata and outcomes here, the only link from
        # a telephony id to the call (a replace wiped them at every call end).
        call.options = {**(call.options or {}), **document["options"]}
        call.transcript = document
        call.created_at = _parse_created_at(transcript.created_at)
        call.updated_at = _utcnow()

    @staticmethod
    def _replace_children(session: Session, call: CallRow, transcript: CallTranscript) -> None:
        # Delete with explicit statements first: the ORM's unit of work inserts new children
        # before deleting orphans, which would collide with the (call_pk, seq) unique keys.
        if call.id is not None:
            for table in (SpeakerRow, SegmentRow, EntityRow):
                session.execute(delete(table).where(table.call_pk == call.id))
            session.expire(call, ["speakers", "segments", "entities"])
        call.speakers = [
            SpeakerRow(speaker=s.id, role=s.role, channel=s.channel, talk_time=s.talk_time)
            for s in transcript.speakers
        ]
        call.segments = [
            SegmentRow(
                seq=s.id,
                start_sec=s.start,
                end_sec=s.end,
                speaker=s.speaker,
                role=s.role,
                channel=s.channel,
                text=s.text,
                words=[word_dict(w) for w in s.words],  # attached pieces keep leading_space
            )
            for s in transcript.segments
        ]
        call.entities = [
            EntityRow(
                segment=e.segment,
                label=e.label,
                text=e.text,
                value=e.value,
                start_char=e.start_char,
                end_char=e.end_char,
            )
            for e in transcript.entities
        ]

    def _storage_error(self, exc: SQLAlchemyError) -> StorageError:
        error = StorageError(
            f"database {self.url}: {_first_line(exc)}", hint=_unreachable_hint(self._engine.url)
        )
        if isinstance(exc, IntegrityError) and "unique" in str(exc.orig).lower():
            error.hint = "a concurrent writer saved the same row; retry"
        elif not _is_connection_problem(exc):
            error.retryable = False
            error.hint = "the database refused the data; see the message"
        return error


def _set_owner(call: CallRow, owner: CallOwner) -> None:
    call.kind, call.tenant, call.agent_id = owner.kind, owner.tenant, owner.agent_id
    if call.started_at is None:
        call.started_at = owner.started_at


def _summary(call: CallRow, segment_count: int) -> CallSummary:
    return CallSummary(
        call_id=call.call_id,
        status=call.status,  # type: ignore[arg-type]  # the column holds CallStatus values only
        source=call.source,
        error=call.error,
        audio_path=call.audio_path,
        duration=call.duration,
        segment_count=int(segment_count),
        created_at=_as_utc(call.created_at),
        updated_at=_as_utc(call.updated_at),
    )


def _first_line(exc: BaseException) -> str:
    origin = getattr(exc, "orig", None) or exc
    return (str(origin).strip().splitlines() or [type(origin).__name__])[0]


def _is_connection_problem(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _unreachable_hint(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"check that {url.database} is a writable SQLite file in an existing directory"
    return (
        f"check that the server at {url.host or 'localhost'}:{url.port or 5432} is running and "
        f"accepts TCP connections, and that user {url.username!r} and database {url.database!r} "
        f"exist ({SERVER_DB_URL_ENV} sets the URL)"
    )
