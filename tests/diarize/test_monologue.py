"""A long monologue must not split the talking party into two online speakers.

Real audio: SpokenWOZ SNG0072 mixed to mono (102 s), then its B leg's speech alone (A silent)
for 150 s, then the whole call again. A short centroid history (60 s of windows, 30 s half-life)
makes the monologue outlast it, as a 3-minute monologue outlasts the default 200 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Segment, Timeline

from diarize.embedding import SpeakerEmbedder
from diarize.eval import der_components
from diarize.rttm import read_rttm
from diarize.streaming import OnlineAttributionConfig, OnlineSpeakerAttributor
from diarize.types import SpeakerTurn
from voice.audio import load_audio

pytestmark = pytest.mark.model

RATE = 16000
MONOLOGUE = 150.0
CONFIG = OnlineAttributionConfig(history_windows=120, centroid_half_life=30.0)


@pytest.fixture(scope="module")
def call(shared_data: Path) -> tuple[np.ndarray, np.ndarray, Annotation]:
    """The mixed call, B's speech alone (looped to MONOLOGUE s), and the reference."""
    folder = shared_data / "diarization" / "spokenwoz_calls_8k"
    audio = load_audio(folder / "SNG0072.wav")
    reference = read_rttm(folder / "SNG0072.derived.rttm")["SNG0072"]
    mixed = (audio.channel(0) + audio.channel(1)) / 2
    b_leg = audio.channel(1) / 2
    b_speech = np.concatenate(
        [b_leg[int(s.start * RATE) : int(s.end * RATE)] for s in reference.label_timeline("B")]
    )
    monologue = np.tile(b_speech, int(np.ceil(MONOLOGUE * RATE / len(b_speech))))
    return mixed, monologue[: int(MONOLOGUE * RATE)], reference


def _seconds_by_label(turns: list[SpeakerTurn], lo: float, hi: float) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for turn in turns:
        overlap = min(turn.end, hi) - max(turn.start, lo)
        if overlap > 0:
            seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + overlap
    return seconds


def _der(turns: list[SpeakerTurn], reference: Annotation, shift: float, duration: float) -> float:
    hypothesis = Annotation(uri=reference.uri)
    for index, turn in enumerate(turns):
        if turn.start >= shift:
            hypothesis[Segment(turn.start - shift, turn.end - shift), index] = turn.speaker
    uem = Timeline([Segment(0.0, duration)], uri=reference.uri)
    return der_components(reference, hypothesis, uem).der


def test_a_long_monologue_keeps_one_speaker_and_the_call_after_it(
    embedder: SpeakerEmbedder, call: tuple[np.ndarray, np.ndarray, Annotation]
) -> None:
    mixed, monologue, reference = call
    duration = len(mixed) / RATE
    audio = np.concatenate([mixed, monologue, mixed])
    attributor = OnlineSpeakerAttributor(embedder, CONFIG)
    turns: list[SpeakerTurn] = []
    for first in range(0, len(audio), RATE // 2):
        turns += attributor(audio[first : first + RATE // 2], first / RATE)
    turns += attributor.finish()
    alone = _seconds_by_label(turns, duration, duration + MONOLOGUE)
    # measured: B's monologue 130.4 s under one label, 1.6 s under the other; before the
    # quiet-speaker freeze and the per-speaker anchors 88.4 / 43.6 s (split in two).
    assert max(alone.values()) / sum(alone.values()) > 0.9, alone
    first_pass = _der(turns, reference, 0.0, duration)
    second_pass = _der(turns, reference, duration + MONOLOGUE, duration)
    # measured: 10.6 % then 10.1 % (before: 10.6 % then 11.7 %)
    assert second_pass < first_pass + 0.01, (first_pass, second_pass)
