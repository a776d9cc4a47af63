"""Turn order between SuggestProcessor and the engine: backchannels and late answers.

A customer's "mm-hmm" said during a longer agent turn is finalised before that turn. The processor
used to sort the history by start time, inserting the agent turn before turns the engine had
consumed, and the engine rebuilt the call from its first turn for every such turn: embedding work
per suggestion grew with the length of the call, requests piled up and finished out of order, and
an older suggestion replaced a newer one on the agent's console. Served by the demo's bundled
(real, small) model with the MiniLM encoder attached.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from suggest.batching import MicroBatcher
from suggest.engine import SuggestionEngine
from suggest.types import ROLES, Role, SuggestContext, SuggestResult, Turn
from tests.fakes.frames import Collector
from voice.frames import CallEndedFrame, CallStartedFrame, Frame, NluFrame, SuggestionFrame, TranscriptFinalFrame
from voice.processor import Pipeline
from voice.processors.suggest import SuggestProcessor

pytestmark = pytest.mark.model

LINES = {
    "agent": ("Hi! Have you heard of the charity Save the Children?",
              "They help children in developing countries with health care and education.",
              "Would you be willing to donate part of your task payment to them today?",
              "Even a small donation goes a long way for these kids."),
    "customer": ("Yes, I have heard of them.",
                 "I don't know, money is really tight for me right now.",
                 "How much of the donation actually reaches the children?",
                 "Okay, tell me more about what they do."),
}
TURNS = 80


@pytest.fixture(scope="module")
def engine(bundled_suggestion_model: Path) -> SuggestionEngine:
    return SuggestionEngine.load(bundled_suggestion_model)


def _text(role: str, n: int) -> str:
    lines = LINES[role]
    return f"{lines[n % len(lines)]} ({n})"  # distinct texts: no embedding is reused by accident


def _call() -> list[tuple[Role, str, float, float]]:
    """(role, text, start, end) in the order the finals arrive: every third agent turn has a
    customer backchannel inside it, which ends (and is finalised) first."""
    turns: list[tuple[Role, str, float, float]] = []
    clock = 0.0
    for n in range(TURNS):
        role = ROLES[n % 2]
        if role == "agent" and n % 3 == 0:
            turns.append(("customer", f"mm-hmm ({n})", clock + 1.0, clock + 1.3))
        turns.append((role, _text(role, n), clock, clock + 3.0))
        clock += 4.0
    return turns


class Recording:
    """The engine behind the micro-batcher, keeping each request's context and result."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self.batcher = batcher
        self.served: list[tuple[SuggestContext, SuggestResult]] = []

    def submit(self, context: SuggestContext) -> Future[SuggestResult]:
        future = self.batcher.submit(context)
        future.add_done_callback(lambda done: self.served.append((context, done.result())))
        return future


async def _say(pipeline: Pipeline, n: int, role: str, text: str, start: float, end: float) -> None:
    turn_id = f"t{n}"
    await pipeline.process_frame(TranscriptFinalFrame(turn_id=turn_id, leg=role, text=text, words=[], start=start,
                                                      end=end, audio_time=end, role=role))  # type: ignore[arg-type]
    await pipeline.process_frame(NluFrame(turn_id=turn_id, role=role, intent=None, intent_score=None,  # type: ignore[arg-type]
                                          entities=[], audio_time=end))


