"""`voice transcribe` resume safety on real recordings cut short, with tiny.en: clear-text subtitles
never survive --redact, odd file names, one --db for several OUT folders, truncated MP3s,
Ctrl-C and the error log, and options that do not apply to a file."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import voice.batch.pipeline
from tests.voice.test_batch_resume import FAST, PROMPTS, _prompt, _run
from voice.cli import cli
from voice.store import Store

pytestmark = pytest.mark.model

CALL = "diarization/spokenwoz_calls_8k/SNG0696.wav"  # a phone number is read out at 80-100 s


def _digit_runs(text: str) -> set[str]:
    """Runs of 3+ digits in the words (subtitle timings and cue numbers left out)."""
    words = " ".join(line for line in text.splitlines() if "-->" not in line and not line.strip().isdigit())
    return set(re.findall(r"\d{3,}", words))


def test_clear_text_subtitles_do_not_survive_a_redacted_rerun(shared_data: Path, tmp_path: Path) -> None:
    samples, rate = sf.read(shared_data / CALL, start=8000 * 80, frames=8000 * 20, dtype="int16")
    source = tmp_path / "in" / "call.wav"
    source.parent.mkdir()
    sf.write(source, samples, rate)
    out = tmp_path / "out"
    assert _run(str(source), "--out", str(out), "--no-db").exit_code == 0
    clear = (out / "call.srt").read_text()
    assert _digit_runs(clear), clear  # the number is there in clear text
    first = _run(str(source), "--out", str(out), "--no-db", "--redact", "--formats", "json")
    assert "1 transcribed" in first.output, first.output
    assert not [p.name for p in out.iterdir() if p.suffix in (".srt", ".vtt", ".rttm")]  # stale: removed
    second = _run(str(source), "--out", str(out), "--no-db", "--redact")
    assert "1 transcribed, 0 already done" in second.output, second.output
    redacted = " ".join(s["text"] for s in json.loads((out / "call.json").read_text())["segments"])
    for name in ("call.srt", "call.vtt"):
        subtitles = (out / name).read_text()
        assert not _digit_runs(clear) & _digit_runs(subtitles) - _digit_runs(redacted), subtitles
    assert "0 transcribed, 1 already done" in _run(str(source), "--out", str(out), "--no-db", "--redact").output


def test_a_subtitle_from_another_run_is_not_counted_as_done(shared_data: Path, tmp_path: Path) -> None:
    source = _prompt(shared_data, "agent-user", tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _run(str(source), "--out", str(out), "--no-db", "--formats", "json").exit_code == 0
    (out / "a.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nAgent: call me on 555 123 4567\n")
    result = _run(str(source), "--out", str(out), "--no-db", "--formats", "json,srt")
    assert "1 transcribed, 0 already done" in result.output, result.output
    assert "555" not in (out / "a.srt").read_text()


def test_a_latin1_file_name_does_not_stop_the_batch(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in"
    _prompt(shared_data, "agent-user", archive / "ok.wav")
    odd = Path(os.fsdecode(bytes(archive) + b"/caf\xe9 latin1.wav"))
    shutil.copy(shared_data / PROMPTS / "auth-incorrect.wav", odd)
    out = tmp_path / "out"
    result = _run(str(archive), "--out", str(out))
    assert result.exit_code == 0 and "2 transcribed" in result.output, result.output
    data = json.loads((out / "caf\\xe9 latin1.json").read_text(encoding="utf-8"))
    assert data["audio"]["path"].endswith("caf\\xe9 latin1.wav")
    assert "password" in data["segments"][0]["text"].lower()
    assert "0 transcribed, 2 already done" in _run(str(archive), "--out", str(out)).output


def test_a_latin1_file_that_fails_is_logged_and_the_others_go_on(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in"
    _prompt(shared_data, "agent-user", archive / "ok.wav")
    Path(os.fsdecode(bytes(archive) + b"/caf\xe9.wav")).write_bytes(b"not audio" * 100)
    out = tmp_path / "out"
    result = _run(str(archive), "--out", str(out))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "1 transcribed, 0 already done, 1 failed" in result.output, result.output
    (entry,) = [json.loads(line) for line in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert entry["path"].endswith("caf\\xe9.wav")


def test_one_database_for_two_folders_keeps_both_calls_of_one_stem(shared_data: Path, tmp_path: Path) -> None:
    day1 = _prompt(shared_data, "agent-user", tmp_path / "day1" / "call_0001.wav").resolve()
    day2 = _prompt(shared_data, "auth-incorrect", tmp_path / "day2" / "call_0001.wav").resolve()
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    assert _run(str(day1), "--out", str(tmp_path / "out1"), "--db", db).exit_code == 0
    assert _run(str(day2), "--out", str(tmp_path / "out2"), "--db", db).exit_code == 0
    again = _run(str(day1), "--out", str(tmp_path / "out1"), "--db", db)
    assert "0 transcribed, 1 already done" in again.output, again.output
    with Store.open(db) as store:
        calls = {c.call_id: store.get_transcript(c.call_id).audio.path for c in store.list_calls()}
    assert sorted(calls.values()) == [str(day1), str(day2)]
    assert calls["call_0001"] == str(day1)  # the first one keeps its call id


def test_a_truncated_mp3_fails_and_a_changed_source_is_redone(shared_data: Path, tmp_path: Path) -> None:
    samples, rate = sf.read(shared_data / PROMPTS / "agent-user.wav", dtype="float32")
    archive = tmp_path / "in"
    archive.mkdir()
    sf.write(archive / "cut.mp3", np.tile(samples, 3), rate, format="MP3")
    whole = (archive / "cut.mp3").read_bytes()
    (archive / "cut.mp3").write_bytes(whole[: len(whole) // 3])
    source = _prompt(shared_data, "agent-user", archive / "a.wav")
    out = tmp_path / "out"
    result = _run(str(archive), "--out", str(out), "--no-db")
    assert "1 transcribed, 0 already done, 1 failed" in result.output, result.output
    assert "truncated" in (out / "errors.jsonl").read_text() and not (out / "cut.json").exists()
    shutil.copy(shared_data / PROMPTS / "auth-incorrect.wav", source)  # the copy was redone
    result = _run(str(source), "--out", str(out), "--no-db")
    assert "1 transcribed, 0 already done" in result.output, result.output
    assert "password" in json.loads((out / "a.json").read_text())["segments"][0]["text"].lower()


def test_an_interrupted_run_keeps_earlier_failures_and_says_so(shared_data: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "in"
    _prompt(shared_data, "agent-user", archive / "a.wav")
    (archive / "z_bad.wav").write_bytes(b"")
    out = tmp_path / "out"
    assert _run(str(archive), "--out", str(out), "--no-db").exit_code == 1
    (out / "a.json").unlink()  # a.wav is redone first, and interrupted there

    def interrupted(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(voice.batch.pipeline, "transcribe_file", interrupted)
    result = _run(str(archive), "--out", str(out), "--no-db")
    assert result.exit_code == 130 and "interrupted" in result.output, result.output
    assert "0 transcribed" in result.output  # the summary so far
    assert "z_bad.wav" in (out / "errors.jsonl").read_text()


def test_adding_raw_rate_does_not_redo_wav_files(shared_data: Path, tmp_path: Path) -> None:
    source = _prompt(shared_data, "agent-user", tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _run(str(source), "--out", str(out), "--no-db").exit_code == 0
    result = _run(str(source), "--out", str(out), "--no-db", "--raw-rate", "8000", "--agent-channel", "1")
    assert "0 transcribed, 1 already done" in result.output, result.output
    wider = [*FAST, "--beam-size", "2"]  # the last --beam-size counts
    result = CliRunner().invoke(cli, ["transcribe", str(source), "--out", str(out), "--no-db", *wider])
    assert "1 transcribed" in result.output, result.output  # an option that applies still redoes it


def test_a_transcript_of_the_previous_release_stays_done(shared_data: Path, tmp_path: Path) -> None:
    # Before per-file fingerprints a transcript recorded the whole run's fingerprint (and no
    # output hashes): a corpus run with --raw-rate must not be transcribed again after upgrading.
    import json

    from voice.batch.options import TranscribeOptions

    source = _prompt(shared_data, "agent-user", tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _run(str(source), "--out", str(out), "--no-db", "--formats", "json").exit_code == 0
    path = out / "a.json"
    data = json.loads(path.read_text())
    data["options"].pop("outputs")
    data["options"].pop("source", None)
    fields = TranscribeOptions().to_dict().keys()
    recorded = {k: v for k, v in data["options"].items() if k in fields}
    data["options"]["fingerprint"] = TranscribeOptions(**{**recorded, "raw_rate": 8000}).fingerprint()
    path.write_text(json.dumps(data))
    result = _run(str(source), "--out", str(out), "--no-db", "--formats", "json", "--raw-rate", "8000")
    assert "0 transcribed, 1 already done" in result.output, result.output
