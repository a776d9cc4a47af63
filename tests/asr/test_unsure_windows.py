"""A greedy window that scores below ``log_prob_threshold`` is decoded again with beam 5
(``WhisperEngine._beam_for_unsure_windows``). Scripted decodes (no model), so the rule is tested
the same on every CPU: which windows, over which audio, shifted to where, and when the beam's
words are not taken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from asr import AsrOptions, WhisperEngine
from asr.engine import UNSURE_WINDOW_BEAM
from asr.types import Segment, Word

pytestmark = pytest.mark.unit
RATE = 16000
Windows = list[tuple[float, list[Segment]]]


def segment(start: float, end: float, text: str, logprob: float) -> Segment:
    words = text.split()
    step = (end - start) / len(words)
    timed = tuple(Word(w, start + i * step, start + (i + 1) * step, 0.9) for i, w in enumerate(words))
    return Segment(start, end, text, timed, avg_logprob=logprob, no_speech_prob=0.05, compression_ratio=1.2)


class Scripted(WhisperEngine):
    """``_run`` answers from ``script(beam_size, seconds)``; every call is recorded."""

    def __init__(self, script: Callable[[int, float], Windows]) -> None:
        super().__init__(None, name="scripted", device="cpu", compute_type="int8")  # type: ignore[arg-type]
        self.script = script
        self.calls: list[tuple[int, float]] = []

    def _run(self, samples: np.ndarray, kwargs: dict[str, Any], *, keep_words: bool) -> tuple[Windows, str]:
        call = (kwargs["beam_size"], len(samples) / RATE)
        self.calls.append(call)
        return self.script(*call), "en"


GREEDY = [  # 80 s: a good window, an unsure one, nothing in 60-70 s (silence), a good one
    (0.0, [segment(0.5, 1.5, "good morning", -0.3)]),
    (30.0, [segment(30.2, 30.6, "Kazul", -1.7)]),
    (70.0, [segment(70.5, 71.0, "bye", -0.2)]),
]


def texts(engine: WhisperEngine, options: AsrOptions) -> list[tuple[float, float, str]]:
    result = engine.transcribe(np.zeros(80 * RATE, np.float32), options)
    return [(round(s.start, 3), round(s.end, 3), s.text) for s in result.segments]


def test_only_the_unsure_window_is_decoded_again_over_its_own_30_s_and_shifted_into_place() -> None:
    beam = [(0.0, [segment(0.5, 2.5, "I have found one guest house", -0.5)])]
    engine = Scripted(lambda beam_size, seconds: GREEDY if beam_size == 1 else beam)
    assert texts(engine, AsrOptions(beam_size=1)) == [
        (0.5, 1.5, "good morning"), (30.5, 32.5, "I have found one guest house"), (70.5, 71.0, "bye")]
    assert engine.calls == [(1, 80.0), (UNSURE_WINDOW_BEAM, 30.0)]  # not 30-70 s: the silence stays out
    engine.calls.clear()
    texts(engine, AsrOptions(beam_size=5))
    assert engine.calls == [(5, 80.0)]  # a beam decode is left as it is


@pytest.mark.parametrize(
    "beam",
    [
        [(0.0, [segment(0.5, 2.5, "hmm", -2.0)])],  # scores worse
        [(0.0, [segment(0.5, 9.5, "the guest house " * 12, -0.1)])],  # a loop scores well
        [],  # nothing
    ],
)
def test_the_greedy_words_stay_when_the_beam_is_no_better(beam: Windows) -> None:
    engine = Scripted(lambda beam_size, seconds: GREEDY if beam_size == 1 else beam)
    assert texts(engine, AsrOptions(beam_size=1))[1] == (30.2, 30.6, "Kazul")


def test_windows_before_a_looping_one_are_made_sure_too() -> None:
    """The loop guard decodes again from the first looping window; the windows it keeps before it
    still get the unsure-window decode."""
    looping = [*GREEDY[:2], (70.0, [segment(70.0, 79.0, "okay " * 40, -0.2)])]
    beam = [(0.0, [segment(0.5, 2.5, "I have found one guest house", -0.5)])]

    def script(beam_size: int, seconds: float) -> Windows:
        if beam_size != 1:
            return beam
        return looping if seconds == 80.0 else [(0.0, [segment(0.5, 1.0, "bye", -0.2)])]  # the re-decode

    assert [text for _, _, text in texts(Scripted(script), AsrOptions(beam_size=1))] == [
        "good morning", "I have found one guest house", "bye"]
