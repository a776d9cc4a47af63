"""StreamingAsrProcessor's end of input when finals are stuck: one deadline, then given up for good.

A scripted VAD (speech 0.5-1.5 s on every leg) stands in for Silero; the decode scheduler is real,
with a backend whose finals hang until the test releases them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from asr.streaming import DecodeRequest
from asr.types import Word
from tests.fakes.frames import Collector
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    EndOfInputFrame,
    ErrorFrame,
    Frame,
)
from voice.live.scheduler import DecodeScheduler, SchedulerConfig
from voice.processor import Pipeline
from voice.processors import asr as asr_module
from voice.processors.asr import AsrScheduler, StreamingAsrProcessor
from voice.vad import VadEvent, VadEventType

pytestmark = pytest.mark.unit

RATE = 16000
SPEECH = (0.5, 1.5)
FLUSH = 1.0
LEGS = {"agent": "agent", "customer": "customer"}


class ScriptedVad:
    """The VadStream surface the processor uses; speech during :data:`SPEECH` of stream time."""

    def __init__(self, *_: Any) -> None:
        self.start_time = 0.0
        self.samples = 0
        self.in_speech = False

    @property
    def time(self) -> float:
        return self.start_time + self.samples / RATE

    @property
    def frame_is_speech(self) -> bool:
        return self.in_speech

    @property
    def last_speech_end(self) -> float:
        return self.time

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        before = self.time
        self.samples += len(samples)
        start, stop = SPEECH
        if before < start <= self.time:
            self.in_speech = True
            return [VadEvent(VadEventType.SPEECH_STARTED, start, self.time, start)]
        if before < stop <= self.time and self.in_speech:
            self.in_speech = False
            return [VadEvent(VadEventType.SPEECH_STOPPED, stop, self.time, start)]
        return []

    def finish(self) -> list[VadEvent]:
        return []


class StuckFinals:
    """Partials decode to nothing at once; finals hang until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        if any(r.final for r in requests):
            self.release.wait(30)
        return [[] for _ in requests]


@pytest.fixture
def stuck(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AsrScheduler, StuckFinals]]:
    monkeypatch.setattr(asr_module, "VadStream", ScriptedVad)
    backend = StuckFinals()
    scheduler: AsrScheduler = DecodeScheduler(backend, SchedulerConfig(workers=1))
    yield scheduler, backend
    backend.release.set()
    scheduler.close()


async def _feed(pipeline: Pipeline, seconds: float = 2.0) -> None:
    await pipeline.process_frame(CallStartedFrame(call_id="c1", legs=dict(LEGS)))  # type: ignore[arg-type]
    chunk = RATE // 50
    for i in range(round(seconds * 50)):
        for leg in LEGS:
            pcm = np.zeros(chunk, dtype=np.int16)
            await pipeline.process_frame(AudioFrame(pcm=pcm, sample_rate=RATE, leg=leg, pts=i / 50))
        await asyncio.sleep(0)


def _errors(frames: list[Frame]) -> list[str]:
    return [f.message for f in frames if isinstance(f, ErrorFrame)]


def test_call_end_waits_once_for_all_legs_then_gives_their_finals_up(
    stuck: tuple[AsrScheduler, StuckFinals],
) -> None:
    scheduler, backend = stuck

    async def scenario() -> tuple[float, list[Frame], StreamingAsrProcessor]:
        processor = StreamingAsrProcessor(scheduler, flush_timeout=FLUSH)
        collector = Collector()
        pipeline = Pipeline([processor, collector])
        await _feed(pipeline)
        began = time.monotonic()
        await pipeline.process_frame(CallEndedFrame(call_id="c1", audio_time=2.0))
        took = time.monotonic() - began
        assert not processor.busy  # nothing left outstanding, though a decode still hangs
        backend.release.set()  # the running final now finishes: its result must be ignored
        assert scheduler.wait_idle(5.0)
        await asyncio.sleep(0.05)
        await pipeline.close()
        return took, collector.frames, processor

    took, frames, _ = asyncio.run(asyncio.wait_for(scenario(), 30))
    # One deadline, not one per leg: two waits take at least 2 x FLUSH (an asyncio timeout never
    # fires early), so below that is the behaviour; the 0.9 x FLUSH margin is for a loaded core.
    assert FLUSH <= took < 1.9 * FLUSH
    errors = _errors(frames)
    assert len(errors) == 2 and all("finals still pending" in e for e in errors)
    assert isinstance(frames[-1], CallEndedFrame)
    assert scheduler.metrics().queued_finals == 0


def test_finals_given_up_at_end_of_input_are_not_waited_for_again(
    stuck: tuple[AsrScheduler, StuckFinals],
) -> None:
    scheduler, backend = stuck

    async def scenario() -> tuple[list[float], list[Frame]]:
        processor = StreamingAsrProcessor(scheduler, flush_timeout=FLUSH)
        collector = Collector()
        pipeline = Pipeline([processor, collector])
        await _feed(pipeline)
        took = []
        for frame in [*(EndOfInputFrame(leg=leg, audio_time=2.0) for leg in LEGS),
                      CallEndedFrame(call_id="c1", audio_time=2.0)]:  # fmt: skip
            began = time.monotonic()
            await pipeline.process_frame(frame)
            took.append(time.monotonic() - began)
        backend.release.set()
        await pipeline.close()
        return took, collector.frames

    took, frames = asyncio.run(asyncio.wait_for(scenario(), 30))
    # Bounds just under what one more wait would take (an asyncio timeout never fires early):
    # they tell waiting from not waiting, with the rest as margin for a loaded core.
    assert took[0] >= FLUSH  # the first leg's end waited for its stuck final
    assert took[1] < 0.9 * FLUSH  # the second leg's end: the first one's wait just timed out
    assert took[2] < 0.9 * FLUSH  # the CallEndedFrame: nothing left to wait for
    assert sum(took) < 1.9 * FLUSH  # a shutdown drain's per-leg ends: 4 x FLUSH before, then 2 x
    assert len(_errors(frames)) == 2
    assert isinstance(frames[-1], CallEndedFrame)
