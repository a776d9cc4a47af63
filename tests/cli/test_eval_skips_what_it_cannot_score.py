"""`voice eval asr` and `voice eval diarization` score what they can: an unreadable recording is
listed as skipped with its reason, and the other files keep their scores (before, one bad file
ended the run with a traceback and no scores at all). A reference with nothing in it is scored:
what the engine invents on silence or hold music counts in the pooled numbers.

The engines are fakes of their interfaces (the reference text back, the reference turns back):
what is checked is the commands' handling of files, not the models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from diarize.rttm import read_rttm
from voice.cli import cli

pytestmark = pytest.mark.data

JFK = "asr/jfk"
PYANNOTE = "diarization/pyannote_sample_telephone"


def _not_audio(path: Path) -> None:
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)


def _eval(*args: str) -> Result:
    return CliRunner().invoke(cli, ["eval", *args])


@pytest.fixture
def fake_whisper(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    """WhisperEngine.load gives an engine that "hears" the JFK reference in any audio."""
    import voice.cli.eval_asr as eval_asr
    from asr import WhisperEngine

    heard = (shared_data / JFK / "jfk.txt").read_text(encoding="utf-8")
    engine = SimpleNamespace(device="cpu", compute_type="int8")
    monkeypatch.setattr(WhisperEngine, "load", staticmethod(lambda *_a, **_k: engine))
    monkeypatch.setattr(eval_asr, "product_transcriber", lambda *_a: lambda _samples: heard)


def test_eval_asr_skips_an_unreadable_file_and_pools_an_empty_references_insertions(
    fake_whisper: None, shared_data: Path, tmp_path: Path
) -> None:
    data = tmp_path / "refs"
    shutil.copytree(shared_data / JFK, data)
    _not_audio(data / "broken.wav")
    (data / "broken.txt").write_text("some words\n", encoding="utf-8")
    shutil.copy(data / "jfk.flac", data / "silence.flac")
    (data / "silence.txt").write_text("\n", encoding="utf-8")  # a reference with no words
    out = tmp_path / "wer.json"
    result = _eval("asr", str(data), "--out", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "pooled (2)" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    items = {item["name"]: item for item in report["items"]}
    assert set(items) == {"jfk.flac", "silence.flac"}
    # every word "heard" on the silent clip is an insertion: as many errors as JFK has words
    assert items["silence.flac"]["wer"] is None and items["silence.flac"]["counts"]["insertions"] == 22
    assert report["pooled"]["wer"] == 1.0
    skipped = {s["name"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"broken.wav"} and "not a readable audio file" in skipped["broken.wav"]


def test_eval_asr_fails_when_no_file_can_be_scored(fake_whisper: None, tmp_path: Path) -> None:
    data = tmp_path / "refs"
    data.mkdir()
    _not_audio(data / "broken.wav")
    (data / "broken.txt").write_text("some words\n", encoding="utf-8")
    result = _eval("asr", str(data))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "none of the 1 files could be scored: broken.wav:" in result.output


class _EchoDiarizer:
    """A diarizer that answers each recording with its reference turns (DER 0)."""

    name = "echo"
    parameters: dict[str, Any] = {}

    def __init__(self, reference: Any) -> None:
        self.reference = reference

    def diarize(self, samples: np.ndarray, sample_rate: int, options: Any, **_: Any) -> Any:
        return SimpleNamespace(to_annotation=lambda uri: self.reference.rename_tracks(),
                               speakers=tuple(self.reference.labels()))


def test_eval_diarization_skips_an_unreadable_file_and_pools_false_alarms_on_an_empty_reference(
    monkeypatch: pytest.MonkeyPatch, shared_data: Path, tmp_path: Path
) -> None:
    import voice.cli.eval_diarization as eval_diarization

    data = tmp_path / "calls"
    data.mkdir()
    for name in ("sample.wav", "sample.rttm"):
        shutil.copy(shared_data / PYANNOTE / name, data / name)
    _not_audio(data / "broken.wav")
    (data / "broken.rttm").write_text("SPEAKER broken 1 0.00 1.00 <NA> <NA> A <NA> <NA>\n")
    shutil.copy(data / "sample.wav", data / "quiet.wav")
    (data / "quiet.rttm").write_text("")  # no speech in the reference: all that is found is false alarm
    reference = read_rttm(data / "sample.rttm")["sample"]
    monkeypatch.setattr(eval_diarization, "_load_diarizer", lambda *_a: _EchoDiarizer(reference))
    out = tmp_path / "der.json"
    result = _eval("diarization", str(data), "--out", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(f["uri"] for f in report["files"]) == ["quiet", "sample"]
    pooled = report["pooled"]["calls"]
    assert pooled["false_alarm"] > 0.5 * pooled["total"] and pooled["der"] > 0.5
    skipped = {s["uri"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"broken"} and "not a readable audio file" in skipped["broken"]
