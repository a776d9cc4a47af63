"""Unusable audio frames: refused when built, and dropped (not raised) by CallSession.push."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tests.fakes.frames import Collector
from voice.errors import VoiceError
from voice.frames import AudioFrame, CallStartedFrame, ErrorFrame, Frame, InvalidFrameError
from voice.live.session import CallManager
from voice.processor import Pipeline

pytestmark = pytest.mark.unit

PCM = np.zeros(160, dtype=np.int16)


class Output:
    def send(self, frame: Frame) -> None:
        pass

    def hang_up(self, reason: str) -> None:
        pass


@pytest.mark.parametrize(("rate", "pts"), [(0, 0.0), (-8000, 0.0), (8000, float("nan")), (8000, float("inf"))])
def test_an_unusable_audio_frame_cannot_be_built(rate: Any, pts: float) -> None:
    with pytest.raises(InvalidFrameError, match="bad AudioFrame on leg 'agent'") as caught:
        AudioFrame(pcm=PCM, sample_rate=rate, leg="agent", pts=pts)
    assert isinstance(caught.value, VoiceError) and isinstance(caught.value, ValueError)


def test_a_session_drops_a_bad_frame_reports_it_once_and_the_call_goes_on() -> None:
    async def scenario() -> tuple[list[Frame], int]:
        collector = Collector()
        manager = CallManager(lambda *_: Pipeline([collector]))
        session = await manager.open_call(CallStartedFrame(call_id="c1", legs={"agent": "agent"}), Output())
        for i in range(3):
            bad = AudioFrame(pcm=PCM, sample_rate=8000, leg="agent", pts=i * 0.02)
            bad.sample_rate = 0  # changed after it was built: push must still not raise
            session.push(bad)
        session.push(AudioFrame(pcm=PCM, sample_rate=8000, leg="agent", pts=0.06))
        session.close("hangup")
        await asyncio.wait_for(session.task, 5)
        return collector.frames, session.bad_frames

    frames, bad = asyncio.run(scenario())
    errors = [f for f in frames if isinstance(f, ErrorFrame)]
    assert bad == 3 and len(errors) == 1 and not errors[0].fatal and "sample_rate" in errors[0].message
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    assert [f.pts for f in audio] == [0.06]
    assert type(frames[-1]).__name__ == "CallEndedFrame"
    assert frames[-1].audio_time == pytest.approx(0.08)  # type: ignore[attr-defined]
