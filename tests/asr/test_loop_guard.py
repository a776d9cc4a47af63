"""The engine's loop guard and decoding arguments, driven by a scripted stand-in for faster-whisper.

The stand-in implements the one method the engine calls (``WhisperModel.transcribe``) and
returns what faster-whisper returns: a lazy generator of segments plus an info object.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from asr import AsrOptions, WhisperEngine

pytestmark = pytest.mark.unit

RATE = 16000
LOOP_LINE = "I don't hear that."


def _segment(seek: float, start: float, end: float, text: str) -> SimpleNamespace:
    words = [
        SimpleNamespace(
            word=f" {w}", start=start + i * 0.1, end=start + i * 0.1 + 0.1, probability=0.9
        )
        for i, w in enumerate(text.split())
    ]
    scores = {"avg_logprob": -0.3, "no_speech_prob": 0.01, "compression_ratio": 1.5}
    return SimpleNamespace(
        seek=int(seek * 100), start=start, end=end, text=f" {text}", words=words, **scores
    )


class ScriptedWhisper:
    """Returns ``first`` for the first call, then ``retry`` for every anti-loop call."""

    def __init__(self, first: list[SimpleNamespace], retry: list[SimpleNamespace]) -> None:
        self.scripts = [first, retry]
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[Iterator[Any], Any]:
        self.calls.append((len(audio), kwargs))
        script = self.scripts[min(len(self.calls) - 1, 1)]
        return (s for s in script), SimpleNamespace(language="en")


def _engine(fake: ScriptedWhisper) -> WhisperEngine:
    return WhisperEngine(fake, name="scripted", device="cpu", compute_type="int8")  # type: ignore[arg-type]


CLEAN_WINDOW = [
    _segment(0, 0.0, 2.0, "Hello."),
    _segment(0, 2.0, 5.0, "This is Diane in New Jersey."),
]
LOOPING_WINDOW = [_segment(30, 30.0 + i, 31.0 + i, LOOP_LINE) for i in range(8)]


def test_clean_decoding_is_one_deterministic_pass() -> None:
    fake = ScriptedWhisper(CLEAN_WINDOW, [])
    result = _engine(fake).transcribe(np.zeros(10 * RATE, np.float32), AsrOptions(beam_size=2))
    assert result.text == "Hello. This is Diane in New Jersey."
    assert result.loops_redecoded == 0
    assert len(fake.calls) == 1
    kwargs = fake.calls[0][1]
    assert kwargs["temperature"] == 0.0 and kwargs["beam_size"] == 2
    assert kwargs["condition_on_previous_text"] is False and kwargs["vad_filter"] is False
    assert [w.text for w in result.words][:2] == ["Hello.", "This"]  # leading space stripped


def test_a_looping_window_is_decoded_again_from_its_start_with_anti_loop_settings() -> None:
    retry = [_segment(0, 0.5, 2.5, "Oh, I don't hear that in New Jersey now.")]
    fake = ScriptedWhisper(CLEAN_WINDOW + LOOPING_WINDOW, retry)
    options = AsrOptions(initial_prompt="Diane, Sheila", condition_on_previous_text=True)
    result = _engine(fake).transcribe(np.zeros(60 * RATE, np.float32), options)

    assert result.loops_redecoded == 1
    assert [s.text for s in result.segments] == [
        "Hello.",
        "This is Diane in New Jersey.",
        "Oh, I don't hear that in New Jersey now.",
    ]
    redo = result.segments[-1]
    assert (redo.start, redo.end) == (30.5, 32.5)  # shifted back to the full timeline
    assert redo.words[0].start == pytest.approx(30.5)
    samples, kwargs = fake.calls[1]
    assert samples == 30 * RATE  # from the looping window's start to the end
    assert kwargs["initial_prompt"] is None and kwargs["condition_on_previous_text"] is False
    assert kwargs["temperature"] == 0.0 and kwargs["word_timestamps"] is True
    assert kwargs["repetition_penalty"] == options.loop_repetition_penalty
    assert kwargs["no_repeat_ngram_size"] == options.loop_no_repeat_ngram_size


def test_lines_still_repeated_after_the_retry_are_dropped() -> None:
    fake = ScriptedWhisper(LOOPING_WINDOW, LOOPING_WINDOW)
    result = _engine(fake).transcribe(np.zeros(60 * RATE, np.float32))
    assert result.loops_redecoded == 1
    assert [s.text for s in result.segments] == [LOOP_LINE]


def test_turns_take_the_prompt_and_never_condition_on_previous_text() -> None:
    fake = ScriptedWhisper(CLEAN_WINDOW, [])
    options = AsrOptions(condition_on_previous_text=True)
    result = _engine(fake).transcribe_turn(np.zeros(5 * RATE, np.float32), options, prompt="Hi.")
    assert result.options.initial_prompt == "Hi."
    assert fake.calls[0][1]["initial_prompt"] == "Hi."
    assert fake.calls[0][1]["condition_on_previous_text"] is False


def test_a_clean_retry_keeps_lines_that_are_said_twice() -> None:
    retry = [_segment(0, 0.5, 1.0, "Hello?"), _segment(0, 1.5, 2.0, "Hello?")]
    fake = ScriptedWhisper(LOOPING_WINDOW, retry)
    options = AsrOptions(word_timestamps=False)
    result = _engine(fake).transcribe(np.zeros(60 * RATE, np.float32), options)
    assert result.loops_redecoded == 1
    assert result.text == "Hello? Hello?"
    assert fake.calls[1][1]["word_timestamps"] is True  # the retry seeks by word ends ...
    assert result.words == ()  # ... but returns only what the caller asked for
