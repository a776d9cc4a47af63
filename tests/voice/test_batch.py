"""`voice transcribe` end to end on real recordings: outputs, roles, bad files, resume, database."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import srt
import webvtt
from click.testing import CliRunner

from voice.cli import cli
from voice.store import Store

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def archive(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small call archive: a stereo phone call, a mono speech clip, and three bad files."""
    root = tmp_path_factory.mktemp("archive")
    shutil.copy(shared_data / "diarization/spokenwoz_calls_8k/MUL1423.wav", root / "MUL1423.wav")
    shutil.copy(shared_data / "asr/jfk/jfk.flac", root / "jfk.flac")
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.mp3").write_text("meeting notes, not audio\n" * 50)
    sample = shared_data / "diarization/pyannote_sample_telephone/sample.wav"
    (root / "half.wav").write_bytes(sample.read_bytes()[:40])
    return root


@pytest.fixture(scope="module")
def first_run(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(cli, ["transcribe", str(archive), "--out", str(out), "--model", "tiny.en",
                                      "--beam-size", "1", "--workers", "1"])
    return out, result


def test_bad_files_are_reported_and_the_others_finish(first_run: tuple[Path, object]) -> None:
    out, result = first_run
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errors) == ["empty.wav", "half.wav", "notes.mp3"]
    assert all(e["error"] for e in errors)
    assert (out / "MUL1423.json").is_file() and (out / "jfk.json").is_file()


def test_stereo_call_has_one_speaker_per_channel_and_the_agent_found(first_run: tuple[Path, object]) -> None:
    out, _ = first_run
    call = json.loads((out / "MUL1423.json").read_text())
    assert call["schema_version"] == "1.1" and call["options"]["speakers_used"] == "channels"
    roles = {s["id"]: (s["role"], s["channel"]) for s in call["speakers"]}
    assert roles == {"S0": ("customer", 0), "S1": ("agent", 1)}  # SpokenWOZ: the agent is on the right
    text = " ".join(s["text"] for s in call["segments"]).lower()
    assert "train" in text  # the customer is looking for a train
    for seg in call["segments"]:
        assert seg["words"] and seg["start"] <= seg["words"][0]["start"] + 0.5
        assert all(a["start"] <= b["start"] for a, b in zip(seg["words"], seg["words"][1:], strict=False))


def test_mono_clip_is_transcribed_with_one_speaker(first_run: tuple[Path, object]) -> None:
    out, _ = first_run
    call = json.loads((out / "jfk.json").read_text())
    text = re.sub(r"[^a-z ]", "", " ".join(s["text"] for s in call["segments"]).lower())
    assert "ask not what your country can do for you" in text
    assert len(call["speakers"]) == 1


def test_subtitles_and_rttm_parse_back(first_run: tuple[Path, object]) -> None:
    out, _ = first_run
    call = json.loads((out / "MUL1423.json").read_text())
    cues = list(srt.parse((out / "MUL1423.srt").read_text()))
    assert cues and cues[0].start.total_seconds() == pytest.approx(call["segments"][0]["start"], abs=0.01)
    vtt = webvtt.read(str(out / "MUL1423.vtt"))
    assert len(vtt.captions) == len(cues)
    rttm = [line.split() for line in (out / "MUL1423.rttm").read_text().splitlines()]
    assert {r[7] for r in rttm} == {"S0", "S1"} and all(r[0] == "SPEAKER" for r in rttm)


def test_results_and_failures_are_in_the_database(first_run: tuple[Path, object]) -> None:
    out, _ = first_run
    with Store.open(f"sqlite:///{out / 'nextline.db'}") as store:
        calls = {c.call_id: c.status for c in store.list_calls()}
        assert calls == {"MUL1423": "done", "jfk": "done", "empty": "failed", "notes": "failed", "half": "failed"}
        assert store.get_transcript("MUL1423").speakers[1].role == "agent"


def test_a_second_run_skips_finished_files(archive: Path, first_run: tuple[Path, object]) -> None:
    out, _ = first_run
    before = (out / "MUL1423.json").stat().st_mtime_ns
    result = CliRunner().invoke(cli, ["transcribe", str(archive), "--out", str(out), "--model", "tiny.en",
                                      "--beam-size", "1"])
    assert result.exit_code == 1  # the bad files are still bad
    assert "2 already done" in result.output and "3 failed" in result.output
    assert (out / "MUL1423.json").stat().st_mtime_ns == before


def test_redaction_masks_a_phone_number_read_out_in_pieces(shared_data: Path, tmp_path: Path) -> None:
    # SNG0696: the customer reads a phone number in three pieces while the agent repeats them.
    result = CliRunner().invoke(cli, ["transcribe", str(shared_data / "diarization/spokenwoz_calls_8k/SNG0696.wav"),
                                      "--out", str(tmp_path), "--model", "tiny.en", "--beam-size", "1", "--redact"])
    assert result.exit_code == 0, result.output
    call = json.loads((tmp_path / "SNG0696.json").read_text())
    assert call["redacted"] is True
    customer = [s for s in call["segments"] if s["role"] == "customer"]
    assert any("[PHONE]" in s["text"] for s in customer)
    digits = re.findall(r"\d", " ".join(s["text"] for s in customer))
    assert len(digits) < 7  # no phone-length run of digits survives on the customer's side
    for name in ("SNG0696.srt", "SNG0696.vtt"):
        assert "318" not in (tmp_path / name).read_text()
