"""Transcript writers, read back with real parsers: pyannote's RTTM loader, srt, webvtt-py."""

from __future__ import annotations

import copy
import html
import json
from pathlib import Path

import pytest
import srt
import webvtt
from pyannote.database.util import load_rttm

from voice import formats
from voice.errors import ConfigError
from voice.formats import CueOptions, cues, to_rttm, to_srt, to_vtt, write_outputs
from voice.frames import TimedWord
from voice.transcript import CallTranscript, Segment, Speaker

pytestmark = pytest.mark.unit


def _vtt_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _texts_by_segment(transcript: CallTranscript) -> list[str]:
    return [s.text for s in sorted(transcript.segments, key=lambda s: s.start)]


def test_write_outputs_writes_every_format_atomically(
    tmp_path: Path, sample_transcript: CallTranscript
) -> None:
    paths = write_outputs(sample_transcript, tmp_path / "out", "SNG0696")
    assert [p.name for p in paths] == ["SNG0696.json", "SNG0696.rttm", "SNG0696.srt", "SNG0696.vtt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    loaded = CallTranscript.from_dict(json.loads(paths[0].read_text(encoding="utf-8")))
    assert loaded == sample_transcript

    only = write_outputs(sample_transcript, tmp_path / "out", "again", ["VTT", "srt", "vtt"])
    assert [p.name for p in only] == ["again.vtt", "again.srt"]


def test_rttm_reads_back_with_pyannote(tmp_path: Path, sample_transcript: CallTranscript) -> None:
    [path] = write_outputs(sample_transcript, tmp_path, "call", ["rttm"])
    lines = path.read_text().splitlines()
    assert len(lines) == len(sample_transcript.segments)
    assert lines[0] == "SPEAKER SNG0696-like 1 0.460 3.280 <NA> <NA> SPEAKER_00 <NA> <NA>"

    annotation = load_rttm(path)["SNG0696-like"]
    tracks = sorted(
        (seg.start, seg.end, label) for seg, _, label in annotation.itertracks(yield_label=True)
    )
    expected = sorted((s.start, s.end, s.speaker) for s in sample_transcript.segments)
    assert [t[2] for t in tracks] == [e[2] for e in expected]
    for (start, end, _), (want_start, want_end, _) in zip(tracks, expected, strict=True):
        assert start == pytest.approx(want_start, abs=1e-3) and end == pytest.approx(
            want_end, abs=2e-3
        )
    assert set(annotation.labels()) == {"SPEAKER_00", "SPEAKER_01"}


def test_srt_cues_keep_times_texts_and_speakers(sample_transcript: CallTranscript) -> None:
    subtitles = list(srt.parse(to_srt(sample_transcript)))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    speakers = {"Agent": "SPEAKER_00", "Customer": "SPEAKER_01"}
    by_segment: dict[int, list[str]] = {}
    for subtitle in subtitles:
        label, _, text = subtitle.content.replace("\n", " ").partition(": ")
        assert label in speakers
        lines = subtitle.content.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert (subtitle.end - subtitle.start).total_seconds() <= 7.0
        start = subtitle.start.total_seconds()
        segment = next(s for s in sample_transcript.segments if s.start - 1e-3 <= start <= s.end)
        assert speakers[label] == segment.speaker
        by_segment.setdefault(segment.id, []).append(text)
    assert [" ".join(parts) for _, parts in sorted(by_segment.items())] == _texts_by_segment(
        sample_transcript
    )

    # The long agent turn was cut at word times: each cue starts on one of its words.
    long_turn = sample_transcript.segments[4]
    long_cues = [
        s for s in subtitles if long_turn.start <= s.start.total_seconds() <= long_turn.end
    ]
    assert len(long_cues) >= 3
    word_starts = {round(w.start, 3) for w in long_turn.words}
    assert all(round(s.start.total_seconds(), 3) in word_starts for s in long_cues)
    assert subtitles[0].start.total_seconds() == pytest.approx(0.46)
    assert subtitles[0].content.startswith("Agent: Hi, this is Nan's customer service.")


def test_vtt_voice_tags_escaping_and_segments_without_words(
    sample_transcript: CallTranscript,
) -> None:
    text = to_vtt(sample_transcript)
    assert text.startswith("WEBVTT\n\n")
    assert "&amp; my e-mail" in text and "&lt;estimated&gt;" in text
    captions = list(webvtt.from_string(text))
    assert {c.voice for c in captions} == {"Agent", "Customer"}
    joined: dict[float, str] = {}
    for caption in captions:
        start, end = _vtt_seconds(caption.start), _vtt_seconds(caption.end)
        segment = next(s for s in sample_transcript.segments if s.start - 1e-3 <= start <= s.end)
        assert end <= segment.end + 1e-3
        assert caption.voice == ("Agent" if segment.role == "agent" else "Customer")
        part = html.unescape(caption.text.replace("\n", " "))
        joined[segment.start] = (
            f"{joined[segment.start]} {part}" if segment.start in joined else part
        )
    assert [joined[k] for k in sorted(joined)] == _texts_by_segment(sample_transcript)

    # The last segment has no word timestamps: its one cue spans the segment.
    last = captions[-1]
    assert (_vtt_seconds(last.start), _vtt_seconds(last.end)) == (32.0, pytest.approx(33.7))
    assert last.text == "Great, thanks so much. Bye!"


def test_cue_options_and_long_text_without_words(sample_transcript: CallTranscript) -> None:
    transcript = copy.deepcopy(sample_transcript)
    transcript.segments = [
        Segment(0, 3725.5, 3745.5, "SPEAKER_01", " ".join(["account"] * 40), "customer", 1)
    ]
    narrow = cues(transcript, CueOptions(line_width=30, max_lines=1, max_duration=60.0))
    assert all(len(c.text) <= 30 - len("Customer: ") for c in narrow)
    assert narrow[0].start == 3725.5 and narrow[-1].end == pytest.approx(3745.5)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(narrow, narrow[1:], strict=False))
    first = next(srt.parse(to_srt(transcript)))
    assert first.start.total_seconds() == pytest.approx(3725.5)
    assert "01:02:05,500 -->" in to_srt(transcript)


