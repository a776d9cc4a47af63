"""SuggestProcessor: which turns reach the suggestion engine, and when."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import pytest

from tests.fakes.frames import Collector
from voice.frames import (
    CallEndedFrame,
    CallStartedFrame,
    Frame,
    NluFrame,
    SuggestionFrame,
    TranscriptFinalFrame,
)
from voice.processor import Pipeline
from voice.processors.suggest import SuggestProcessor

pytestmark = pytest.mark.unit


class RecordingService:
    """Answers every request at once with no suggestions, keeping the contexts it was asked."""

    def __init__(self) -> None:
        self.contexts: list[Any] = []

    def submit(self, context: Any) -> Future[Any]:
        from suggest.types import LatencyBreakdown, SuggestResult

        self.contexts.append(context)
        future: Future[Any] = Future()
        latency = LatencyBreakdown(total_ms=0.0, encode_ms=0.0, state_ms=0.0, policy_ms=0.0, realise_ms=0.0)
        future.set_result(SuggestResult(call_id=context.call_id, turn_index=len(context.turns), suggestions=(),
                                        intent=None, model_version="test", tenant="default", latency=latency))
        return future



def _turn(index: int, speaker: str, role: str, text: str) -> list[Frame]:
    turn_id = f"mixed-{index}"
    start = float(index * 3)
    return [
        TranscriptFinalFrame(turn_id=turn_id, leg="mixed", text=text, words=[], start=start, end=start + 2,
                             audio_time=start + 2, role=role, speaker=speaker),  # type: ignore[arg-type]
        NluFrame(turn_id=turn_id, role=role, intent=None, intent_score=None, entities=[],  # type: ignore[arg-type]
                 audio_time=start + 2),
    ]


def _run(frames: list[Frame]) -> tuple[RecordingService, Collector]:
    service, collector = RecordingService(), Collector()

    async def scenario() -> None:
        pipeline = Pipeline([SuggestProcessor(service=service), collector])
        for frame in frames:
            await pipeline.process_frame(frame)
        await pipeline.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    return service, collector


def test_turns_heard_before_the_roles_were_decided_join_the_context_once_their_speaker_is_known() -> None:
    started = CallStartedFrame(call_id="c1", legs={"mixed": "unknown"})
    frames: list[Frame] = [started,
                           *_turn(0, "S0", "unknown", "hello thanks for calling"),
                           *_turn(1, "S1", "unknown", "hi I want to ask about my bill"),
                           *_turn(2, "S0", "agent", "sure what is your account number"),
                           *_turn(3, "S1", "customer", "it is four five six"),
                           CallEndedFrame(call_id="c1")]
    service, collector = _run(frames)
    # no request while the roles were unknown; one per turn after
    assert len(service.contexts) == 2
    first, second = service.contexts
    assert [(t.role, t.text) for t in first.turns] == [("agent", "hello thanks for calling"),
                                                       ("agent", "sure what is your account number")]
    assert [t.role for t in second.turns] == ["agent", "customer", "agent", "customer"]
    assert [t.text for t in second.turns][1] == "hi I want to ask about my bill"
    assert sum(isinstance(f, SuggestionFrame) for f in collector.frames) == 2


def test_call_start_facts_reach_every_suggestion_request() -> None:
    started = CallStartedFrame(call_id="c1", legs={"mixed": "unknown"}, context={"customer_tier": 2.0})
    frames: list[Frame] = [started,
                           *_turn(0, "S0", "agent", "thanks for calling"),
                           *_turn(1, "S1", "customer", "the price is too high"),
                           CallEndedFrame(call_id="c1")]
    service, _ = _run(frames)
    assert service.contexts and all(c.context == {"customer_tier": 2.0} for c in service.contexts)
