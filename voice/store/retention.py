"""Erasing calls: one call on request (a customer's right to erasure), or all calls past a
retention period.

A call's personal data lives in four places, and erasure covers all of them:

- the call row and everything keyed to it (speakers, segments, entities, live turns, outcome,
  QA reviews: foreign keys with ``ON DELETE CASCADE``);
- suggestion feedback, which quotes the turns before each suggestion (keyed by call id);
- A/B assignments of the call (``unit = call``);
- files the server itself wrote: live recordings (``data_dir/audio``: the WAV, its temporary
  file and the spool, by the call's name whatever its row says), a call-end save waiting for the
  database (``data_dir/pending``) and QA uploads (``data_dir/uploads/<job>/``). A batch call's
  ``audio_path`` is the operator's own source recording, outside those folders: it is reported,
  never deleted (that archive is theirs).

Files go first, then the rows in one transaction: if the database step fails, the call is still
listed and the erasure can be run again; the reverse order could leave an orphaned recording
nobody can find any more. Calls in progress are refused (their recorder would write them again).

A call is in progress while the server process carrying it says so: every ``voice serve``
process stamps ``calls.heartbeat_at`` of the calls it carries every :data:`HEARTBEAT_SECONDS`
(:func:`touch_calls`). A process that crashed or was killed stops stamping, and once a call's
heartbeat is :data:`ORPHAN_AFTER` old any process marks it ``interrupted``
(:func:`interrupt_orphans`, at start and with every heartbeat), keeping its stored turns; from
then on it can be erased and purged. Why heartbeats per call rather than "mark every active row
at start-up": several processes share one PostgreSQL (docs/events.md), and a process starting
must not close the calls a live neighbour carries; a per-call stamp needs no process registry and
works the same on SQLite.
"""

from __future__ import annotations

import glob
import json
import logging
import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, func, or_, select, update

from voice.audio import safe_file_stem, spool_files, spool_manifest_path
from voice.store.live import PENDING_FOLDER, PENDING_LOCK, pending_save_path
from voice.store.store import Store, _as_utc
from voice.store.tables import CallRow
from voice.store.tables_feedback import ABAssignmentRow, SuggestionFeedbackRow

log = logging.getLogger(__name__)

ERASE_CHUNK = 500
"""Calls per erasure transaction: far below PostgreSQL's 65,535 bind parameters."""

HEARTBEAT_SECONDS = 30.0
"""How often a server process stamps the calls it carries."""
ORPHAN_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)
"""A call not stamped for this long has lost its process: six missed heartbeats, so a busy event
loop or a short database outage does not close a running call."""
LEGACY_ORPHAN_AFTER = timedelta(hours=12)
"""For rows without a heartbeat (written before revision 0005, possibly by a process of the
previous release still running during a rolling deploy): longer than any call lasts."""
INTERRUPTED_ERROR = ("the server process carrying the call stopped before the call ended (crash or kill); "
                     "the turns stored until then are kept")


@dataclass(frozen=True)
class CallToErase:
    """A call matched for erasure, with what erasing it removes."""

    call_id: str
    kind: str
    tenant: str | None
    created_at: datetime
    audio_path: str | None
    audio_owned: bool
    """Whether the audio is the server's own (deleted) or the operator's source file (kept)."""
    active: bool = False
    """A call in progress: never erased (its recorder would write it again)."""


@dataclass
class ErasureReport:
    """What an erasure removed (or, with ``dry_run``, would remove)."""

    calls: list[str] = field(default_factory=list)
    feedback_rows: int = 0
    assignments: int = 0
    files: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_source_files: list[str] = field(default_factory=list)
    """Operator recordings referenced by batch calls: not ours to delete."""
    refused_active: list[str] = field(default_factory=list)
    dry_run: bool = False


def cutoff(days: float, now: datetime | None = None) -> datetime:
    """The creation time before which calls are past a retention of ``days``."""
    if days <= 0:
        raise ValueError("a retention period must be more than 0 days")
    return (now or datetime.now(UTC)) - timedelta(days=days)


