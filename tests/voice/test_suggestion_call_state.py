"""The suggestion engine's per-call state is released when a live call ends, not kept for the
next 10,000 calls: the server runs for weeks and takes thousands of calls a day."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.frames import Collector
from voice.config import ServerConfig
from voice.frames import (
    CallEndedFrame,
    CallStartedFrame,
    Frame,
    NluFrame,
    SuggestionFrame,
    TranscriptFinalFrame,
)
from voice.live.suggestions import SuggestionRouter
from voice.processor import Pipeline

pytestmark = pytest.mark.model

CALLS = 20
TURNS = (("customer", "Hi, I don't know, money is really tight for me right now."),
         ("agent", "I understand. Even a small donation helps Save the Children."))


def _call(call_id: str) -> list[Frame]:
    frames: list[Frame] = [CallStartedFrame(call_id=call_id, legs={"agent": "agent", "customer": "customer"})]
    for index, (role, text) in enumerate(TURNS):
        start, turn_id = float(index * 3), f"{role}-{index}"
        frames += [TranscriptFinalFrame(turn_id=turn_id, leg=role, text=text, words=[], start=start, end=start + 2,
                                        audio_time=start + 2, role=role),  # type: ignore[arg-type]
                   NluFrame(turn_id=turn_id, role=role, intent=None, intent_score=None, entities=[],  # type: ignore[arg-type]
                            audio_time=start + 2)]
    return [*frames, CallEndedFrame(call_id=call_id, audio_time=6.0)]


def test_ended_calls_leave_no_state_in_the_engine(bundled_suggestion_model: Path) -> None:
    router = SuggestionRouter.load(ServerConfig(suggest_model=str(bundled_suggestion_model)))
    engine = next(iter(router._slots.values())).ready.result().engine
    collector = Collector()

    async def calls() -> None:
        for n in range(CALLS):
            frames = _call(f"c{n}")
            _, processor = router.for_call(frames[0])  # type: ignore[arg-type]
            assert processor is not None
            pipeline = Pipeline([processor, collector])
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.close()

    try:
        asyncio.run(asyncio.wait_for(calls(), 60))
    finally:
        router.close()
    suggestions = [f for f in collector.frames if isinstance(f, SuggestionFrame)]
    assert len(suggestions) == CALLS * len(TURNS)  # every turn was served by the engine
    assert len(engine._calls) == 0  # was one entry per ended call
