"""A fake of the pipeline side of ``voice.transport``: records every call's frames."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from voice.errors import VoiceError
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame, DtmfFrame, Frame
from voice.transport import CallOutput


@dataclass
class RecordedCall:
    """Everything one call pushed, plus the output it was given."""

    started: CallStartedFrame
    output: CallOutput
    frames: list[Frame] = field(default_factory=list)
    closed_reason: str | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, frame: Frame) -> None:
        """CallSink.push: record."""
        if self.closed_reason is not None:
            raise AssertionError(f"frame {type(frame).__name__} pushed after close")
        self.frames.append(frame)

    def close(self, reason: str) -> None:
        """CallSink.close: record once."""
        if self.closed_reason is not None:
            raise AssertionError("sink closed twice")
        self.closed_reason = reason
        self.closed.set()

    def of_type(self, kind: type) -> list:
        """Frames of one type, in order."""
        return [frame for frame in self.frames if isinstance(frame, kind)]

    def audio(self, leg: str) -> np.ndarray:
        """All PCM of one leg, concatenated."""
        chunks = [f.pcm for f in self.of_type(AudioFrame) if f.leg == leg]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def duration(self, leg: str) -> float:
        """Seconds of audio received on ``leg``."""
        frames = [f for f in self.of_type(AudioFrame) if f.leg == leg]
        return sum(f.duration for f in frames)

    def digits(self) -> str:
        """DTMF digits in order."""
        return "".join(f.digit for f in self.of_type(DtmfFrame))

    def check_contract(self) -> None:
        """The voice.transport contract: pts increase per leg, CallEnded last, closed once."""
        assert self.closed_reason is not None, "sink never closed"
        assert isinstance(self.frames[-1], CallEndedFrame), "CallEndedFrame must come last"
        last: dict[str, float] = {}
        for frame in self.of_type(AudioFrame):
            assert frame.pcm.dtype == np.int16
            assert frame.pts >= last.get(frame.leg, -1.0) - 1e-6, "pts went backwards"
            last[frame.leg] = frame.pts + frame.duration


class CollectingHandler:
    """A CallHandler that records every call; ``refuse`` makes it reject new calls."""

    def __init__(self) -> None:
        self.calls: list[RecordedCall] = []
        self.refuse: str | None = None
        self._opened = asyncio.Condition()

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> RecordedCall:
        """Record a new call."""
        if self.refuse:
            raise VoiceError(self.refuse)
        call = RecordedCall(started, output)
        self.calls.append(call)
        async with self._opened:
            self._opened.notify_all()
        return call

    async def wait_for_calls(self, count: int) -> list[RecordedCall]:
        """Wait (at most 10 s) until ``count`` calls were opened."""
        async with asyncio.timeout(10), self._opened:
            await self._opened.wait_for(lambda: len(self.calls) >= count)
        return self.calls

    def by_source(self, source: str) -> list[RecordedCall]:
        """Calls of one ingress."""
        return [call for call in self.calls if call.started.source == source]
