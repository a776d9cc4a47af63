"""A typed error of the product or of an engine that reaches the top of `voice` ends the command
as "Error: ..." with exit status 1, not a traceback: an RTTM line with too few fields
(diarize's AnnotationFormatError), an STM time that is not a number (a bare ValueError before)
and a reference or RTTM file that is not UTF-8 (a UnicodeDecodeError before)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voice.cli import cli

pytestmark = pytest.mark.unit


def _silence(path: Path, seconds: float = 0.2, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    return " ".join(result.output.split())


def _refs(tmp_path: Path, name: str, content: bytes) -> Path:
    data = tmp_path / "refs"
    data.mkdir()
    _silence(data / "call.wav")
    (data / name).write_bytes(content)
    return data


def test_an_rttm_line_with_too_few_fields(tmp_path: Path) -> None:
    data = _refs(tmp_path, "call.rttm", b"SPEAKER call 1 0.00\n")
    said = _one_line_error(CliRunner().invoke(cli, ["eval", "diarization", str(data)]))
    assert f"{data / 'call.rttm'}:1: SPEAKER line with 4 fields" in said


def test_an_rttm_file_that_is_not_utf8(tmp_path: Path) -> None:
    data = _refs(tmp_path, "call.rttm", "SPEAKER call 1 0.00 0.10 <NA> <NA> Ana\xefs <NA> <NA>\n".encode("latin-1"))
    said = _one_line_error(CliRunner().invoke(cli, ["eval", "diarization", str(data)]))
    assert f"{data / 'call.rttm'} is not UTF-8 text" in said and "re-save it as UTF-8" in said


def test_an_stm_time_that_is_not_a_number(tmp_path: Path) -> None:
    data = _refs(tmp_path, "call.stm", b"call 1 A zero 0.2 hello\n")
    said = _one_line_error(CliRunner().invoke(cli, ["eval", "asr", str(data)]))
    assert "'zero' is not a time in seconds" in said


def test_a_reference_text_that_is_not_utf8(tmp_path: Path) -> None:
    data = _refs(tmp_path, "call.txt", "caf\xe9 au lait".encode("latin-1"))
    said = _one_line_error(CliRunner().invoke(cli, ["eval", "asr", str(data)]))
    assert f"{data / 'call.txt'} is not UTF-8 text" in said and "re-save it as UTF-8" in said
