"""Online speaker attribution with a fake embedding (tone voices): contract, labels, splitting."""

from __future__ import annotations

import numpy as np
import pytest

from diarize.errors import InvalidAudioError, InvalidOptionsError
from diarize.speech_gate import EnergyGate
from diarize.streaming import OnlineAttributionConfig, OnlineSpeakerAttributor
from diarize.types import SpeakerTurn
from tests.fakes.speakers import RATE, BandEnergyEmbedder, Said, speak

pytestmark = pytest.mark.unit

CHUNK = 320  # 20 ms
DIALOGUE = [
    Said(None, 0.5),
    Said("agent", 2.5),
    Said(None, 0.8),
    Said("customer", 3.0),
    Said(None, 0.8),
    Said("agent", 2.0),
    Said(None, 1.0),
]  # agent 0.5-3.0, customer 3.8-6.8, agent 7.6-9.6


def feed(
    attributor: OnlineSpeakerAttributor, audio: np.ndarray, offset: float = 0.0
) -> list[SpeakerTurn]:
    final: list[SpeakerTurn] = []
    for first in range(0, len(audio), CHUNK):
        final += attributor(audio[first : first + CHUNK], offset + first / RATE)
    return final


@pytest.fixture
def attributor() -> OnlineSpeakerAttributor:
    return OnlineSpeakerAttributor(BandEnergyEmbedder())


def test_declares_its_latency_contract(attributor: OnlineSpeakerAttributor) -> None:
    assert (attributor.duration, attributor.step, attributor.latency) == (1.5, 0.5, 1.5)
    assert attributor.sample_rate == 16000


def test_two_voices_get_two_speakers_in_order_of_first_speech(
    attributor: OnlineSpeakerAttributor,
) -> None:
    feed(attributor, speak(DIALOGUE))
    assert attributor.speakers == ("S0", "S1")
    assert attributor.speaker_at(0.6, 2.9) == "S0"
    assert attributor.speaker_at(3.9, 6.7) == "S1"
    assert attributor.speaker_at(7.7, 9.5) == "S0"
    assert attributor.timeline(3.25, 3.55) == []  # the pause between them is not speech


def test_final_labels_trail_the_audio_by_the_latency(attributor: OnlineSpeakerAttributor) -> None:
    audio = speak(DIALOGUE)
    final: list[SpeakerTurn] = []
    for first in range(0, len(audio), CHUNK):
        final += attributor(audio[first : first + CHUNK], first / RATE)
        if final:
            assert final[-1].end <= attributor.time - attributor.latency + attributor.step + 1e-6
    final += attributor.finish()
    customer = {t.speaker for t in final if 4.0 <= t.start < 6.5}
    assert customer == {"S1"}
    covered = sum(t.end - t.start for t in final)
    assert 7.0 < covered < 8.5  # 7.5 s of voice plus the gate's padding


def test_provisional_label_one_step_behind(attributor: OnlineSpeakerAttributor) -> None:
    feed(attributor, speak([Said("agent", 1.0)]))
    assert attributor.speaker_at(0.5, 1.0) == "S0"
    assert attributor.decided_until < 0.5


def test_reset_forgets_the_call(attributor: OnlineSpeakerAttributor) -> None:
    feed(attributor, speak(DIALOGUE))
    attributor.reset()
    assert attributor.speakers == () and attributor.timeline() == [] and attributor.time == 0.0
    feed(attributor, speak([Said("customer", 2.0)]), offset=42.0)  # a new call, new origin
    assert attributor.speakers == ("S0",)
    assert attributor.speaker_at(42.5, 43.5) == "S0"


def test_at_most_max_speakers(attributor: OnlineSpeakerAttributor) -> None:
    feed(attributor, speak([*DIALOGUE, Said("third", 2.0), Said(None, 0.5)]))
    assert attributor.speakers == ("S0", "S1")


def test_split_turn_at_the_speaker_change(attributor: OnlineSpeakerAttributor) -> None:
    feed(attributor, speak(DIALOGUE))
    agent_words = [(1.0, 1.4), (1.5, 1.9), (2.0, 2.6)]
    customer_words = [(4.0, 4.5), (4.6, 5.2), (5.3, 6.0)]
    runs = attributor.split_turn(agent_words + customer_words)
    assert [(r.first, r.stop, r.speaker) for r in runs] == [(0, 3, "S0"), (3, 6, "S1")]
    # one word of the other speaker inside a turn is label noise: no split
    runs = attributor.split_turn([*agent_words, (4.2, 4.6), (8.0, 8.4), (8.5, 9.0)])
    assert [(r.first, r.stop, r.speaker) for r in runs] == [(0, 6, "S0")]
    assert attributor.split_turn([]) == []


def test_gaps_are_silence_and_repeats_are_dropped(attributor: OnlineSpeakerAttributor) -> None:
    audio = speak([Said("agent", 1.0)])
    attributor(audio, 0.0)
    attributor(audio, 2.0)  # a second of lost audio before this chunk
    assert attributor.time == pytest.approx(3.0)
    attributor(audio[:CHUNK], 2.5)  # already received
    assert attributor.time == pytest.approx(3.0)
    assert attributor.timeline(1.3, 1.8) == []


def test_rejects_bad_input_and_options(attributor: OnlineSpeakerAttributor) -> None:
    with pytest.raises(InvalidAudioError):
        attributor(np.zeros((2, 320), dtype=np.float32), 0.0)
    with pytest.raises(InvalidOptionsError):
        OnlineAttributionConfig(step=2.0, duration=1.5)
    with pytest.raises(InvalidOptionsError):
        OnlineAttributionConfig(max_speakers=0)


def test_energy_gate_follows_the_floor_pads_and_bridges() -> None:
    gate = EnergyGate(
        margin_db=9.0, floor_db=-55.0, prior_db=-60.0, fill=0.5, pad=0.1, floor_history=10.0
    )
    audio = speak(
        [Said(None, 2.0), Said("agent", 0.5), Said(None, 0.3), Said("agent", 0.5), Said(None, 1.0)]
    )
    frames = audio.reshape(-1, 160)
    flags = np.zeros(len(frames), dtype=bool)
    for first in range(0, len(frames), 2):
        block, before = gate(frames[first : first + 2])
        flags[first : first + len(block)] = block
        flags[max(first - before, 0) : first] |= before > 0
    speech = np.flatnonzero(flags)
    # 2.0 s - pad ... 3.3 s + pad (+ one frame: the 500 Hz band's high-pass rings past the
    # synthetic speech's abrupt end)
    assert speech[0] == 190 and speech[-1] in (339, 340)
    assert flags[190:340].all()  # the 0.3 s pause is bridged


def test_a_hold_longer_than_the_history_is_silence_and_the_call_goes_on(
    attributor: OnlineSpeakerAttributor,
) -> None:
    """A gap longer than the frame history (a call on hold for 15 minutes) failed the leg's
    attribution with a ValueError; filled at once, it also held the whole gap in memory."""
    feed(attributor, speak(DIALOGUE))
    resumed = 15 * 60.0
    feed(attributor, speak(DIALOGUE), offset=resumed)
    assert attributor.time == pytest.approx(resumed + 10.6, abs=0.05)
    assert attributor.speaker_at(resumed + 3.9, resumed + 6.7) in attributor.speakers
    assert attributor.timeline(60.0, resumed) == []  # the hold is not speech
