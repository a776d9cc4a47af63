"""Online speaker attribution with the real CAM++ model on pyannote's telephone sample.

The sample (30 s, two speakers, 16 kHz mono) is replayed in 20 ms chunks, as a live leg.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from diarize.embedding import SpeakerEmbedder
from diarize.eval import der_components, whole_recording
from diarize.streaming import OnlineSpeakerAttributor
from diarize.types import SpeakerTurn

pytestmark = pytest.mark.model

CHUNK = 320  # 20 ms at 16 kHz
DER_BOUND = 0.20
"""measured (docs/results/online_diarization.md): final labels 9.1 % DER on this file with the
default config (13 % with min_window_speech 0.5 s; the offline pipeline: 1.3 %). The bound
leaves room for CPU-dependent float noise in CAM++ but fails when the two speakers merge (one
speaker found: 48 %) or the clustering breaks (a 0.75 s step gave 35 % here)."""


@pytest.fixture(scope="module")
def attributor(embedder: SpeakerEmbedder) -> OnlineSpeakerAttributor:
    return OnlineSpeakerAttributor(embedder)  # one torch thread (conftest), as the server runs it


def replay(attributor: OnlineSpeakerAttributor, audio: np.ndarray) -> list[SpeakerTurn]:
    final: list[SpeakerTurn] = []
    for first in range(0, len(audio), CHUNK):
        final += attributor(audio[first : first + CHUNK], first / attributor.sample_rate)
    return final


def as_annotation(turns: list[SpeakerTurn]) -> Annotation:
    annotation = Annotation(uri="sample")
    for index, turn in enumerate(turns):
        annotation[Segment(turn.start, turn.end), index] = turn.speaker
    return annotation


@pytest.fixture(scope="module")
def replayed(
    attributor: OnlineSpeakerAttributor, sample: tuple[np.ndarray, Annotation]
) -> list[SpeakerTurn]:
    attributor.reset()
    return replay(attributor, sample[0]) + attributor.finish()


def test_two_speakers_and_der_under_the_bound(
    attributor: OnlineSpeakerAttributor,
    sample: tuple[np.ndarray, Annotation],
    replayed: list[SpeakerTurn],
) -> None:
    assert attributor.speakers == ("S0", "S1")
    scores = der_components(sample[1], as_annotation(replayed), whole_recording("sample", 30.0))
    assert scores.der < DER_BOUND, scores
    # the reference has no speech before 6.7 s: neither do we
    assert min(turn.start for turn in replayed) > 6.0


def test_reset_clears_the_call_and_a_replay_is_deterministic(
    attributor: OnlineSpeakerAttributor,
    sample: tuple[np.ndarray, Annotation],
    replayed: list[SpeakerTurn],
) -> None:
    attributor.reset()
    assert attributor.speakers == () and attributor.timeline() == [] and attributor.time == 0.0
    opening = replay(attributor, sample[0][: 15 * 16000])  # final up to 15 s - latency
    assert opening and opening == [t for t in replayed if t.end <= opening[-1].end]