class CallEraser:
    """Finds and erases calls of one database and data folder."""

    def __init__(self, store: Store, data_dir: str | Path) -> None:
        self.store = store
        root = Path(data_dir).resolve()
        self.owned_roots = (root / "audio", root / "uploads")
        self.pending_dir = root / PENDING_FOLDER
        """Call-end saves waiting for the database: they hold the whole transcript."""

    def find(self, *, call_ids: Iterable[str] | None = None, created_before: datetime | None = None,
             tenant: str | None = None) -> list[CallToErase]:
        """Calls by id (unknown ids are skipped), or all created before a time (of one tenant)."""
        query = select(CallRow.call_id, CallRow.kind, CallRow.tenant, CallRow.created_at, CallRow.audio_path,
                       CallRow.status).order_by(CallRow.created_at)
        if call_ids is not None:
            query = query.where(CallRow.call_id.in_(list(call_ids)))
        if created_before is not None:
            query = query.where(CallRow.created_at < created_before)
        if tenant is not None:
            query = query.where(CallRow.tenant == tenant)
        query = query.add_columns(CallRow.heartbeat_at, CallRow.started_at)
        with self.store.session() as session:
            rows = session.execute(query).all()
        now = datetime.now(UTC)
        # An active row whose process stopped heartbeating is not in progress, even before a
        # server's sweep marks it interrupted (the CLI erases with no server running).
        return [CallToErase(r.call_id, r.kind, r.tenant, _as_utc(r.created_at), r.audio_path, self._owned(r.audio_path),
                            active=r.status == "active" and not _stale(r.heartbeat_at, r.started_at or r.created_at,
                                                                       now)) for r in rows]

    def erase(self, calls: list[CallToErase], *, dry_run: bool = False) -> ErasureReport:
        """Delete the calls' owned files, then their rows, feedback and assignments.

        Calls in progress are left alone and listed in ``refused_active``. Calls are erased in
        chunks, each its files then one transaction: a purge of years of calls stays under the
        database's bind-parameter limit (PostgreSQL: 65,535), and a failure leaves the chunks
        before it erased.
        """
        report = ErasureReport(dry_run=dry_run)
        report.refused_active = sorted(c.call_id for c in calls if c.active)
        targets = [c for c in calls if not c.active]
        for start in range(0, len(targets), ERASE_CHUNK):
            chunk = targets[start:start + ERASE_CHUNK]
            erasing = {c.call_id for c in chunk}
            # Under the lock the heartbeat's replay of pending saves holds per file: a replay
            # that read a call's save cannot store it again once the call is erased.
            with PENDING_LOCK:
                for call in chunk:
                    self._files(call, report, dry_run, erasing)
                self._erase_rows([c.call_id for c in chunk], report, dry_run)
        if targets and not dry_run:
            log.info("erased %d calls, %d feedback rows, %d files", len(report.calls), report.feedback_rows,
                     len(report.files))
        return report

    def _erase_rows(self, ids: list[str], report: ErasureReport, dry_run: bool) -> None:
        with self.store.session() as session:
            feedback = select(SuggestionFeedbackRow.id).where(SuggestionFeedbackRow.call_id.in_(ids))
            assigned = select(ABAssignmentRow.id).where(ABAssignmentRow.unit == "call",
                                                        ABAssignmentRow.unit_id.in_(ids))
            feedback_rows = len(session.execute(feedback).all())
            assignments = len(session.execute(assigned).all())
            if not dry_run:
                session.execute(delete(SuggestionFeedbackRow).where(SuggestionFeedbackRow.call_id.in_(ids)))
                session.execute(delete(ABAssignmentRow).where(ABAssignmentRow.unit == "call",
                                                              ABAssignmentRow.unit_id.in_(ids)))
                for row in session.execute(select(CallRow).where(CallRow.call_id.in_(ids))).scalars():
                    session.delete(row)  # cascades to turns, segments, entities, outcome, reviews
        # Counted once the chunk's transaction committed, so a failed purge reports what it erased.
        report.calls.extend(ids)
        report.feedback_rows += feedback_rows
        report.assignments += assignments

    def _files(self, call: CallToErase, report: ErasureReport, dry_run: bool, erasing: Collection[str]) -> None:
        mine = self._recordings_are_mine(call, erasing)
        # An interrupted live call's partial recording: its recorder's spool files and their manifest.
        if mine:
            self._unlink(spool_files(self.owned_roots[0], call.call_id), report, dry_run)
        # What the recorder writes under the call's name, whatever the row says: a call whose
        # end save failed has no audio_path (or "live:...") while its WAV holds the whole call,
        # a failed WAV write may have left its temporary file, and a save waiting for the
        # database holds the transcript.
        named = self._named_files(call.call_id, recordings=mine)
        if call.audio_path and not call.audio_path.startswith("live:"):  # counted once, below
            named = [p for p in named if p != Path(call.audio_path).resolve()]
        self._unlink(named, report, dry_run)
        if not call.audio_path or call.audio_path.startswith("live:"):
            return
        path = Path(call.audio_path)
        if not call.audio_owned:
            report.kept_source_files.append(str(path))
            return
        upload_dir = self._upload_job_dir(path)
        victims = sorted(p for p in upload_dir.rglob("*") if p.is_file()) if upload_dir else [path]
        self._unlink(victims, report, dry_run)
        if upload_dir is not None and not dry_run:
            shutil.rmtree(upload_dir, ignore_errors=True)  # its files are gone; empty folders remain

    def _named_files(self, call_id: str, *, recordings: bool = True) -> list[Path]:
        """The live recorder's files named after ``call_id``: its WAV and the WAV's temporary file
        (with ``recordings``), and its pending call-end save (with the temporary files of a write
        of it cut short; also one named ``<stem>.json`` by a release before the hashed names,
        when its content names this call)."""
        stem, audio = safe_file_stem(call_id), self.owned_roots[0]
        pending = pending_save_path(self.pending_dir, call_id)
        partial = (sorted(self.pending_dir.glob(f".{glob.escape(pending.name)}.*.tmp"))
                   if self.pending_dir.is_dir() else [])
        legacy = self.pending_dir / f"{stem}.json"
        saves = [pending, *partial, *([legacy] if _names_call(legacy, call_id) else [])]
        return [audio / f"{stem}.wav", audio / f"{stem}.tmp.wav", *saves] if recordings else saves

    def _recordings_are_mine(self, call: CallToErase, erasing: Collection[str]) -> bool:
        """Whether the recordings named after the call's file stem are its own.

        The recorder names them ``safe_file_stem(call_id)``, which two ids can share (``CA-1@pbx``,
        ``CA-1_pbx``): they are this call's when its row or the spool's manifest names this call,
        or when no other stored call (one not erased with it) has the stem.
        """
        stem, audio = safe_file_stem(call.call_id), self.owned_roots[0]
        present = [p for p in (audio / f"{stem}.wav", audio / f"{stem}.tmp.wav",
                               *spool_files(audio, call.call_id)) if p.is_file()]
        if not present:
            return True  # nothing to decide (and no query per call of a long purge)
        if call.audio_path and Path(call.audio_path).resolve() == (audio / f"{stem}.wav").resolve():
            return True
        if self._manifest_names(call.call_id) or not self._stem_shared(call.call_id, erasing):
            return True
        log.warning("erasing call %s: kept %s, named alike for another stored call", call.call_id,
                    ", ".join(p.name for p in present))
        return False

    def _stem_shared(self, call_id: str, erasing: Collection[str]) -> bool:
        """Whether a stored call other than those in ``erasing`` has ``call_id``'s file stem."""
        stem = safe_file_stem(call_id)
        # LIKE's "_" matches any one character, as safe_file_stem replaced any one by "_"; a
        # stem cut at 200 characters may stand for a longer id. Exact match in Python.
        pattern = stem + ("%" if len(stem) >= 200 else "")
        with self.store.session() as session:
            alike = session.scalars(select(CallRow.call_id).where(CallRow.call_id.like(pattern))).all()
        return any(other != call_id and other not in erasing and safe_file_stem(other) == stem for other in alike)

    def _manifest_names(self, call_id: str) -> bool:
        """Whether the spool manifest named after ``call_id``'s stem is this call's."""
        manifest = spool_manifest_path(self.owned_roots[0], call_id)
        return any(_names_call(path, call_id) for path in (manifest, manifest.with_name(manifest.name + ".recovering")))

    @staticmethod
    def _unlink(victims: list[Path], report: ErasureReport, dry_run: bool) -> None:
        for victim in victims:
            if not victim.is_file():
                continue
            report.bytes_freed += victim.stat().st_size
            report.files.append(str(victim))
            if not dry_run:
                victim.unlink()

    def _owned(self, audio_path: str | None) -> bool:
        if not audio_path or audio_path.startswith("live:"):
            return False
        resolved = Path(audio_path).resolve()
        return any(resolved.is_relative_to(root) for root in self.owned_roots)

    def _upload_job_dir(self, path: Path) -> Path | None:
        """``data_dir/uploads/<job>`` for an uploaded file: the whole job folder goes."""
        uploads = self.owned_roots[1]
        resolved = path.resolve()
        if not resolved.is_relative_to(uploads) or resolved.parent == uploads:
            return None
        return uploads / resolved.relative_to(uploads).parts[0]



