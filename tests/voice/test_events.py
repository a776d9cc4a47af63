"""Frames -> the JSON events of the agent's screen."""

from __future__ import annotations

import pytest

from voice.frames import TimedWord, TranscriptPartialFrame
from voice.server.events import frame_to_event

pytestmark = pytest.mark.unit


def test_partial_text_joins_streamed_words_with_spaces() -> None:
    # The streaming policy's words have no leading space (asr.engine strips Whisper's); a
    # word that still has one must not double it.
    committed = [TimedWord("Welcome", 0.0, 0.4, 0.9), TimedWord(" to", 0.4, 0.5, 0.9)]
    tentative = [TimedWord("the", 0.5, 0.6, 0.5), TimedWord("directory.", 0.6, 1.1, 0.5)]
    frame = TranscriptPartialFrame(
        leg="agent", committed=committed, tentative=tentative, audio_time=1.2, role="agent"
    )
    event = frame_to_event(frame)
    assert event is not None and event["type"] == "transcript.partial"
    assert event["text"] == "Welcome to the directory."
    assert [w["text"] for w in event["committed"]] == ["Welcome", " to"]
