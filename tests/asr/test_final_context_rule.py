"""The rule that tells a final decode's context words from the turn's own (asr.final_context),
on word lists shaped as Whisper writes them at the seam (the real-audio cases are in
test_final_words.py)."""

from __future__ import annotations

import pytest

from asr.final_context import own_words
from asr.types import Word

pytestmark = pytest.mark.unit


def _texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


def test_a_turn_opening_with_the_contexts_last_word_keeps_it_when_no_context_was_decoded() -> None:
    """With no context word decoded, one "Okay" matching the context's last word was taken for
    the context's, and the turn lost its first word (a review of the new rule found it)."""
    words = [Word("Okay,", 1.45, 1.9, 0.9), Word("thanks.", 1.9, 2.3, 0.9)]
    assert _texts(own_words(words, 1.6, ["sure", "okay"])) == ["Okay,", "thanks."]


def test_the_contexts_own_copy_stretched_over_the_seam_is_still_dropped() -> None:
    """Where the context was decoded and its last word stretched over the seam, it goes."""
    words = [Word("sure", 0.5, 1.0, 0.9), Word("okay", 1.0, 1.9, 0.9), Word("thanks.", 1.9, 2.3, 0.9)]
    kept = own_words(words, 1.6, ["sure", "okay"])
    assert _texts(kept) == ["thanks."] and kept[0].start >= 1.6
