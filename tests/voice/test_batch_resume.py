"""`voice transcribe` resume, outputs and database on real prompts with tiny.en: names keyed by
the source file, per-file save failures, database before JSON, and the error log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from voice.batch.options import TranscribeOptions
from voice.batch.runner import BatchRunner, expand_inputs
from voice.cli import cli
from voice.errors import StorageError
from voice.store import Store
from voice.transcript import CallTranscript

pytestmark = pytest.mark.model

PROMPTS = "asr/asterisk_prompts_8k/wav"
FAST = ["--model", "tiny.en", "--beam-size", "1", "--speakers", "none"]


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["transcribe", *args, *FAST])


def _prompt(shared_data: Path, name: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / PROMPTS / f"{name}.wav", to)
    return to


def _source(json_path: Path) -> str:
    return str(json.loads(json_path.read_text())["audio"]["path"])


def _calls(out: Path) -> dict[str, str]:
    with Store.open(f"sqlite:///{out / 'nextline.db'}") as store:
        return {c.call_id: store.get_transcript(c.call_id).audio.path for c in store.list_calls()}


def test_same_file_name_in_another_folder_is_transcribed_and_names_do_not_move(shared_data: Path,
                                                                                 tmp_path: Path) -> None:
    a = _prompt(shared_data, "agent-user", tmp_path / "dA" / "x.wav").resolve()
    b = _prompt(shared_data, "auth-incorrect", tmp_path / "dB" / "x.wav").resolve()
    out = tmp_path / "out"
    assert _run(str(a.parent), "--out", str(out)).exit_code == 0
    first = (out / "x.json").stat().st_mtime_ns
    result = _run(str(a.parent), str(b.parent), "--out", str(out))
    assert "1 transcribed, 1 already done, 0 failed" in result.output, result.output
    assert (out / "x.json").stat().st_mtime_ns == first and _source(out / "x.json") == str(a)
    (other,) = [p for p in out.glob("x-*.json")]
    assert _source(other) == str(b)
    assert "password" in json.loads(other.read_text())["segments"][0]["text"].lower()
    assert _calls(out) == {"x": str(a), other.stem: str(b)}  # one call per recording, none twice
    assert "0 transcribed, 1 already done" in _run(str(b), "--out", str(out)).output


def test_a_write_error_fails_that_file_only(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in"
    _prompt(shared_data, "agent-user", archive / "a.wav")
    _prompt(shared_data, "auth-incorrect", archive / "b.wav")
    long_name = _prompt(shared_data, "agent-user", archive / f"call_{'x' * 240}.wav")
    out = tmp_path / "out"
    (out / "a.srt").mkdir(parents=True)  # the SRT of a.wav cannot be written
    result = _run(str(archive), "--out", str(out))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # no traceback
    assert "1 failed" in result.output and "2 transcribed" in result.output
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [Path(e["path"]).name for e in errors] == ["a.wav"] and "could not save" in errors[0]["error"]
    assert not (out / "a.json").exists() and (out / "b.json").is_file()
    assert [_source(p) for p in out.glob("call_*.json")] == [str(long_name.resolve())]


class _DownOnSave:
    """The real store, except that saving transcripts fails as a locked database does."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save_transcript(self, transcript: CallTranscript, **_kw: object) -> None:
        raise StorageError("database is locked")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_failed_database_save_is_retried_by_the_next_run(shared_data: Path, tmp_path: Path) -> None:
    source = _prompt(shared_data, "agent-user", tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    options = TranscribeOptions(model="tiny.en", beam_size=1, speakers="none")
    out.mkdir()
    with Store.open(f"sqlite:///{out / 'nextline.db'}") as store:
        jobs = expand_inputs([str(source)], out)
        down = BatchRunner(out, options, ["json"], store=_DownOnSave(store)).run(jobs)
        assert [r.status for r in down.results] == ["failed"] and "locked" in (down.results[0].error or "")
        assert (out / "a.json").is_file()  # the transcription is kept; the database lacks it
        again = BatchRunner(out, options, ["json"], store=store).run(jobs)
        assert [r.status for r in again.results] == ["skipped"]  # stored from its JSON, not transcribed again
        assert store.get_transcript("a").audio.path == str(source.resolve())


def test_files_done_without_the_database_are_stored_from_their_json(shared_data: Path, tmp_path: Path) -> None:
    source = _prompt(shared_data, "agent-user", tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _run(str(source), "--out", str(out), "--no-db").exit_code == 0
    made = (out / "a.json").stat().st_mtime_ns
    result = _run(str(source), "--out", str(out))
    assert "0 transcribed, 1 already done" in result.output, result.output
    assert (out / "a.json").stat().st_mtime_ns == made  # not transcribed again
    stored = _calls(out)
    assert stored == {"a": str(source.resolve())}
    assert CallTranscript.from_dict(json.loads((out / "a.json").read_text())).segments[0].text


def test_the_error_log_lists_only_current_failures(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in"
    archive.mkdir()
    (archive / "late.wav").write_bytes(b"")  # not uploaded yet
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = {"path": "/other/run/bad.wav", "name": "bad", "error": "empty", "at": "2026-01-01T00:00:00+00:00"}
    (out / "errors.jsonl").write_text(json.dumps(elsewhere) + "\n")
    assert _run(str(archive), "--out", str(out), "--no-db").exit_code == 1
    assert "late.wav" in (out / "errors.jsonl").read_text()
    _prompt(shared_data, "agent-user", archive / "late.wav")  # now it arrived
    assert _run(str(archive), "--out", str(out), "--no-db").exit_code == 0
    assert [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()] == [elsewhere]
