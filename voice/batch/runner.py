"""Run ``transcribe_file`` over an archive: resumable, parallel, with progress and an error log.

- Inputs are files, folders (searched recursively for ``AUDIO_SUFFIXES``, following linked
  folders once each) and globs. A folder with no audio is refused; under a folder, a broken
  link named like audio and a subfolder that cannot be listed fail like a bad file.
- Output names and the "already done" check are keyed by the source file and the options
  (``voice.batch.resume``); a second run skips finished files. When a database is used, a
  skipped file that is missing from it is stored from its JSON (no re-transcription).
- A file's results go to its other formats first, to ``<name>.json`` next and to the database
  last: the JSON marks the file finished and records a hash of each other format written with
  it; formats of that name not written by this run are removed (they hold an earlier run's text,
  clear text before --redact). A file the database refuses (down, locked) is reported failed
  with its outputs written, and the next run stores it from its JSON without transcribing it.
- In a database, a file's call id is its output name, unless another source already holds that
  call (several OUT folders sharing one --db, ``day1/call_1.wav`` and ``day2/call_1.wav``): then
  it is ``<name>-<hash of the source path>``. No file overwrites another source's call.
- Each bad file is reported in the summary and in ``DIR/errors.jsonl``; the others go on. That
  log lists the failures of each file's latest run: a file's old entry goes when its new result
  is recorded, so an interrupted run keeps the entries of the files it did not reach.
- Workers are processes, each with its own models (one load per process) and a share of the cores.
  A worker that dies (out of memory, a crash in native code) is replaced; the files it may have
  been working on are retried one at a time, and only a file that kills its worker again fails.
- The main process is the only writer of outputs and of the database (SQLite allows one writer).
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice.batch.options import TranscribeOptions
from voice.batch.resume import (
    content_hash,
    display_path,
    file_fingerprint,
    finished_transcript,
    output_name,
    path_hash,
    source_stamp,
)
from voice.errors import ConfigError, VoiceError
from voice.transcript import CallTranscript

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".webm", ".mp4",
                  ".aiff", ".aif", ".au", ".raw", ".pcm", ".sln", ".s16"}
ERRORS_FILE = "errors.jsonl"


@dataclass(frozen=True)
class FileJob:
    """One input file and the output name it writes under."""

    path: Path
    name: str
    call_id: str = ""
    """The call id in the database; empty: ``name``."""
    problem: str = ""
    """Why this input fails before it is read (found while listing a folder): a broken link, or
    a folder that cannot be listed (then ``name`` is empty: it is not a call)."""


@dataclass
class FileResult:
    """What happened to one file."""

    job: FileJob
    status: str  # done | skipped | failed
    error: str | None = None
    audio_seconds: float = 0.0
    transcript: CallTranscript | None = None


@dataclass
class BatchSummary:
    """Counts and failures of a batch run."""

    results: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Number of files with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        """The files that failed, with their reasons."""
        return [r for r in self.results if r.status == "failed"]


def expand_inputs(inputs: Sequence[str], out_dir: Path) -> list[FileJob]:
    """Files, folders and globs -> unique jobs, named as ``voice.batch.resume`` describes.

    Raises:
        ConfigError: an input matches nothing, or nothing is found at all and a folder given has
            no audio (an empty folder among inputs that have audio is only a warning).
    """
    paths: list[Path] = []
    broken: dict[Path, str] = {}
    unlisted: dict[Path, str] = {}
    empty: list[str] = []  # folders given without any audio under them
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            its_broken: dict[Path, str] = {}
            its_unlisted: dict[Path, str] = {}
            found = _audio_under(path, its_broken, its_unlisted)
            broken.update(its_broken)
            unlisted.update(its_unlisted)
            if not found and not its_broken and not its_unlisted:
                empty.append(item)
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise ConfigError(f"{item}: no such file, folder or matching glob")
            paths.extend(matches)
    hint = f"files ending in {', '.join(sorted(AUDIO_SUFFIXES))} are transcribed"
    if empty and not (paths or broken or unlisted):
        raise ConfigError(f"{empty[0]}: no audio files found under this folder", hint=hint)
    for item in empty:  # one empty folder among others (a quiet month of an archive) stops nothing
        log.warning("%s: no audio files found under this folder (%s)", item, hint)
    unique = list(dict.fromkeys(Path(os.path.realpath(p)) for p in paths))  # Path.resolve raises on a link loop
    claimed: dict[str, Path] = {}  # a name recorded in out_dir is never handed to another source
    jobs = [FileJob(p, output_name(p, out_dir, claimed)) for p in unique]
    jobs += [FileJob(p, output_name(p, out_dir, claimed), problem=why) for p, why in broken.items()]
    jobs += [FileJob(p, "", problem=why) for p, why in unlisted.items()]  # a folder is not a call
    return jobs


def _audio_under(root: Path, broken: dict[Path, str], unlisted: dict[Path, str]) -> list[Path]:
    """Audio files under ``root``. Adds what ``Path.rglob`` would skip silently, with the reason:
    a broken link named like audio to ``broken``, a folder that cannot be listed to ``unlisted``.

    Linked folders are followed once each: a folder already seen under another name (a link to
    a parent, two links to one archive) is not walked again.
    """
    found: list[Path] = []

    def cannot_list(error: OSError) -> None:
        unlisted[Path(error.filename)] = f"cannot list this folder: {error.strerror or error}"

    top = os.path.realpath(root)
    seen = {top}
    for folder, dirs, files in os.walk(root, onerror=cannot_list, followlinks=True):
        kept = []
        for name in sorted(dirs):
            real = os.path.realpath(os.path.join(folder, name))
            if top.startswith(real.rstrip(os.sep) + os.sep):
                continue  # a link to a parent of the named folder: its siblings were not asked for
            if real not in seen:
                seen.add(real)
                kept.append(name)
        dirs[:] = kept
        for name in files:
            path = Path(folder, name)
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            try:
                if path.is_file():
                    found.append(path)
                elif path.is_symlink() and not path.exists():
                    # keyed by its real folder: the same link reached as /abs/x and x is one failure
                    broken[Path(os.path.realpath(folder), name)] = (f"broken link to {display_path(os.readlink(path))} "
                                    "(its target is missing, or the links form a loop)")
            except OSError as exc:  # a folder that can be listed but not entered
                broken[path] = f"cannot read: {exc.strerror or exc}"
    return sorted(found)


def is_finished(out_dir: Path, job: FileJob, options: TranscribeOptions, formats: Sequence[str]) -> bool:
    """True when this file's outputs exist for exactly this source and these options."""
    return finished_transcript(out_dir, job.name, job.path, options, formats) is not None


