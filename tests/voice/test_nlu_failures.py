"""NluProcessor when understanding fails: reported, logged, and the turn still reaches suggestions."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from tests.fakes.frames import Collector
from voice.frames import CallEndedFrame, CallStartedFrame, ErrorFrame, Frame, NluFrame, TranscriptFinalFrame
from voice.processor import Pipeline
from voice.processors.nlu import NluProcessor
from voice.processors.suggest import SuggestProcessor

pytestmark = pytest.mark.unit


class BrokenExtractor:
    def extract(self, text: str) -> list[Any]:
        raise ValueError("entity model exploded")


class AskedService:
    """Records that a suggestion was asked for; answers with a failure (no engine here)."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def submit(self, context: Any) -> Future[Any]:
        self.asked.append(context)
        future: Future[Any] = Future()
        future.set_exception(RuntimeError("no engine in this test"))
        return future


def _run(nlu_kwargs: dict[str, Any]) -> tuple[list[Frame], AskedService]:
    service = AskedService()

    async def scenario() -> list[Frame]:
        with ThreadPoolExecutor(1) as executor:
            collector = Collector()
            nlu = NluProcessor(executor=executor, **nlu_kwargs)
            pipeline = Pipeline([nlu, SuggestProcessor(service=service), collector])
            final = TranscriptFinalFrame(turn_id="customer-1", leg="customer", text="my card was charged twice",
                                         words=[], start=0.0, end=2.0, audio_time=2.0, role="customer")
            for frame in [CallStartedFrame(call_id="c1", legs={"customer": "customer"}), final,
                          CallEndedFrame(call_id="c1", audio_time=3.0)]:  # fmt: skip
                await pipeline.process_frame(frame)
            await pipeline.close()
            return collector.frames

    return asyncio.run(asyncio.wait_for(scenario(), 30)), service


def test_a_failing_extractor_is_reported_and_the_turn_still_gets_a_suggestion(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="voice.processors.nlu"):
        frames, service = _run({"extractor": BrokenExtractor()})
    errors = [f.message for f in frames if isinstance(f, ErrorFrame)]
    assert any("nlu failed on turn customer-1" in e and "entity model exploded" in e for e in errors)
    (nlu,) = [f for f in frames if isinstance(f, NluFrame)]
    assert nlu.turn_id == "customer-1" and nlu.entities == [] and nlu.intent is None
    assert len(service.asked) == 1  # the suggestion was still asked for
    assert any("customer-1" in r.getMessage() for r in caplog.records)
    ended = next(i for i, f in enumerate(frames) if isinstance(f, CallEndedFrame))
    assert frames.index(nlu) < ended


def test_a_failing_intent_model_is_reported_too() -> None:
    class NoEntities:
        def extract(self, text: str) -> list[Any]:
            return []

    def intent(text: str) -> tuple[str, float] | None:
        raise RuntimeError("intent model exploded")

    frames, service = _run({"extractor": NoEntities(), "intent": intent})
    assert any("intent model exploded" in f.message for f in frames if isinstance(f, ErrorFrame))
    assert [f.turn_id for f in frames if isinstance(f, NluFrame)] == ["customer-1"]
