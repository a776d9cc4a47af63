"""`voice transcribe` refuses bad input before or without transcribing: options, models, truncated
files, and file names that look like Rich markup."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from voice.audio import load_audio
from voice.batch.options import TranscribeOptions
from voice.batch.runner import BatchSummary, FileJob, FileResult
from voice.cli import cli
from voice.cli.progress import BatchProgress, console, print_summary
from voice.errors import AudioDecodeError, ConfigError

pytestmark = pytest.mark.data

SAMPLE = "diarization/pyannote_sample_telephone/sample.wav"  # 30 s, 16 kHz mono PCM_16


def test_a_truncated_wav_fails_instead_of_becoming_a_short_call(shared_data: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes((shared_data / SAMPLE).read_bytes()[:20000])  # a half-copied file: header says 30 s
    with pytest.raises(AudioDecodeError, match=r"truncated: the header says 30\.0 s, the file holds 0\.62 s"):
        load_audio(cut)


def test_a_wav_written_as_a_stream_is_not_called_truncated(shared_data: Path, tmp_path: Path) -> None:
    data = bytearray((shared_data / SAMPLE).read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)  # recorders that never finalise the header
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    assert load_audio(streamed).info.duration == pytest.approx(30.0)


def test_an_unknown_model_fails_once_before_any_file_is_decoded(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", str(shared_data / "asr/jfk/jfk.flac"), "--out", str(out),
                                      "--model", "tiny"])
    assert result.exit_code == 1
    assert result.output.count("unknown Whisper model 'tiny'") == 1 and "tiny.en" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # no file decoded, no error log, no database of failed calls


@pytest.mark.parametrize(("option", "value"), [("--raw-channels", "0"), ("--raw-rate", "0"),
                                                ("--raw-rate", "-8000"), ("--agent-channel", "-1")])
def test_out_of_range_numbers_are_refused_up_front(shared_data: Path, tmp_path: Path, option: str,
                                                   value: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", str(shared_data / "asr/pocketsphinx_goforward/goforward.raw"),
                                      "--out", str(out), "--model", "tiny.en", option, value])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert not out.exists()


@pytest.mark.parametrize("fields", [{"raw_channels": 0}, {"raw_rate": 0}, {"agent_channel": -1}])
def test_the_options_refuse_the_same_numbers(fields: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        TranscribeOptions(**fields)  # type: ignore[arg-type]


def test_failure_output_shows_paths_and_reasons_verbatim(tmp_path: Path) -> None:
    odd = [FileResult(FileJob(Path("/archive/[agent] 2026-01-02 [bold].wav"), "a"), "failed", error="[inaudible] x"),
           FileResult(FileJob(Path("/archive/q[/x].wav"), "b"), "failed", error="closing [/red] tag")]
    with console.capture() as captured:
        with BatchProgress(len(odd)) as progress:
            for result in odd:
                progress.update(result)
        print_summary(BatchSummary(odd), tmp_path)
    text = captured.get()
    assert "/archive/[agent] 2026-01-02 [bold].wav: [inaudible] x" in text
    assert "/archive/q[/x].wav: closing [/red] tag" in text
    assert "[agent] 2026-01-02 [bold].wav" in text.split("failed files")[1]  # the summary table too
