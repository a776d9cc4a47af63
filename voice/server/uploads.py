"""QA uploads: a recording goes through the batch transcription path, then the suggestion model.

The file is streamed to ``data_dir/uploads/<job>/`` by the route; one worker thread then runs
``transcribe_file`` (faster-whisper and pyannote release the GIL while they compute), stores the
transcript as a ``batch`` call, and asks :class:`~voice.server.review.ReviewService` for the
suggested-vs-actual table. Jobs are kept in memory for the status page; the results are in the
database.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voice.audio import RawFormat
from voice.errors import VoiceError
from voice.store.qa import QaStore
from voice.store.store import CallOwner

log = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 500 * 1024 * 1024
KEEP_JOBS = 200


@dataclass
class UploadJob:
    """One uploaded recording and where it is in the pipeline."""

    job_id: str
    filename: str
    path: str
    tenant: str | None
    agent_id: str | None
    uploaded_by: str
    status: str = "receiving"
    """receiving -> queued -> transcribing -> reviewing -> done | failed."""
    call_id: str | None = None
    error: str | None = None
    warning: str | None = None
    created_at: float = field(default_factory=time.time)
    stage_started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    audio_seconds: float | None = None
    raw: RawFormat | None = None
    """How to read headerless PCM (sample rate, channels); None for files with a header."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (without the server-side path)."""
        data = asdict(self)
        data.pop("path")
        data["elapsed"] = round((self.finished_at or time.time()) - self.created_at, 1)
        return data


class UploadQueue:
    """Upload jobs and the worker that processes them in order."""

    def __init__(self, config: Any, store: Any, qa: QaStore, reviews: Any) -> None:
        self.config = config
        self.store = store
        self.qa = qa
        self.reviews = reviews
        self.root = Path(config.data_dir) / "uploads"
        self._jobs: OrderedDict[str, UploadJob] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, "qa-upload")

    def create(self, filename: str, *, tenant: str | None, agent_id: str | None, uploaded_by: str,
               raw: RawFormat | None = None) -> UploadJob:
        """A new job with a safe file name under the uploads folder (``raw``: headerless PCM's format)."""
        job_id = secrets.token_hex(6)
        name = _safe_name(filename)
        path = self.root / job_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        job = UploadJob(job_id, name, str(path), tenant or None, agent_id or None, uploaded_by, raw=raw)
        with self._lock:
            self._jobs[job_id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        return job

    def start(self, job: UploadJob) -> None:
        """The file is complete: queue it for processing."""
        self._stage(job, "queued")
        self._executor.submit(self._process, job)

    def fail(self, job: UploadJob, reason: str) -> None:
        """Mark a job failed (e.g. the upload broke off)."""
        job.error = reason
        self._stage(job, "failed")
        job.finished_at = time.time()

    def refuse(self, job: UploadJob, reason: str) -> None:
        """Fail a job whose file did not arrive whole (too large, empty, broken off) and delete
        what did arrive: nothing will ever read it, and a refused 500 MiB would stay on disk."""
        self.fail(job, reason)
        shutil.rmtree(Path(job.path).parent, ignore_errors=True)

    def get(self, job_id: str) -> UploadJob | None:
        """A job by id."""
        return self._jobs.get(job_id)

    def list(self) -> list[UploadJob]:
        """Jobs newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def close(self) -> None:
        """Stop after the current job."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _process(self, job: UploadJob) -> None:
        try:
            self._transcribe(job)
        except VoiceError as exc:
            self.fail(job, str(exc))
            return
        except Exception as exc:  # an unforeseen input must not kill the worker
            log.exception("upload %s failed", job.job_id)
            self.fail(job, f"internal error {type(exc).__name__}: {exc}")
            return
        self._review(job)
        self._stage(job, "done")
        job.finished_at = time.time()

    def _transcribe(self, job: UploadJob) -> None:
        from voice.batch.options import TranscribeOptions
        from voice.batch.pipeline import transcribe_file

        self._stage(job, "transcribing")
        call_id = f"{Path(job.filename).stem[:80]}-{job.job_id}"
        raw = job.raw
        options = TranscribeOptions(model=self.config.model, raw_rate=raw.sample_rate if raw else None,
                                    raw_channels=raw.channels if raw else 1)
        transcript = transcribe_file(job.path, options, call_id=call_id)
        transcript.options["uploaded_by"] = job.uploaded_by
        # The owner goes in the transcript's transaction: a call nobody's tenant can see is never committed.
        self.store.save_transcript(transcript, source=job.path,
                                   owner=CallOwner("batch", tenant=job.tenant, agent_id=job.agent_id))
        job.call_id, job.audio_seconds = call_id, transcript.audio.duration

    def _review(self, job: UploadJob) -> None:
        from voice.server.review import ReviewUnavailableError

        self._stage(job, "reviewing")
        try:
            assert job.call_id is not None
            self.reviews.compute(job.call_id, job.tenant)
        except ReviewUnavailableError as exc:
            job.warning = f"transcribed; no suggestions: {exc}"
        except VoiceError as exc:
            job.warning = f"transcribed; suggestions failed: {exc}"

    def _stage(self, job: UploadJob, status: str) -> None:
        job.status, job.stage_started_at = status, time.time()


def _safe_name(filename: str) -> str:
    """A file name that cannot leave its folder: the base name in tame characters, its audio
    suffix kept (``録音.wav`` is ``recording.wav``, not ``wav``: a call id and a media type)."""
    base = Path(filename.replace("\\", "/")).name
    suffix = re.sub(r"[^A-Za-z0-9.]+", "", Path(base).suffix)[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", base[: len(base) - len(Path(base).suffix)]).strip("._")
    return (stem or "recording")[: 120 - len(suffix)] + suffix
