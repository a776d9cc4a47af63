"""Run ``transcribe_file`` over an archive: resumable, parallel, with progress and an error log.

- Inputs are files, folders (searched recursively for audio) and globs.
- A file is finished when ``DIR/<name>.json`` exists with the same options fingerprint and every
  requested format is there; a second run skips it.
- Each bad file is reported in the summary and appended to ``DIR/errors.jsonl``; the others go on.
- Workers are processes, each with its own models (one load per process) and a share of the cores.
- The main process is the only writer of outputs and of the database (SQLite allows one writer).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice.batch.options import TranscribeOptions
from voice.errors import ConfigError, VoiceError
from voice.transcript import CallTranscript

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".webm", ".mp4",
                  ".aiff", ".aif", ".au", ".raw", ".pcm", ".sln", ".s16"}
ERRORS_FILE = "errors.jsonl"


@dataclass(frozen=True)
class FileJob:
    """One input file and the output name it writes under."""

    path: Path
    name: str


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


def expand_inputs(inputs: Sequence[str]) -> list[FileJob]:
    """Files, folders and globs -> unique jobs with collision-free output names.

    Raises:
        ConfigError: an input matches nothing.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES))
        elif path.exists():
            paths.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise ConfigError(f"{item}: no such file, folder or matching glob")
            paths.extend(matches)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    stems: dict[str, int] = {}
    for p in unique:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return [FileJob(p, p.stem if stems[p.stem] == 1 else f"{p.stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}")
            for p in unique]


def is_finished(out_dir: Path, job: FileJob, options: TranscribeOptions, formats: Sequence[str]) -> bool:
    """True when this file's outputs exist for exactly these options."""
    json_path = out_dir / f"{job.name}.json"
    if not json_path.is_file() or not all((out_dir / f"{job.name}.{fmt}").is_file() for fmt in formats):
        return False
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("options", {}).get("fingerprint") == options.fingerprint()


def transcribe_job(job: FileJob, options: TranscribeOptions, cpu_threads: int = 0) -> tuple[str, Any]:
    """Worker entry point: ("done", transcript dict) or ("failed", reason). Never raises."""
    from voice.batch.pipeline import transcribe_file

    try:
        transcript = transcribe_file(job.path, options, call_id=job.name, cpu_threads=cpu_threads)
        transcript.options["fingerprint"] = options.fingerprint()
        return "done", transcript.to_dict()
    except VoiceError as exc:
        return "failed", str(exc)
    except Exception as exc:  # a bug or an unforeseen input must not stop the batch
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return "failed", f"internal error {type(exc).__name__}: {exc} [{tb}]"


class BatchRunner:
    """Runs a batch: workers, outputs, database, error log, progress callbacks."""

    def __init__(self, out_dir: Path, options: TranscribeOptions, formats: Sequence[str], *,
                 workers: int = 1, store: Any = None,
                 on_result: Callable[[FileResult], None] | None = None) -> None:
        self.out_dir = out_dir
        self.options = options
        self.formats = list(formats)
        self.workers = max(1, workers)
        self.store = store
        self.on_result = on_result or (lambda _r: None)
        out_dir.mkdir(parents=True, exist_ok=True)

    def run(self, jobs: Iterable[FileJob]) -> BatchSummary:
        """Process every job; return the summary (failures included)."""
        summary = BatchSummary()
        todo = []
        for job in jobs:
            if is_finished(self.out_dir, job, self.options, self.formats):
                self._finish(summary, FileResult(job, "skipped"))
            else:
                todo.append(job)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        if self.workers == 1 or len(todo) <= 1:
            for job in todo:
                self._collect(summary, job, transcribe_job(job, self.options, threads))
            return summary
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            futures: dict[Future[tuple[str, Any]], FileJob] = {
                pool.submit(transcribe_job, job, self.options, threads): job for job in todo
            }
            from concurrent.futures import as_completed

            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker process died (e.g. out of memory)
                    outcome = ("failed", f"worker crashed: {type(exc).__name__}: {exc}")
                self._collect(summary, futures[future], outcome)
        return summary

    def _collect(self, summary: BatchSummary, job: FileJob, outcome: tuple[str, Any]) -> None:
        status, payload = outcome
        if status == "done":
            transcript = CallTranscript.from_dict(payload)
            self._write(job, transcript)
            result = FileResult(job, "done", audio_seconds=transcript.audio.duration, transcript=transcript)
        else:
            self._log_error(job, payload)
            result = FileResult(job, "failed", error=payload)
        self._finish(summary, result)

    def _write(self, job: FileJob, transcript: CallTranscript) -> None:
        from voice.formats import write_outputs

        # Other formats first, JSON last: the JSON marks the file finished for a resumed run.
        others = [f for f in self.formats if f != "json"]
        write_outputs(transcript, self.out_dir, job.name, others)
        write_outputs(transcript, self.out_dir, job.name, ["json"])
        if self.store is not None:
            self.store.save_transcript(transcript, source=str(job.path))

    def _log_error(self, job: FileJob, reason: str) -> None:
        record = {"path": str(job.path), "name": job.name, "error": reason,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        with open(self.out_dir / ERRORS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.store is not None:
            self.store.record_failure(job.name, reason, source=str(job.path))

    def _finish(self, summary: BatchSummary, result: FileResult) -> None:
        summary.results.append(result)
        self.on_result(result)