def transcribe_job(job: FileJob, options: TranscribeOptions, cpu_threads: int = 0) -> tuple[str, Any]:
    """Worker entry point: ("done", transcript dict) or ("failed", reason). Never raises."""
    from asr import AsrError
    from asr.models import ModelNotFoundError
    from voice.batch.pipeline import transcribe_file

    try:
        if os.path.isfile(job.path):  # not a FIFO: opening one would wait for a writer
            with open(job.path, "rb"):
                pass  # the decoder would call an unreadable file "not a readable audio file"
    except PermissionError as exc:
        return "failed", f"{job.path}: cannot read the file: {exc.strerror} (let the user running voice read it)"
    except OSError:
        pass  # gone since it was listed: transcribe_file says so
    try:
        transcript = transcribe_file(job.path, options, call_id=job.call_id or job.name, cpu_threads=cpu_threads)
        return "done", transcript.to_dict()
    except (VoiceError, AsrError, ModelNotFoundError) as exc:
        return "failed", str(exc)
    except Exception as exc:  # a bug or an unforeseen input must not stop the batch
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return "failed", f"internal error {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"


Work = Callable[[FileJob, TranscribeOptions, int], tuple[str, Any]]


class BatchRunner:
    """Runs a batch: workers, outputs, database, error log, progress callbacks.

    ``work`` is the per-file function run in the workers (a top-level, picklable function);
    tests replace it to make a worker die. ``summary`` holds the results so far, also when
    the run was interrupted (Ctrl-C).
    """

    def __init__(self, out_dir: Path, options: TranscribeOptions, formats: Sequence[str], *,
                 workers: int = 1, store: Any = None,
                 on_result: Callable[[FileResult], None] | None = None, work: Work = transcribe_job) -> None:
        self.out_dir = out_dir
        self.options = options
        self.formats = list(formats)
        self.workers = max(1, workers)
        self.store = store
        self.on_result = on_result or (lambda _r: None)
        self.work = work
        self.summary = BatchSummary()
        self._old_errors: set[str] = set()  # sources with an entry in errors.jsonl from an earlier run
        self._stamps: dict[Path, dict[str, int]] = {}
        out_dir.mkdir(parents=True, exist_ok=True)

    def run(self, jobs: Iterable[FileJob]) -> BatchSummary:
        """Process every job; return the summary (failures included).

        Raises:
            ConfigError: ``errors.jsonl`` in the output folder cannot be read or written.
            KeyboardInterrupt: the run was interrupted; ``self.summary`` has what was done.
        """
        summary = self.summary = BatchSummary()
        jobs = list(jobs)
        self._read_error_log(jobs)
        todo = []
        for given in jobs:
            if given.problem:  # a broken link gets its call id like any file: no other source's call is marked
                failing = self._with_call_id(summary, given, None) if given.name else given
                if failing is not None:
                    self._fail(summary, failing, given.problem)
                continue
            data = finished_transcript(self.out_dir, given.name, given.path, self.options, self.formats)
            job = self._with_call_id(summary, given, data)
            if job is None:
                continue
            if data is None:
                todo.append(job)
                try:
                    self._stamps[job.path] = source_stamp(job.path)  # before it is read
                except OSError:
                    pass  # the worker reports the missing file
            else:
                self._skip(summary, job, data)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        if self.workers == 1 or len(todo) <= 1:
            for job in todo:
                self._collect(summary, job, self.work(job, self.options, threads))
        else:
            self._run_parallel(summary, deque(todo), threads)
        return summary

    def _with_call_id(self, summary: BatchSummary, job: FileJob, data: dict[str, Any] | None) -> FileJob | None:
        """``job`` with its database call id; ``None`` (the file failed) when the database is down."""
        preferred = str((data or {}).get("call_id") or job.name)
        if self.store is None:
            return replace(job, call_id=preferred)
        try:
            return replace(job, call_id=self._free_call_id(job, preferred))
        except Exception as exc:  # the database is down: this file fails, the batch goes on
            self._fail(summary, job, f"could not look up the call in the database: {type(exc).__name__}: {exc}")
            return None

    def _free_call_id(self, job: FileJob, preferred: str) -> str:
        """The first of ``preferred``, ``<name>-<hash>`` that no other source holds in the database."""
        shown = display_path(job.path)
        for call_id in (preferred, f"{job.name}-{path_hash(job.path)}", f"{job.name}-{path_hash(job.path, 40)}"):
            owner = self._stored_source(call_id)
            if owner is None or owner == shown:
                return call_id
        raise AssertionError(f"no free call id for {shown}")  # needs a SHA-1 collision

    def _stored_source(self, call_id: str) -> str | None:
        """The source of the stored call ``call_id`` ("" when it has none), ``None`` when there is no such call."""
        from sqlalchemy import select

        from voice.store.tables import CallRow

        with self.store.session() as session:
            row = session.execute(
                select(CallRow.source, CallRow.audio_path).where(CallRow.call_id == call_id)
            ).one_or_none()
        return None if row is None else (row.source or row.audio_path or "")

    def _run_parallel(self, summary: BatchSummary, queue: deque[FileJob], threads: int) -> None:
        while queue:
            lost = self._pool_pass(summary, queue, self.workers, threads)
            # A worker died with these in flight: which one killed it is unknown, so each is
            # retried alone in a fresh pool, and only one that kills that pool too is blamed.
            for job in lost:
                if self._pool_pass(summary, deque([job]), 1, threads):
                    self._fail(summary, job, f"the worker process died twice while transcribing {job.path} "
                                             "(out of memory? try fewer --workers or split the file)")

    def _pool_pass(self, summary: BatchSummary, queue: deque[FileJob], limit: int, threads: int) -> list[FileJob]:
        """Run jobs from ``queue``, at most ``limit`` at a time (so we know which were running when
        a worker dies); returns the jobs lost to a dead worker, leaving unstarted ones in ``queue``."""
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        running: dict[Future[tuple[str, Any]], FileJob] = {}
        with ProcessPoolExecutor(limit, mp_context=context) as pool:
            try:
                while queue or running:
                    while queue and len(running) < limit:
                        future = pool.submit(self.work, queue[0], self.options, threads)
                        running[future] = queue.popleft()  # only once submitted: a broken pool keeps it queued
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()  # raises BrokenProcessPool while the job is still in running
                        self._collect(summary, running.pop(future), outcome)
            except BrokenProcessPool:
                return self._salvage(summary, running)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C reached the workers too
                raise
        return []

    def _salvage(self, summary: BatchSummary, running: dict[Future[tuple[str, Any]], FileJob]) -> list[FileJob]:
        """After a worker died: keep the results that made it, return the jobs that did not."""
        lost = []
        wait(running)
        for future, job in running.items():
            if future.exception() is None:
                self._collect(summary, job, future.result())
            else:
                lost.append(job)
        return lost

    def _skip(self, summary: BatchSummary, job: FileJob, data: dict[str, Any]) -> None:
        try:
            self._ensure_stored(job, data)
        except Exception as exc:  # the database is down: this file fails, the batch goes on
            self._fail(summary, job, f"finished earlier, but could not be stored in the database: "
                                     f"{type(exc).__name__}: {exc}")
            return
        self._finish(summary, FileResult(job, "skipped"))

    def _ensure_stored(self, job: FileJob, data: dict[str, Any]) -> None:
        """Store a finished file's JSON when the database lacks it (an earlier --no-db run, or a
        database that was down then): cheaper and more faithful than transcribing again."""
        if self.store is None:
            return
        from voice.store.store import CallNotFoundError

        try:
            stored = self.store.get_transcript(job.call_id)
            if (stored.audio.path == display_path(job.path)
                    and stored.options.get("fingerprint") == data["options"]["fingerprint"]):
                return
        except CallNotFoundError:
            pass
        transcript = CallTranscript.from_dict(data)
        transcript.call_id = job.call_id  # another source may hold the call id of the JSON
        self.store.save_transcript(transcript, source=display_path(job.path))

    def _collect(self, summary: BatchSummary, job: FileJob, outcome: tuple[str, Any]) -> None:
        status, payload = outcome
        if status != "done":
            self._fail(summary, job, payload)
            return
        try:
            transcript = CallTranscript.from_dict(payload)
            stored = self._write(job, transcript)
        except Exception as exc:  # disk full, read-only --out: this file fails, not the batch
            self._fail(summary, job, f"could not save the results: {type(exc).__name__}: {exc}")
            return
        if stored is not None:  # outputs written; the next run stores the JSON (_ensure_stored)
            self._fail(summary, job, f"transcribed, but could not be stored in the database: {stored} "
                                     "(its outputs are written: run again to store it, without transcribing)")
            return
        self._finish(summary, FileResult(job, "done", audio_seconds=transcript.audio.duration, transcript=transcript))

    def _write(self, job: FileJob, transcript: CallTranscript) -> str | None:
        """Write the file's outputs and store it; returns why the database did not take it (None: it did).

        Raises:
            Exception: an output could not be written (the file is not finished).
        """
        from voice.formats import FORMATS, write_outputs

        transcript.audio = replace(transcript.audio, path=display_path(job.path))
        mode = transcript.options.get("speakers_used")
        transcript.options["fingerprint"] = file_fingerprint(self.options, job.path,
                                                             mode if isinstance(mode, str) else None)
        if job.path in self._stamps:
            transcript.options["source"] = self._stamps[job.path]
        # Other formats first, JSON next: the JSON marks the file finished for a resumed run, and
        # records what was written with it (a hash per format). Database last: a failed save
        # (the database down or locked) keeps the transcription; the next run stores the JSON
        # of a finished file the database lacks (_ensure_stored) instead of transcribing again.
        others = [f for f in self.formats if f != "json"]
        for stale in set(FORMATS) - {"json", *others}:  # another run's text: never left beside this JSON
            (self.out_dir / f"{job.name}.{stale}").unlink(missing_ok=True)
        paths = write_outputs(transcript, self.out_dir, job.name, others)
        transcript.options["outputs"] = {fmt: content_hash(path) for fmt, path in zip(others, paths, strict=True)}
        write_outputs(transcript, self.out_dir, job.name, ["json"])
        if self.store is None:
            return None
        try:
            self.store.save_transcript(transcript, source=display_path(job.path))
        except Exception as exc:  # noqa: BLE001 - reported as this file's failure by _collect
            return f"{type(exc).__name__}: {exc}"
        return None

    def _fail(self, summary: BatchSummary, job: FileJob, reason: str) -> None:
        reason = display_path(str(reason))  # a Latin-1 file name in it cannot be written as UTF-8
        self._forget_old_error(job)
        self._finish(summary, FileResult(job, "failed", error=reason + self._log_error(job, reason)))

    def _log_error(self, job: FileJob, reason: str) -> str:
        """Record a failure in errors.jsonl and the database; returns what could not be recorded.
        Never raises: a failure that cannot be logged must not stop the batch."""
        notes = ""
        record = {"path": display_path(job.path), "name": job.name, "error": reason,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        try:
            with open(self.out_dir / ERRORS_FILE, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except Exception as exc:
            notes += f" [not in {ERRORS_FILE}: {exc}]"
        if self.store is not None and job.name:  # a folder that cannot be listed is no call
            try:
                self.store.record_failure(job.call_id or job.name, reason, source=display_path(job.path))
            except Exception as exc:  # the database may be the reason this file failed
                notes += f" [not in the database: {type(exc).__name__}: {exc}]"
        return notes

    def _read_error_log(self, jobs: Sequence[FileJob]) -> None:
        """Note which files of this run have entries from an earlier run; each goes once that
        file's new result is recorded (``_forget_old_error``), the others stay."""
        path = self.out_dir / ERRORS_FILE
        self._old_errors = set()
        if not path.is_file():
            return
        try:
            logged = {_logged_path(line) for line in path.read_text(encoding="utf-8").splitlines()}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the error log ({exc})",
                              hint="check that --out is readable, or move the file away") from exc
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{path}: cannot rewrite the error log (not writable)",
                              hint="check that --out is writable, or move the file away")
        self._old_errors = {p for p in logged if p} & {display_path(job.path) for job in jobs}

    def _forget_old_error(self, job: FileJob) -> None:
        """Drop the entries of an earlier run of ``job`` from errors.jsonl (its result is in now)."""
        shown = display_path(job.path)
        if shown not in self._old_errors:
            return
        self._old_errors.discard(shown)
        path = self.out_dir / ERRORS_FILE
        try:
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and _logged_path(line) != shown]
            tmp = path.with_name(f".{ERRORS_FILE}.tmp")
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(tmp, path)
        except (OSError, UnicodeDecodeError):
            pass  # the old entry stays: a stale line, not a reason to stop the batch

    def _finish(self, summary: BatchSummary, result: FileResult) -> None:
        if result.status != "failed":
            self._forget_old_error(result.job)
        summary.results.append(result)
        self.on_result(result)


def _logged_path(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a damaged line is kept: it is not ours to judge
    return record.get("path") if isinstance(record, dict) else None
