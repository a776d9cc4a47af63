"""SpeakerAttributionProcessor on a scripted mixed call (tone voices, fake embedding model)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.fakes.frames import Collector
from tests.fakes.speakers import BandEnergyEmbedder, Said, speak
from voice.audio import float_to_int16, resample
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    Frame,
    Role,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.processor import Pipeline
from voice.processors.speakers import SpeakerAttributionProcessor, SpeakerRoles

pytestmark = pytest.mark.unit

PHONE_RATE = 8000
ENDPOINT = 0.6  # the ASR's VAD closes a turn after this much silence
SCRIPT = [
    Said(None, 0.5),
    Said("agent", 2.5),
    Said(None, 0.8),  # agent 0.5-3.0
    Said("customer", 3.0),
    Said(None, 0.8),  # customer 3.8-6.8
    Said("agent", 2.0),
    Said(None, 0.8),  # agent 7.6-9.6
    Said("customer", 2.0),
    Said("agent", 2.0),
    Said(None, 1.0),  # one turn, two voices: 10.4-14.4
]
TURNS = [  # (turn id, text, start, end) as the ASR would finalise them on the mixed leg
    ("mixed-1", "thank you for calling how can i help you", 0.5, 3.0),
    ("mixed-2", "hi i would like to book a taxi please", 3.8, 6.8),
    ("mixed-3", "sure where are you going", 7.6, 9.6),
    ("mixed-4", "to the station tonight okay let me check that", 10.4, 14.4),
]



def words_of(text: str, start: float, end: float) -> list[TimedWord]:
    tokens = text.split()
    step = (end - start) / len(tokens)
    return [TimedWord(w, start + i * step, start + (i + 0.8) * step) for i, w in enumerate(tokens)]


def scripted_call(leg: str = "mixed", role: Role = "unknown") -> list[Frame]:
    """CallStarted, 20 ms AudioFrames of the mixed 8 kHz leg, a partial inside the second turn,
    and each final right after the audio that closed its turn, then CallEnded."""
    pcm = float_to_int16(resample(speak(SCRIPT), 16000, PHONE_RATE))
    events: list[tuple[float, Frame]] = []
    for turn_id, text, start, end in TURNS:
        words = words_of(text, start, end)
        if turn_id == "mixed-4":  # the voice changes at 12.4 s, between two words
            words = words_of("to the station tonight", 10.4, 12.4) + words_of(
                "okay let me check that", 12.4, 14.4
            )
        final = TranscriptFinalFrame(
            turn_id=turn_id,
            leg=leg,
            text=text,
            words=words,
            start=start,
            end=end,
            audio_time=end,
            role=role,
        )
        events.append((end + ENDPOINT, final))
    partial_words = words_of("hi i would like", 3.8, 5.6)
    events.append(
        (
            5.6,
            TranscriptPartialFrame(
                leg=leg,
                committed=partial_words[:2],
                tentative=partial_words[2:],
                audio_time=5.6,
                role=role,
            ),
        )
    )
    events.sort(key=lambda item: item[0])
    frames: list[Frame] = [CallStartedFrame(call_id="c1", legs={leg: role}, source="sip")]
    chunk = PHONE_RATE // 50
    for first in range(0, len(pcm), chunk):
        pts = first / PHONE_RATE
        while events and events[0][0] <= pts:
            frames.append(events.pop(0)[1])
        frames.append(
            AudioFrame(pcm=pcm[first : first + chunk], sample_rate=PHONE_RATE, leg=leg, pts=pts)
        )
    frames += [frame for _, frame in events]
    frames.append(CallEndedFrame(call_id="c1", audio_time=len(pcm) / PHONE_RATE))
    return frames


def run(frames: Sequence[Frame]) -> tuple[list[Frame], SpeakerAttributionProcessor]:
    async def scenario() -> tuple[list[Frame], SpeakerAttributionProcessor]:
        with ThreadPoolExecutor(1) as executor:
            processor = SpeakerAttributionProcessor(
                embedder=BandEnergyEmbedder(), executor=executor
            )
            collector = Collector()
            pipeline = Pipeline([processor, collector])
            for frame in frames:
                if isinstance(frame, TranscriptPartialFrame):
                    await processor.drained()  # as in real time: the attributor keeps up
                await pipeline.process_frame(frame)
            await pipeline.close()
            return collector.frames, processor

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_finals_of_a_mixed_leg_get_speaker_and_role_split_at_the_change() -> None:
    out, processor = run(scripted_call())
    finals = [f for f in out if isinstance(f, TranscriptFinalFrame)]
    labelled = [(f.turn_id, f.speaker, f.role, f.text) for f in finals]
    assert labelled == [
        ("mixed-1", "S0", "agent", "thank you for calling how can i help you"),
        ("mixed-2", "S1", "customer", "hi i would like to book a taxi please"),
        ("mixed-3", "S0", "agent", "sure where are you going"),
        ("mixed-4", "S1", "customer", "to the station tonight"),
        ("mixed-4.1", "S0", "agent", "okay let me check that"),
    ]
    assert finals[3].end <= 12.4 <= finals[4].start and finals[3].id != finals[4].id
    assert processor.speakers_of("mixed") == {"S0": "agent", "S1": "customer"}


def test_partials_are_labelled_from_the_provisional_speaker() -> None:
    out, _ = run(scripted_call())
    (partial,) = [f for f in out if isinstance(f, TranscriptPartialFrame)]
    assert (partial.speaker, partial.role) == ("S1", "customer")


def test_every_other_frame_is_forwarded_in_order() -> None:
    frames = scripted_call()
    out, _ = run(frames)
    audio_in = [f for f in frames if isinstance(f, AudioFrame)]
    assert [f for f in out if isinstance(f, AudioFrame)] == audio_in
    assert isinstance(out[0], CallStartedFrame) and isinstance(out[-1], CallEndedFrame)


def test_legs_with_a_role_pass_through_untouched() -> None:
    frames = scripted_call(leg="inbound", role="customer")
    out, processor = run(frames)
    assert out == frames and all(a is b for a, b in zip(out, frames, strict=True))
    assert processor.speakers_of("inbound") == {}


def test_a_weak_lead_waits_for_more_turns() -> None:
    roles = SpeakerRoles(decide_after_turns=3)
    roles.observe(
        "S0", 0.0, "hi is this the customer service"
    )  # one agent phrase, said by a customer
    roles.observe("S1", 2.0, "yes how may i help you")
    assert not roles.decided  # tied
    roles.observe("S0", 4.0, "i'm looking for a taxi")
    assert (roles.role_of("S0"), roles.role_of("S1")) == ("customer", "agent")


def test_roles_are_decided_once_and_kept() -> None:
    roles = SpeakerRoles(decide_after_turns=3)
    roles.observe("S0", 0.5, "hello")
    assert roles.role_of("S0") == "unknown" and not roles.decided
    roles.observe("S1", 2.0, "hi i would like to book a table")
    assert (roles.role_of("S0"), roles.role_of("S1"), roles.method) == (
        "agent",
        "customer",
        "phrases",
    )
    roles.observe("S1", 5.0, "thank you for calling how can i help you")  # later evidence: ignored
    assert (roles.role_of("S0"), roles.role_of("S1")) == ("agent", "customer")


def test_without_evidence_the_first_speaker_is_the_agent() -> None:
    roles = SpeakerRoles(decide_after_turns=2, give_up_turns=3)
    for index, speaker in enumerate(["S1", "S0"]):
        roles.observe(speaker, float(index), "okay")
    assert not roles.decided  # no evidence yet: wait for some
    roles.observe("S1", 2.0, "okay")
    assert (roles.role_of("S1"), roles.role_of("S0"), roles.method) == (
        "agent",
        "customer",
        "first-speaker",
    )
    assert roles.role_of(None) == "unknown"


def test_a_customer_opening_makes_the_next_speaker_the_agent() -> None:
    roles = SpeakerRoles()
    roles.observe("S0", 0.0, "hi i need a taxi and i would like to book it for tonight")
    assert roles.role_of("S0") == "customer"
    assert roles.role_of("S1") == "agent" and roles.role_of("S2") == "customer"


def test_audio_at_16k_and_float_pcm_is_accepted() -> None:
    pcm = speak([Said("agent", 2.0), Said(None, 1.0)])
    frames: list[Frame] = [CallStartedFrame(call_id="c2", legs={"mixed": "unknown"})]
    frames += [
        AudioFrame(pcm=pcm[i : i + 320], sample_rate=16000, leg="mixed", pts=i / 16000)
        for i in range(0, len(pcm), 320)
    ]
    frames.append(
        TranscriptFinalFrame(
            turn_id="t",
            leg="mixed",
            text="hello there",
            words=words_of("hello there", 0.2, 1.8),
            start=0.2,
            end=1.8,
            audio_time=1.8,
        )
    )
    out, _ = run(frames)
    (final,) = [f for f in out if isinstance(f, TranscriptFinalFrame)]
    assert final.speaker == "S0" and np.isclose(final.start, 0.2)


def test_audio_after_a_jump_in_pts_is_attributed_at_its_pts() -> None:
    # A hold: the customer speaks at 60.5 s of call-audio time, right after the agent's turn
    # on the wire. Counting samples put that audio at 3.5 s, and the final at 60.5-63.5 s
    # found no labels there.
    agent = float_to_int16(resample(speak([Said(None, 0.5), Said("agent", 2.5), Said(None, 0.5)]), 16000, PHONE_RATE))
    customer = float_to_int16(resample(speak([Said(None, 0.5), Said("customer", 3.0), Said(None, 1.0)], seed=1),
                                       16000, PHONE_RATE))  # fmt: skip
    chunk = PHONE_RATE // 50
    frames: list[Frame] = [CallStartedFrame(call_id="c3", legs={"mixed": "unknown"})]
    for pcm, origin in ((agent, 0.0), (customer, 60.0)):
        frames += [
            AudioFrame(pcm=pcm[i : i + chunk], sample_rate=PHONE_RATE, leg="mixed", pts=origin + i / PHONE_RATE)
            for i in range(0, len(pcm), chunk)
        ]
    for turn_id, text, start, end in (("mixed-1", "thank you for calling", 0.5, 3.0),
                                      ("mixed-2", "hi i would like a taxi", 60.5, 63.5)):  # fmt: skip
        final = TranscriptFinalFrame(turn_id=turn_id, leg="mixed", text=text, words=words_of(text, start, end),
                                     start=start, end=end, audio_time=end)  # fmt: skip
        frames.append(final)
    out, _ = run(frames)
    assert [(f.turn_id, f.speaker) for f in out if isinstance(f, TranscriptFinalFrame)] == [
        ("mixed-1", "S0"),
        ("mixed-2", "S1"),
    ]
