"""SpeakerAttributionProcessor on a mixed leg whose float PCM carries a NaN sample."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.fakes.frames import Collector
from tests.fakes.speakers import Said, speak
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    ErrorFrame,
    Frame,
    TimedWord,
    TranscriptFinalFrame,
)
from voice.processor import Pipeline
from voice.processors.speakers import SpeakerAttributionProcessor

pytestmark = pytest.mark.unit

RATE = 16000


def _final(turn_id: str, start: float, end: float) -> TranscriptFinalFrame:
    words = [TimedWord("hello", start, (start + end) / 2), TimedWord("there", (start + end) / 2, end)]
    return TranscriptFinalFrame(turn_id=turn_id, leg="mixed", text="hello there", words=words,
                                start=start, end=end, audio_time=end)


def _run(frames: list[Frame]) -> list[Frame]:
    async def scenario() -> list[Frame]:
        from tests.fakes.speakers import BandEnergyEmbedder

        with ThreadPoolExecutor(1) as executor:
            processor = SpeakerAttributionProcessor(embedder=BandEnergyEmbedder(), executor=executor)
            collector = Collector()
            pipeline = Pipeline([processor, collector])
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.close()
            return collector.frames

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_nan_sample_does_not_blind_attribution_for_the_rest_of_the_call() -> None:
    pcm = speak([Said("agent", 2.0), Said(None, 1.0), Said("agent", 2.0), Said(None, 1.0)])
    pcm[RATE] = np.nan  # one bad sample 1 s in
    frames: list[Frame] = [CallStartedFrame(call_id="c1", legs={"mixed": "unknown"})]
    frames += [AudioFrame(pcm=pcm[i : i + 320], sample_rate=RATE, leg="mixed", pts=i / RATE)
               for i in range(0, len(pcm), 320)]
    frames += [_final("mixed-2", 3.2, 4.8), CallEndedFrame(call_id="c1", audio_time=len(pcm) / RATE)]
    out = _run(frames)
    (final,) = [f for f in out if isinstance(f, TranscriptFinalFrame)]
    assert final.speaker == "S0"
    assert not [f for f in out if isinstance(f, ErrorFrame)]