def _names_call(path: Path, call_id: str) -> bool:
    """Whether the JSON file ``path`` (a pending save, a spool manifest) says it is ``call_id``'s."""
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("call_id") == call_id)
    except (OSError, ValueError, AttributeError):
        return False


def _stale(heartbeat_at: datetime | None, started_at: datetime, now: datetime) -> bool:
    """Whether a call last stamped at ``heartbeat_at`` has lost its process (see module docstring)."""
    if heartbeat_at is None:
        return _as_utc(started_at) < now - LEGACY_ORPHAN_AFTER
    return _as_utc(heartbeat_at) < now - ORPHAN_AFTER


def touch_calls(store: Store, call_ids: Collection[str], *, now: datetime | None = None) -> list[str]:
    """Stamp the heartbeat of the active calls this process carries.

    A call a neighbour marked ``interrupted`` while this process was stalled (event loop blocked,
    database unreachable for longer than :data:`ORPHAN_AFTER`) is ``active`` again; returns the
    ids of such calls.
    """
    if not call_ids:
        return []
    now = now or datetime.now(UTC)
    ids = list(call_ids)
    with store.session() as session:
        revived = list(session.scalars(select(CallRow.call_id).where(CallRow.call_id.in_(ids),
                                                                     CallRow.status == "interrupted")))
        if revived:
            session.execute(update(CallRow).where(CallRow.call_id.in_(revived))
                            .values(status="active", error=None, ended_at=None, updated_at=now))
            log.warning("calls marked interrupted are running here after all, active again: %s", ", ".join(revived))
        session.execute(update(CallRow).where(CallRow.call_id.in_(ids), CallRow.status == "active")
                        .values(heartbeat_at=now))
    return revived


