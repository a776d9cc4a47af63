"""The WER normaliser, word-error counting, and the reference readers (no model, no shared data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.references import (
    EvalItem,
    ReferenceError,
    discover,
    read_stm,
    read_tsv,
    read_txt,
    stm_text,
)
from asr.wer import WerCounts, normalize, pooled, word_errors

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("go forward ten meters", "Go forward 10 meters."),
        ("it costs forty dollars", "It costs $40."),
        ("forty dollars and fifty cents", "$40.50"),
        ("press one to list users two to kick", "Press 1 to list users, 2 to kick"),
        ("one hundred and five", "105"),
        ("twenty five thousand three hundred", "25,300"),
        ("a thousand people", "1000 people"),
        ("five million", "5 million"),
        ("the twenty first of may", "the 21st of May"),
        ("ten percent off", "10% off"),
        ("press star to toggle pause", "press * to toggle pause"),
        ("mister john dashwood", "Mr. John Dashwood"),
        ("okay", "OK"),
        ("one dollar", "$1"),
        ("it is forty dollars", "It is $40.00."),  # Whisper writes the cents of round sums
        ("five million dollars", "$5 million"),
        ("one million five hundred thousand dollars", "$1.5 million"),
        ("forty dollars and fifty cents", "$40.5"),
        ("ninety nine cents", "$0.99"),
        ("at three pm", "at 3 p.m."),
        ("nine am okay", "9 a.m., O.K."),
        ("the person you are calling", "the person you're calling"),
        ("i am sorry we can not and will not", "I'm sorry, we can't and won't"),
    ],
)
def test_spoken_and_written_forms_normalise_alike(spoken: str, written: str) -> None:
    assert normalize(spoken) == normalize(written)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("one two three four", "1234"),  # numbers read in pieces are joined
        ("twelve thirty four", "1234"),
        ("extension 1-2-3-4, dial 6-00", "extension 1234 dial 600"),
        ("nineteen ninety nine", "1999"),
        ("press 1 to mute, 2 to lock", "press 1 to mute 2 to lock"),
        ("I didn't know\u2014you were there.", "i did not know you were there"),
        ("that's the party's line", "that's the party's line"),  # 's is left alone
        ("\u2018Quoted\u2019 party\u2019s", "quoted party's"),
        ("re-entered www.asterisk.org", "re entered www asterisk org"),
        ("a 28.8 kilobit modem", "a 28.8 kilobit modem"),
        ("Um, so, uh, hmm yes", "so yes"),
        ("at 3:30 or three thirty", "at 330 or 330"),
        ("", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_word_errors_counts_each_edit_kind() -> None:
    counts = word_errors("please enter your agent number", "Please enter the agent number now.")
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    assert counts.reference_words == 5
    assert counts.wer == pytest.approx(2 / 5)


def test_word_errors_with_empty_sides() -> None:
    assert word_errors("", "") == WerCounts(0, 0, 0, 0)
    assert word_errors("", "thank you") == WerCounts(0, 0, 2, 0)
    assert word_errors("hello there", "") == WerCounts(0, 2, 0, 2)
    assert word_errors("", "thank you").wer == float("inf")


def test_pooled_wer_is_total_errors_over_total_reference_words() -> None:
    short = word_errors(
        "he was not an ill disposed young man", "he was not an old sposed young man"
    )
    long = word_errors("and so my fellow americans ask not", "and so my fellow americans ask not")
    total = pooled([short, long])
    assert total.errors == short.errors == 2
    assert total.reference_words == 15
    assert total.wer == pytest.approx(2 / 15)
    assert total.wer != pytest.approx((short.wer + long.wer) / 2)


def test_readers(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" go forward\nten meters \n", encoding="utf-8")
    (tmp_path / "t.tsv").write_text(
        "channel\tutt\treference\nleft\tx\tHELLO THERE\nright\ty\tHi.\n"
    )
    (tmp_path / "s.stm").write_text(
        ";; comment\ns 1 B 2.0 3.0 second line\ns 1 A 0.5 1.5 Hello? there\ns 1 A 4.0 4.5\n"
    )
    assert read_txt(tmp_path / "a.txt") == "go forward ten meters"
    assert read_tsv(tmp_path / "t.tsv") == {"left": "HELLO THERE", "right": "Hi."}
    lines = read_stm(tmp_path / "s.stm")
    assert [(x.speaker, x.start, x.end, x.text) for x in lines][1] == (
        "A",
        0.5,
        1.5,
        "Hello? there",
    )
    assert stm_text(tmp_path / "s.stm") == "Hello? there second line"


def test_stm_labels_ignored_segments_and_hesitations_are_not_words(tmp_path: Path) -> None:
    (tmp_path / "labels.stm").write_text(
        "call1 A spk1 0.00 2.00 <o,f0,male> hello there\n"
        "call1 A spk2 2.00 4.00 ignore_time_segment_in_scoring\n"
        "call1 A spk1 4.00 5.00 (%HESITATION) yes\n"
        "call1 A spk2 5.00 6.00 <o,f0,female>\n"
    )
    lines = read_stm(tmp_path / "labels.stm")
    assert [(x.label, x.text) for x in lines] == [
        ("<o,f0,male>", "hello there"),
        ("", "ignore_time_segment_in_scoring"),
        ("", "(%HESITATION) yes"),
        ("<o,f0,female>", ""),
    ]
    assert [x.ignored for x in lines] == [False, True, False, False]
    reference = stm_text(tmp_path / "labels.stm")
    assert reference == "hello there yes"
    assert word_errors(reference, "Hello there. Yes.").wer == 0.0


def test_discover_layouts(tmp_path: Path) -> None:
    table = tmp_path / "prompts"
    (table / "wav").mkdir(parents=True)
    (table / "wav" / "p1.wav").write_bytes(b"x")
    (table / "p1.txt").write_text("ignored: the table wins")
    (table / "transcription.tsv").write_text("file\treference\nwav/p1.wav\tpress 1\n")
    stereo = tmp_path / "stereo"
    stereo.mkdir()
    (stereo / "call.wav").write_bytes(b"x")
    (stereo / "call.refs.tsv").write_text(
        "channel\treference\nleft\tagent text\nright\tcaller text\n"
    )
    (stereo / "go.raw").write_bytes(b"x")
    (stereo / "go.txt").write_text("go forward")
    (stereo / "orphan.txt").write_text("no audio for this one")
    items = discover([tmp_path])
    assert set(items) == {
        EvalItem(table / "wav" / "p1.wav", "press 1"),
        EvalItem(stereo / "call.wav", "agent text", 0),
        EvalItem(stereo / "call.wav", "caller text", 1),
        EvalItem(stereo / "go.raw", "go forward"),
    }


def test_discover_rejects_missing_audio(tmp_path: Path) -> None:
    (tmp_path / "transcription.tsv").write_text("utt_id\treference\nmissing\tsome words\n")
    with pytest.raises(ReferenceError, match="no audio file for 'missing'"):
        discover([tmp_path])
