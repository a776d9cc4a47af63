"""StreamingAsrProcessor's turn times on real prompts (Silero VAD): jumps in a leg's pts, and
long turns split at a pause.

The decoder is a stand-in (one word over the audio it is given), so the test is about where the
turns are, not what they say; it records the final requests to show what was decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asr.streaming import SAMPLE_RATE, DecodeRequest
from asr.types import Word
from tests.fakes.frames import Collector
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    Frame,
    Role,
    SpeechStartedFrame,
    SpeechStoppedFrame,
    TranscriptFinalFrame,
)
from voice.live.asr_runtime import live_streaming_config
from voice.live.scheduler import DecodeScheduler, SchedulerConfig
from voice.processor import Pipeline
from voice.processors import asr as asr_module
from voice.processors.asr import AsrScheduler, StreamingAsrProcessor
from voice.vad import VadEvent, VadEventType

RATE = 8000
PROMPTS = "asr/asterisk_prompts_8k/wav"


class SpanDecoder:
    """One word over each request's own audio (its context excluded); keeps the final requests."""

    def __init__(self) -> None:
        self.finals: list[DecodeRequest] = []

    def __call__(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        self.finals += [r for r in requests if r.final]
        out = []
        for r in requests:
            seconds = len(r.audio) / SAMPLE_RATE
            out.append([Word("word", r.context, seconds, 0.9)] if seconds - r.context > 0.05 else [])
        return out


def prompt(shared_data: Path, name: str) -> np.ndarray:
    pcm, rate = sf.read(shared_data / PROMPTS / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return np.asarray(pcm)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def frames_of(pcm: np.ndarray, pts: float, leg: str = "mixed") -> list[AudioFrame]:
    step = RATE // 50
    return [
        AudioFrame(pcm=pcm[i : i + step], sample_rate=RATE, leg=leg, pts=pts + i / RATE)
        for i in range(0, len(pcm), step)
    ]


def run(
    frames: list[AudioFrame], role: Role, **options: Any
) -> tuple[list[Frame], list[DecodeRequest]]:
    """The frames through the live CPU processor (decodes awaited per frame, as in real time)."""
    decoder = SpanDecoder()

    async def scenario() -> list[Frame]:
        scheduler: AsrScheduler = DecodeScheduler(decoder, SchedulerConfig(workers=1))
        processor = StreamingAsrProcessor(scheduler, config=live_streaming_config(on_cpu=True), **options)
        collector = Collector()
        pipeline = Pipeline([processor, collector])
        await pipeline.process_frame(CallStartedFrame(call_id="c1", legs={"mixed": role}))
        for frame in frames:
            await pipeline.process_frame(frame)
            await processor.drained()
        await pipeline.process_frame(CallEndedFrame(call_id="c1"))
        await pipeline.close()
        scheduler.close()
        return collector.frames

    return asyncio.run(asyncio.wait_for(scenario(), 60)), decoder.finals


def finals(frames: list[Frame]) -> list[TranscriptFinalFrame]:
    return [f for f in frames if isinstance(f, TranscriptFinalFrame)]


@pytest.mark.model  # Silero VAD
@pytest.mark.parametrize("held_in_speech", [False, True])
def test_a_jump_in_the_legs_pts_moves_the_later_turns_with_it(shared_data: Path, held_in_speech: bool) -> None:
    # A hold (or an RTP outage longer than the transport fills): the prompt after it is on the
    # wire at 60 s. Counting samples put its turn at about 8.6 s, so redaction silenced the
    # wrong span of the recording (which places audio by pts).
    first = prompt(shared_data, "agent-alreadyon")
    spoken = first[: 2 * RATE] if held_in_speech else np.concatenate([first, silence(2.0)])
    before = np.concatenate([silence(1.0), spoken])
    after = np.concatenate([prompt(shared_data, "conf-getchannel"), silence(2.0)])
    out, _ = run(frames_of(before, 0.0) + frames_of(after, 60.0), "agent")
    turns = [(f.start, f.end) for f in finals(out)]
    starts = [f.audio_time for f in out if isinstance(f, SpeechStartedFrame)]
    assert len(turns) == 2 and len(starts) == 2, turns
    (start1, end1), (start2, end2) = turns
    assert 1.0 <= start1 < end1 <= len(before) / RATE  # a turn open at the hold ends before it
    assert 60.0 <= starts[1] <= start2 < end2 <= 60.0 + 3.2  # the prompt lasts 3.12 s


@pytest.mark.model
@pytest.mark.parametrize(("role", "options"), [("agent", {"max_turn": 9.0}), ("unknown", {})])
def test_a_turn_split_in_a_pause_that_lasts_ends_where_its_speech_did(
    shared_data: Path, role: Role, options: dict[str, Any]
) -> None:
    # 0.6-9.3 s of speech, then 1.5 s of silence: the turn is split just after 9.3 s (a stereo
    # leg at max_turn, a mixed one at its first pause after 8 s), inside that pause. The next
    # turn was opened there and closed by the VAD at the pause's start: a phantom final on
    # silence, with end < start.
    pcm = np.concatenate([
        silence(0.5), prompt(shared_data, "agent-alreadyon"), silence(0.3), prompt(shared_data, "conf-getchannel"),
        silence(1.5), prompt(shared_data, "agent-user"), silence(2.0),
    ])  # fmt: skip
    out, requests = run(frames_of(pcm, 0.0), role, **options)
    stops = [f.audio_time for f in out if isinstance(f, SpeechStoppedFrame)]
    turns = [(f.start, f.end) for f in finals(out)]
    assert len(stops) == 2 and len(turns) == 2, turns
    assert all(start < end for start, end in turns)
    assert [end for _, end in turns] == pytest.approx(stops)  # turn 1 ends at 9.34 s, not after
    own_audio = [(len(r.audio) / SAMPLE_RATE - r.context) for r in requests]
    assert len(own_audio) == 2 and min(own_audio) > 4.0  # no final decoded a pause


@pytest.mark.model
def test_a_mixed_turn_split_at_a_short_pause_goes_on_when_speech_resumes(shared_data: Path) -> None:
    # Speech 0.6-14.6 s with pauses of 0.3 s: the mixed leg's turn is split in the pause after 9.3 s
    # and the next turn starts with the speech after it (at about 9.7 s), not inside the pause.
    pcm = np.concatenate([
        silence(0.5), prompt(shared_data, "agent-alreadyon"), silence(0.3), prompt(shared_data, "conf-getchannel"),
        silence(0.3), prompt(shared_data, "agent-user"), silence(2.0),
    ])  # fmt: skip
    out, requests = run(frames_of(pcm, 0.0), "unknown")
    turns = [(f.start, f.end) for f in finals(out)]
    assert len(turns) == 2, turns
    (_, end1), (start2, end2) = turns
    assert 9.2 < end1 < 9.5 and 9.6 < start2 < end2
    assert requests[1].offset + requests[1].context > end1 - 0.01  # its audio has none of turn 1's speech


class _LateStopVad:
    """Speech from 0.5 s on, every step speech until 3 s; then a stop dated back to 1.0 s (a
    turn split in between is then over before it began)."""

    def __init__(self, *_: Any, start_time: float = 0.0) -> None:
        self.start_time, self.samples, self.in_speech = start_time, 0, False

    @property
    def time(self) -> float:
        return self.start_time + self.samples / SAMPLE_RATE

    frame_is_speech = property(lambda self: self.in_speech)
    last_speech_end = property(lambda self: self.time)

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        before = self.time
        self.samples += len(samples)
        if before < 0.5 <= self.time:
            self.in_speech = True
            return [VadEvent(VadEventType.SPEECH_STARTED, 0.5, self.time, 0.5)]
        if before < 3.0 <= self.time and self.in_speech:
            self.in_speech = False
            return [VadEvent(VadEventType.SPEECH_STOPPED, 1.0, self.time, 0.5)]
        return []

    def finish(self) -> list[VadEvent]:
        return []


@pytest.mark.unit
def test_a_stop_dated_before_its_turn_began_drops_the_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asr_module, "VadStream", _LateStopVad)
    pcm = (np.random.default_rng(0).normal(0, 3000, 5 * RATE)).astype(np.int16)
    out, requests = run(frames_of(pcm, 0.0), "agent", max_turn=1.5)
    turns = [(f.start, f.end) for f in finals(out)]
    # split at max_turn (2.0 s; at the end of the turn's last committed word, if one ends in
    # the last seconds, not inside it), then nothing
    assert len(turns) == 1 and turns[0][0] == 0.5 and 1.5 <= turns[0][1] <= 2.1, turns
    assert len(requests) == 1
    assert isinstance(out[-1], CallEndedFrame)  # the flush did not wait for a dropped turn
