"""CallRecorder: what a live call leaves in the database when it ends."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from voice.frames import CallEndedFrame, CallStartedFrame, Frame, NluFrame, TranscriptFinalFrame
from voice.processor import Pipeline
from voice.processors.recorder import CallRecorder
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store
from voice.store.live import LiveCallStore

pytestmark = pytest.mark.unit


def _turn(index: int, speaker: str, role: str, text: str) -> list[Frame]:
    turn_id, start = f"mixed-{index}", float(index * 3)
    return [
        TranscriptFinalFrame(turn_id=turn_id, leg="mixed", text=text, words=[], start=start, end=start + 2,
                             audio_time=start + 2, role=role, speaker=speaker),  # type: ignore[arg-type]
        NluFrame(turn_id=turn_id, role=role, intent=None, intent_score=None, entities=[],  # type: ignore[arg-type]
                 audio_time=start + 2),
    ]


def test_turns_heard_before_the_roles_were_decided_are_stored_with_their_speakers_role(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    frames: list[Frame] = [
        CallStartedFrame(call_id="mixed-call", legs={"mixed": "unknown"}, source="sip"),
        *_turn(0, "S0", "unknown", "thanks for calling"),
        *_turn(1, "S1", "unknown", "hi I have a question about my bill"),
        *_turn(2, "S0", "agent", "sure what is the account number"),
        *_turn(3, "S1", "customer", "four five six"),
        CallEndedFrame(call_id="mixed-call", audio_time=12.0),
    ]

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = CallRecorder(hub=EventHub(), registry=CallRegistry(), live_store=LiveCallStore(store),
                                    store=store, executor=executor, audio_dir=None, model_name="tiny.en")
            pipeline = Pipeline([recorder])
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    stored = store.get_transcript("mixed-call")
    assert [(s.speaker, s.role) for s in stored.segments] == [
        ("S0", "agent"), ("S1", "customer"), ("S0", "agent"), ("S1", "customer")]
    assert {s.id: s.role for s in stored.speakers} == {"S0": "agent", "S1": "customer"}
