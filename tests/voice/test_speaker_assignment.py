"""Which diarization speaker a transcribed word goes to (``voice transcribe`` in diarize mode)."""

from __future__ import annotations

import pytest

from voice.batch.pipeline import assign_speakers
from voice.frames import TimedWord

pytestmark = pytest.mark.unit

TURNS = [(0.0, 4.0, "SPEAKER_01"), (10.0, 14.0, "SPEAKER_00")]


def test_words_go_to_the_turn_they_overlap_or_the_nearest_within_a_second() -> None:
    words = [TimedWord("hello", 1.0, 1.4), TimedWord("there", 4.5, 4.9), TimedWord("yes", 10.2, 10.5)]
    assert assign_speakers(words, TURNS) == ["SPEAKER_01", "SPEAKER_01", "SPEAKER_00"]


def test_a_segment_starting_far_from_every_turn_takes_the_nearest_speaker() -> None:
    # Whisper heard words the diarization missed (7-8 s, 2 s before the second speaker's turn).
    # They used to get a fixed "S0", the label of a real speaker, whoever was nearest.
    words = [TimedWord("so", 7.6, 7.8), TimedWord("anyway", 7.9, 8.3), TimedWord("right", 10.1, 10.4)]
    assert assign_speakers(words, TURNS) == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_00"]
    assert assign_speakers(words, []) == [None, None, None]  # no turns: the caller's single speaker