def interrupt_orphans(store: Store, *, now: datetime | None = None, keep: Collection[str] = ()) -> list[str]:
    """Mark ``interrupted`` every active live call whose process stopped heartbeating; returns their ids.

    Their stored turns stay (QA still lists and plays what was said); they can then be erased.
    ``keep``: calls that ended but whose call-end save waits on disk (``data_dir/pending``) to be
    stored: their process did not stop, the database refused their save.
    """
    now = now or datetime.now(UTC)
    query = select(CallRow).where(
        CallRow.status == "active", CallRow.kind == "live", CallRow.call_id.not_in(list(keep)),
        or_(CallRow.heartbeat_at < now - ORPHAN_AFTER,
            and_(CallRow.heartbeat_at.is_(None),
                 func.coalesce(CallRow.started_at, CallRow.created_at) < now - LEGACY_ORPHAN_AFTER)),
    ).with_for_update(skip_locked=True)  # two processes sweeping at once: each row once
    with store.session() as session:
        rows = session.scalars(query).all()
        for row in rows:
            row.status, row.error, row.updated_at = "interrupted", INTERRUPTED_ERROR, now
            row.ended_at = row.heartbeat_at  # the last moment the call was known to run
        ids = [row.call_id for row in rows]
    if ids:
        log.warning("marked %d calls interrupted (their server process stopped): %s", len(ids), ", ".join(ids))
    return ids
