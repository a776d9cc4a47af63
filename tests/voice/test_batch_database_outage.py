"""`voice transcribe` during a database outage: a file the database refuses keeps its transcription
(JSON and other formats written, the failure reported as before), and the next run only stores it
from its JSON, never transcribing it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.voice.batch_faults import decode_or_die
from voice.batch.options import TranscribeOptions
from voice.batch.runner import BatchRunner, FileJob, expand_inputs
from voice.errors import StorageError
from voice.store import Store
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit

OPTIONS = TranscribeOptions(model="tiny.en", beam_size=1, speakers="none")


class _DownAfter:
    """The real store, with transcript saves failing as an unreachable server's do after ``saves`` of them."""

    def __init__(self, store: Store, saves: int) -> None:
        self._store = store
        self.saves = saves

    def save_transcript(self, transcript: CallTranscript, **kwargs: Any) -> None:
        if self.saves <= 0:
            raise StorageError("database postgresql://app@127.0.0.1/postgres: connection refused", hint="retry")
        self.saves -= 1
        self._store.save_transcript(transcript, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _never_again(job: FileJob, options: TranscribeOptions, cpu_threads: int = 0) -> tuple[str, Any]:
    raise AssertionError(f"{job.path.name} was transcribed again")


def test_a_database_outage_keeps_the_transcriptions_and_a_rerun_only_stores_them(tmp_path: Path) -> None:
    archive = tmp_path / "in"
    archive.mkdir()
    for name in ("a", "b", "c"):
        sf.write(archive / f"{name}.wav", (np.sin(np.arange(8000) / 5) * 0.3).astype(np.float32), 8000)
    out = tmp_path / "out"
    out.mkdir()
    with Store.open(f"sqlite:///{out / 'nextline.db'}") as store:
        jobs = expand_inputs([str(archive)], out)
        first = BatchRunner(out, OPTIONS, ["json", "srt"], store=_DownAfter(store, saves=1),
                            work=decode_or_die).run(jobs)

        assert [(r.job.name, r.status) for r in first.results] == [("a", "done"), ("b", "failed"), ("c", "failed")]
        assert all((out / f"{name}.{fmt}").is_file() for name in "abc" for fmt in ("json", "srt"))
        assert all("could not be stored in the database" in (r.error or "") and "connection refused" in (r.error or "")
                   for r in first.failed)
        errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
        assert [Path(e["path"]).name for e in errors] == ["b.wav", "c.wav"]
        assert [c.call_id for c in store.list_calls() if c.status == "done"] == ["a"]

        again = BatchRunner(out, OPTIONS, ["json", "srt"], store=store, work=_never_again).run(jobs)

        assert [(r.job.name, r.status) for r in again.results] == [("a", "skipped"), ("b", "skipped"),
                                                                   ("c", "skipped")]
        assert sorted(c.call_id for c in store.list_calls() if c.status == "done") == ["a", "b", "c"]
        assert store.get_transcript("b").audio.path == str((archive / "b.wav").resolve())
        assert (out / "errors.jsonl").read_text() == ""  # their failures are over
