"""Pure parts of the engine: repetition-loop tests and the speech-region timeline (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.loops import (
    compression_ratio,
    drop_repeated_lines,
    is_repetition_loop,
    most_repeated_ngram,
)
from asr.timeline import SpeechTimeline
from asr.types import AsrInputError, AsrOptions, Segment, Word

pytestmark = pytest.mark.unit

LOOP = "Oh, I don't hear that in New Jersey now. " + "I don't hear that. " * 8
SPEECH = (
    "Hello. Oh, hello. I didn't know you were there. This is Diane in New Jersey. And I'm Sheila "
    "in Texas, originally from Chicago. Oh, I'm originally from Chicago also. I'm in New Jersey "
    "now though. Well, there isn't that much difference. At least, you know, they all call me a "
    "Yankee down here, so what can I say?"
)
DEFAULTS = AsrOptions()


def _loops(text: str) -> bool:
    return is_repetition_loop(
        text,
        max_compression_ratio=DEFAULTS.loop_compression_ratio,
        ngram_size=DEFAULTS.loop_ngram_size,
        max_ngram_repeats=DEFAULTS.loop_ngram_repeats,
    )


def test_a_looping_window_is_caught_and_normal_speech_is_not() -> None:
    assert compression_ratio(LOOP) > DEFAULTS.loop_compression_ratio
    assert most_repeated_ngram(LOOP, 3) == (("i", "don't", "hear"), 9)
    assert _loops(LOOP)
    assert not _loops(SPEECH)
    # An IVR menu repeats its frame ("press N to") with different numbers: not a loop.
    menu = "Press 1 to list users, press 2 to kick users, press 3 to mute, press 4 to record."
    assert not _loops(menu)


def test_short_repeats_are_caught_by_ngrams_before_compression() -> None:
    text = (
        "Okay. So we'll come up there. Oh, I don't hear that in New Jersey now. So we'll come up "
        "there, I guess. Well, so we'll come up there. And so we'll come up there."
    )
    assert compression_ratio(text) < DEFAULTS.loop_compression_ratio
    assert _loops(text)


def test_drop_repeated_lines_keeps_first_copies() -> None:
    lines = ["Hello.", "I don't hear that.", "i don't hear that", "Okay.", "I don't hear that!"]
    assert drop_repeated_lines(lines) == [True, True, False, True, False]


def _segment(start: float, end: float, words: list[tuple[str, float, float]]) -> Segment:
    return Segment(start, end, " ".join(w[0] for w in words),
                   tuple(Word(t, s, e, 0.9) for t, s, e in words), -0.2, 0.01, 1.2)  # fmt: skip


def test_timeline_joins_regions_and_maps_times_back() -> None:
    rate = 100
    audio = np.arange(1000, dtype=np.float32)  # 10 s at 100 Hz
    timeline = SpeechTimeline([(6.0, 8.0), (1.0, 3.0), (2.5, 3.5)], len(audio), rate)
    joined = timeline.join(audio)
    assert timeline.speech_duration == pytest.approx(4.5)
    assert joined.tolist() == list(range(100, 350)) + list(range(600, 800))
    # joined 0-2.5 s is original 1-3.5 s; joined 2.5-4.5 s is original 6-8 s
    seg = _segment(2.0, 3.5, [("end", 2.0, 2.5), ("seam", 2.3, 2.7), ("late", 3.0, 3.5)])
    mapped = timeline.map_segment(seg)
    assert [(w.text, w.start, w.end) for w in mapped.words] == [
        ("end", 3.0, 3.5),  # ends exactly on the seam: stays in the first region
        ("seam", 6.0, 6.2),  # ends after the seam: belongs to the second, start clamped to it
        ("late", 6.5, 7.0),
    ]
    assert (mapped.start, mapped.end) == (3.0, 7.0)


def test_timeline_without_words_maps_segment_ends_to_the_left_of_a_seam() -> None:
    timeline = SpeechTimeline([(1.0, 2.0), (5.0, 6.0)], 1000, 100)
    mapped = timeline.map_segment(Segment(0.5, 1.0, "x", (), -0.1, 0.0, 1.0))
    assert (mapped.start, mapped.end) == (1.5, 2.0)


def test_timeline_validation() -> None:
    assert SpeechTimeline([], 100, 100).is_empty
    assert SpeechTimeline([(5.0, 9.0)], 100, 100).is_empty  # entirely after the audio
    with pytest.raises(AsrInputError, match="ends before it starts"):
        SpeechTimeline([(2.0, 1.0)], 1000, 100)