class Shown(Collector):
    """Keeps every frame, and hands each suggestion to whoever waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.suggestions: asyncio.Queue[SuggestionFrame] = asyncio.Queue()

    async def process_frame(self, frame: Frame) -> None:
        await super().process_frame(frame)
        if isinstance(frame, SuggestionFrame):
            self.suggestions.put_nowait(frame)


def test_backchannels_inside_longer_turns_keep_the_call_incremental(engine: SuggestionEngine) -> None:
    collector = Shown()
    with MicroBatcher(engine) as batcher:
        service = Recording(batcher)
        processor = SuggestProcessor(service=service, end_call=engine.end_call)

        async def call() -> None:
            pipeline = Pipeline([processor, collector])
            await pipeline.process_frame(CallStartedFrame(call_id="backchannels", tenant="pfg", agent_id="a"))
            for n, turn in enumerate(_call()):
                await _say(pipeline, n, *turn)
                await collector.suggestions.get()  # turns are seconds apart: each is answered first
            await pipeline.process_frame(CallEndedFrame(call_id="backchannels"))

        asyncio.run(asyncio.wait_for(call(), 120))
    encoded = [result.latency.turns_encoded for _, result in service.served]
    assert len(encoded) == len(_call())
    # every turn is embedded once, when it arrives: none is ever re-encoded by a rebuild
    assert max(encoded) == 1 and sum(encoded) <= len(encoded), [e for e in encoded if e > 1]
    last = service.served[-1][0].turns
    assert len(last) == len(_call())
    # finalisation order: the backchannel, then the agent turn it was said in
    assert [(t.role, t.text) for t in last[-3:-1]] == [("customer", "mm-hmm (78)"), ("agent", _text("agent", 78))]
    frames = [f for f in collector.frames if isinstance(f, SuggestionFrame)]
    assert [f.turn_id for f in frames] == [f"t{n}" for n in range(len(_call()))]
    assert "backchannels" not in engine._calls  # released at the end of the call


def test_a_history_reordered_at_its_tail_is_replayed_not_rebuilt(engine: SuggestionEngine) -> None:
    """Contexts as the processor used to send them (sorted by start): each new agent turn lands
    before the backchannel already consumed. The engine replays from its trail, embedding only the
    new turn, and answers exactly what a cold call with the same history gets."""
    heard: list[tuple[Role, str, float, float]] = []
    for n, turn in enumerate(_call()[:60]):
        heard.append(turn)
        turns = tuple(Turn(role, text, start, end) for role, text, start, end in sorted(heard, key=lambda t: t[2]))
        result = engine.suggest(SuggestContext(call_id="sorted", turns=turns))
        assert result.latency.turns_encoded == 1, (n, result.latency.turns_encoded)
        if n % 9 == 0:  # a reordered tail leaves the call in the state a cold build reaches
            cold = engine.suggest(SuggestContext(call_id="cold", turns=turns))
            engine.end_call("cold")
            assert _answer(result) == _answer(cold)
    engine.end_call("sorted")


def test_an_older_request_answered_late_does_not_set_the_call_back(engine: SuggestionEngine) -> None:
    turns = tuple(Turn(role, text) for role, text, _, _ in _call()[:30])
    for n in range(1, 21):
        engine.suggest(SuggestContext(call_id="late", turns=turns[:n]))
    late = engine.suggest(SuggestContext(call_id="late", turns=turns[:18]))  # served after turn 20's
    cold = engine.suggest(SuggestContext(call_id="cold", turns=turns[:18]))
    engine.end_call("cold")
    assert late.latency.turns_encoded == 0 and _answer(late) == _answer(cold)
    # the call's state still holds turn 20: the next request embeds only its own turn
    assert engine.suggest(SuggestContext(call_id="late", turns=turns[:21])).latency.turns_encoded == 1
    engine.end_call("late")


def test_a_late_final_anywhere_in_the_trail_is_replayed_and_before_it_rebuilt(
    engine: SuggestionEngine,
) -> None:
    from suggest.engine import TRAIL

    turns = [Turn(role, text) for role, text, _, _ in _call()[:30]]
    late = Turn("customer", "mm-hmm")
    for at, encoded in ((30 - TRAIL, 1), (30 - TRAIL + 3, 1), (30 - TRAIL - 1, 31)):
        engine.suggest(SuggestContext(call_id="edge", turns=tuple(turns)))
        history = tuple(turns[:at] + [late] + turns[at:])
        result = engine.suggest(SuggestContext(call_id="edge", turns=history))
        engine.end_call("edge")
        cold = engine.suggest(SuggestContext(call_id="cold", turns=history))
        engine.end_call("cold")
        assert result.latency.turns_encoded == encoded, (at, result.latency.turns_encoded)
        assert _answer(result) == _answer(cold)


class OutOfOrder:
    """Serves every request with the real engine at once but answers each odd request only after
    the next one's answer: the order a busy micro-batcher with several workers can finish them in."""

    def __init__(self, engine: SuggestionEngine) -> None:
        self.engine = engine
        self.held: list[tuple[Future[Any], SuggestResult]] = []

    def submit(self, context: SuggestContext) -> Future[SuggestResult]:
        future: Future[SuggestResult] = Future()
        result = self.engine.suggest(context)
        if len(context.turns) % 2:
            self.held.append((future, result))
        else:
            future.set_result(result)
            asyncio.get_running_loop().call_later(0.005, self._release)  # once the newer one is shown
        return future

    def _release(self) -> None:
        for waiting, answer in self.held:
            waiting.set_result(answer)
        self.held.clear()


def test_a_suggestion_finished_after_a_newer_ones_is_never_shown(engine: SuggestionEngine) -> None:
    collector = Collector()
    processor = SuggestProcessor(service=OutOfOrder(engine), end_call=engine.end_call)

    async def call() -> None:
        pipeline = Pipeline([processor, collector])
        await pipeline.process_frame(CallStartedFrame(call_id="late-answers", tenant="pfg", agent_id="a"))
        for n in range(10):
            role = ("agent", "customer")[n % 2]
            await _say(pipeline, n, role, _text(role, n), 4.0 * n, 4.0 * n + 3)
            await asyncio.sleep(0.02)  # the finished requests' tasks push their frames
        await pipeline.process_frame(CallEndedFrame(call_id="late-answers"))

    asyncio.run(asyncio.wait_for(call(), 60))
    shown = [int(f.turn_id[1:]) for f in collector.frames if isinstance(f, SuggestionFrame)]
    assert shown == sorted(shown) and shown[-1] == 9, shown  # never an older turn after a newer one
    assert len(shown) == 5 and processor.stale_dropped == 5  # each odd request lost to the next


def _answer(result: SuggestResult) -> tuple[Any, ...]:
    intent = result.intent.name if result.intent else None
    return intent, [(s.action, s.text, round(s.score, 5)) for s in result.suggestions]
