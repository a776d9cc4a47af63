"""RTTM/UEM round trips and the DER convention (collar, overlap, pooling), on synthetic turns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyannote.core import Annotation, Segment

from diarize.errors import AnnotationFormatError
from diarize.eval import (
    DerComponents,
    der_components,
    find_reference_files,
    pooled,
    whole_recording,
)
from diarize.rttm import read_rttm, read_uem, write_rttm
from diarize.types import Diarization, DiarizationOptions, SpeakerTurn

pytestmark = pytest.mark.unit

TURNS = [  # two AMI-style speakers, one with a non-ASCII label, overlapping at 4.0-4.5 s
    (0.5, 2.25, "MÉO069"),
    (2.75, 4.5, "MEE068"),
    (4.0, 7.125, "MÉO069"),
    (8.0, 9.5, "MEE068"),
]


def _annotation(uri: str = "meeting", shift: float = 0.0) -> Annotation:
    annotation = Annotation(uri=uri)
    for track, (start, end, label) in enumerate(TURNS):
        annotation[Segment(start + shift, end + shift), track] = label
    return annotation


def _turns(annotation: Annotation) -> list[tuple[float, float, str]]:
    return sorted(
        (round(s.start, 3), round(s.end, 3), str(label))
        for s, _, label in annotation.itertracks(yield_label=True)
    )


def test_rttm_round_trip_keeps_non_ascii_labels_and_overlap(tmp_path: Path) -> None:
    path = tmp_path / "meeting.rttm"
    write_rttm(_annotation(), path)
    assert "MÉO069" in path.read_text(encoding="utf-8")
    read = read_rttm(path)
    assert list(read) == ["meeting"]
    assert _turns(read["meeting"]) == sorted(TURNS)
    assert read["meeting"].get_overlap().duration() == pytest.approx(0.5)


def test_rttm_holds_several_recordings_and_skips_comments(tmp_path: Path) -> None:
    buffer = io.StringIO()
    write_rttm([_annotation("a"), _annotation("b", shift=1.0)], buffer)
    path = tmp_path / "two.rttm"
    path.write_text(";; comment\n\n" + buffer.getvalue(), encoding="utf-8")
    read = read_rttm(path)
    assert sorted(read) == ["a", "b"]
    assert _turns(read["b"])[0] == (1.5, 3.25, "MÉO069")


def test_three_speakers_on_the_same_segment_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "same.rttm"
    path.write_text("".join(f"SPEAKER f 1 0.0 1.0 <NA> <NA> {who} <NA> <NA>\n" for who in "ABC"))
    annotation = read_rttm(path)["f"]
    assert annotation.labels() == ["A", "B", "C"]
    assert _turns(annotation) == [(0.0, 1.0, "A"), (0.0, 1.0, "B"), (0.0, 1.0, "C")]


def test_malformed_rttm_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER x 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER x 1 zero 1.0 <NA> <NA> B\n")
    with pytest.raises(AnnotationFormatError, match=r"bad\.rttm:2"):
        read_rttm(path)


def test_labels_with_spaces_cannot_be_written() -> None:
    annotation = Annotation(uri="x")
    annotation[Segment(0, 1)] = "agent one"
    with pytest.raises(AnnotationFormatError):
        write_rttm(annotation, io.StringIO())


def test_uem_regions_are_read_per_uri(tmp_path: Path) -> None:
    path = tmp_path / "all.uem"
    path.write_text("dev00 NA 0.000 30.000\ntrn02 NA 5.0 12.5\ntrn02 NA 20 25\n")
    regions = read_uem(path)
    assert regions["dev00"].extent() == Segment(0.0, 30.0)
    assert regions["trn02"].duration() == pytest.approx(12.5)


def test_der_of_a_reference_against_itself_is_zero() -> None:
    reference = _annotation()
    scores = der_components(reference, _annotation(), whole_recording("meeting", 10.0))
    assert scores.der == 0.0 and scores.total > 0.0


def test_overlap_is_scored_once_per_speaker() -> None:
    uem = whole_recording("meeting", 10.0)
    scores = der_components(_annotation(), _annotation(), uem, collar=0.0)
    assert scores.total == pytest.approx(sum(e - s for s, e, _ in TURNS))  # 4.0-4.5 twice
    # The 0.25 s collar leaves 0.125 s either side of each of the 8 boundaries unscored: each
    # takes 0.125 s of its own turn, and the two inside the overlap 0.25 s of the other turn.
    collared = der_components(_annotation(), _annotation(), uem).total
    assert collared == pytest.approx(scores.total - 8 * 0.125 - 2 * 0.25)


def test_shift_beyond_the_collar_costs_and_inside_it_is_forgiven() -> None:
    uem = whole_recording("meeting", 12.0)
    far = der_components(_annotation(), _annotation(shift=1.0), uem)
    assert far.der > 0.1
    assert far.missed > 0 and far.false_alarm > 0
    # pyannote's collar is the total width: 0.25 forgives 0.125 s on each side of a boundary.
    assert der_components(_annotation(), _annotation(shift=0.1), uem).der == 0.0
    assert der_components(_annotation(), _annotation(shift=0.2), uem).der > 0.0


def test_swapped_labels_are_not_confusion_but_a_merged_speaker_is() -> None:
    uem = whole_recording("meeting", 10.0)
    swapped = _annotation().rename_labels({"MÉO069": "S1", "MEE068": "S0"})
    assert der_components(_annotation(), swapped, uem).der == 0.0
    merged = _annotation().rename_labels({"MÉO069": "S0", "MEE068": "S0"}).support()
    scores = der_components(_annotation(), merged, uem, collar=0.0)
    assert scores.missed == pytest.approx(0.5)  # one speaker where two overlap
    assert scores.confusion == pytest.approx(3.25 - 0.5)  # MEE068 outside the overlap


def test_pooled_der_weighs_files_by_speech_time() -> None:
    short = DerComponents(total=10.0, missed=5.0, false_alarm=0.0, confusion=0.0)
    long = DerComponents(total=90.0, missed=0.0, false_alarm=0.0, confusion=9.0)
    assert pooled([short, long]).der == pytest.approx(14.0 / 100.0)
    assert (short.der + long.der) / 2 != pytest.approx(pooled([short, long]).der)


def test_diarization_converts_to_an_annotation() -> None:
    turns = tuple(SpeakerTurn(s, e, label) for s, e, label in TURNS)
    result = Diarization(turns, ("MEE068", "MÉO069"), DiarizationOptions(num_speakers=2))
    assert _turns(result.to_annotation("meeting")) == sorted(TURNS)
    assert result.speech_duration("MEE068") == pytest.approx(3.25)


def test_reference_files_pair_audio_with_rttm_and_uem(tmp_path: Path) -> None:
    (tmp_path / "CALL1.wav").write_bytes(b"")
    write_rttm(_annotation("CALL1"), tmp_path / "CALL1.derived.rttm")
    write_rttm(_annotation("orphan"), tmp_path / "orphan.rttm")  # no audio: skipped
    (tmp_path / "all.uem").write_text("CALL1 NA 0.0 9.0\n")
    [found] = find_reference_files(tmp_path)
    assert (found.uri, found.audio.name, found.collection) == ("CALL1", "CALL1.wav", tmp_path.name)
    assert found.uem is not None and found.uem.duration() == pytest.approx(9.0)
    assert _turns(found.reference) == sorted(TURNS)


def test_speaker_count_options_are_validated() -> None:
    with pytest.raises(ValueError):
        DiarizationOptions(min_speakers=3, max_speakers=2)
    with pytest.raises(ValueError):
        DiarizationOptions(num_speakers=2, max_speakers=3)
    with pytest.raises(ValueError):
        DiarizationOptions(num_speakers=0)
    assert DiarizationOptions.telephone_call().num_speakers == 2
