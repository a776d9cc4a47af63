"""`voice transcribe --workers N`: a worker process that dies fails only the file that killed it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.voice.batch_faults import decode_or_die
from voice.batch.options import TranscribeOptions
from voice.batch.runner import BatchRunner, expand_inputs

pytestmark = pytest.mark.data

PROMPTS = "asr/asterisk_prompts_8k/wav"


def test_a_dead_worker_fails_only_its_file_and_the_batch_goes_on(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in"
    archive.mkdir()
    for name in ("a", "crash", "b", "c", "d"):
        shutil.copy(shared_data / PROMPTS / "agent-user.wav", archive / f"{name}.wav")
    out = tmp_path / "out"
    runner = BatchRunner(out, TranscribeOptions(model="tiny.en"), ["json"], workers=2, work=decode_or_die)
    summary = runner.run(expand_inputs([str(archive)], out))
    status = {r.job.path.stem: r.status for r in summary.results}
    # a or b shared the broken pool with crash: retried alone, they finish.
    assert status == {"a": "done", "b": "done", "c": "done", "d": "done", "crash": "failed"}
    (failure,) = summary.failed
    assert "died twice" in (failure.error or "") and "crash.wav" in (failure.error or "")
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json", "c.json", "d.json"]