def test_zero_length_words_still_make_cues_players_show(sample_transcript: CallTranscript) -> None:
    transcript = copy.deepcopy(sample_transcript)
    words = [TimedWord("Thanks,", 1.0, 1.4, 0.9), TimedWord("bye.", 4.0, 4.0, 0.9)]
    transcript.segments = [
        Segment(0, 1.0, 4.0, "SPEAKER_00", "Thanks, bye.", "agent", 0, words=words),
        Segment(1, 6.0, 6.0, "SPEAKER_01", "Uh-huh.", "customer", 1),  # start == end, no words
        Segment(2, 6.1, 7.0, "SPEAKER_00", "Okay.", "agent", 0),
    ]
    spans = [(c.start, c.end) for c in cues(transcript)]
    assert spans == [(1.0, 1.4), (4.0, pytest.approx(4.2)), (6.0, pytest.approx(6.1)), (6.1, 7.0)]
    subtitles = list(srt.parse(to_srt(transcript)))
    assert all(s.end > s.start for s in subtitles)
    assert "00:00:04,000 --> 00:00:04,200" in to_srt(transcript)
    assert "00:00:06.000 --> 00:00:06.100" in to_vtt(transcript)


def test_unknown_or_shared_roles_fall_back_to_speaker_ids(
    sample_transcript: CallTranscript,
) -> None:
    transcript = copy.deepcopy(sample_transcript)
    transcript.speakers = [Speaker("SPEAKER_00", "agent"), Speaker("SPEAKER_01", "agent")]
    for segment in transcript.segments:
        segment.role = "agent"
    labels = {c.voice for c in webvtt.from_string(to_vtt(transcript))}
    assert labels == {"SPEAKER_00", "SPEAKER_01"}
    transcript.call_id = "call with spaces"
    assert to_rttm(transcript).split()[1] == "call_with_spaces"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, sample_transcript: CallTranscript, monkeypatch: pytest.MonkeyPatch
) -> None:
    [path] = write_outputs(sample_transcript, tmp_path, "call", ["srt"])
    before = path.read_text()

    def killed(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(formats.os, "fsync", killed)
    changed = copy.deepcopy(sample_transcript)
    changed.segments[0].text = "Something else entirely."
    with pytest.raises(OSError, match="disk full"):
        write_outputs(changed, tmp_path, "call", ["srt"])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["call.srt"]


@pytest.mark.parametrize(
    ("fmts", "name"), [(["json", "docx"], "call"), (["json"], "../call"), (["json"], "")]
)
def test_bad_formats_and_names_are_config_errors(
    tmp_path: Path, sample_transcript: CallTranscript, fmts: list[str], name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        write_outputs(sample_transcript, tmp_path, name, fmts)
    assert info.value.hint
    assert list(tmp_path.iterdir()) == []
