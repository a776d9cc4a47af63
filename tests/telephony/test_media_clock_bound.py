"""A leg's media clock (and the audio spool's span) is bounded by wall time.

Timestamps are the sender's word; every gap they claim becomes silence or a timeline jump. Before
the bound, 300 tiny Twilio messages 59 s apart made a 4.9 h call and a 565 MB WAV. Gaps may now
add up to at most the wall time since the stream started plus ``MAX_LEAD`` (LegAudio) or
``MAX_GAP`` (spool); honest gaps, which pass on the wall clock too, are kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from websockets.asyncio.client import connect

from telephony import codecs
from telephony.legs import MAX_LEAD, LegAudio
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from tests.telephony.fakes import CollectingHandler
from tests.telephony.http_server import serve
from voice.frames import AudioFrame
from voice.processors.audio_spool import MAX_GAP, AudioSpool

RATE = 8000
CHUNK = 160  # 20 ms at 8 kHz


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tone(n: int = CHUNK) -> np.ndarray:
    return np.full(n, 1000, dtype=np.int16)


def _timeline_end(frames: list[AudioFrame]) -> float:
    return max(f.pts + f.duration for f in frames)


@pytest.mark.unit
@pytest.mark.parametrize("gap", [9.99, 59.0, 3600.0])  # filled, jumped, jumped far
def test_far_ahead_timestamps_add_no_more_than_wall_time_plus_the_slack(
    gap: float, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    leg = LegAudio("inbound", RATE, RATE, clock=clock)
    frames: list[AudioFrame] = []
    with caplog.at_level(logging.WARNING, logger="telephony.legs"):
        for k in range(300):  # 300 tiny messages in 3 s of wall time
            frames += leg.push(_tone(), k * gap)
            clock.now += 0.01
        frames += leg.flush()
    received, wall = 300 * CHUNK / RATE, 3.0
    produced = sum(len(f.pcm) for f in frames) / RATE
    assert _timeline_end(frames) <= received + wall + MAX_LEAD + 1e-6  # not 300 x gap
    assert produced <= received + wall + MAX_LEAD + 1e-6
    assert leg.gap_time <= wall + MAX_LEAD + 1e-6 and leg.positions_pulled_back > 0
    assert sum("runs ahead of the wall clock" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.unit
def test_after_a_pull_back_the_senders_audio_goes_on_contiguously() -> None:
    clock = FakeClock()
    leg = LegAudio("inbound", RATE, RATE, clock=clock)
    frames = leg.push(_tone(), 0.0)
    frames += leg.push(_tone(), 1800.0)  # the sender's clock jumps 30 min ahead, 0 s of wall time
    for k in range(1, 50):  # then runs on consistently, in real time
        clock.now += 0.02
        frames += leg.push(_tone(), 1800.0 + k * 0.02)
    assert leg.silence_filled == pytest.approx(MAX_LEAD)  # the gap kept only up to the bound, once
    assert _timeline_end(frames) == pytest.approx(0.02 + MAX_LEAD + 50 * 0.02)
    for earlier, later in zip(frames, frames[1:], strict=False):
        assert later.pts == pytest.approx(earlier.pts + earlier.duration)


@pytest.mark.unit
def test_gaps_that_passed_on_the_wall_clock_are_kept() -> None:
    clock = FakeClock()
    leg = LegAudio("inbound", RATE, RATE, clock=clock)
    frames = leg.push(_tone(), 0.0)
    clock.now += 8.0  # 8 s of lost packets (more than the slack), really 8 s later
    frames += leg.push(_tone(), 8.0)
    clock.now += 3600.0  # an hour on hold, really an hour later
    frames += leg.push(_tone(), 3608.0)
    assert [f.pts for f in frames] == pytest.approx([0.0, 0.02, 3608.0])  # silence + tone, then a jump
    assert frames[1].duration == pytest.approx(8.0)
    assert leg.silence_filled == pytest.approx(7.98) and leg.timeline_jumps == 1
    assert leg.positions_pulled_back == 0


@pytest.mark.unit
def test_a_sender_catching_up_after_a_stall_keeps_its_timeline() -> None:
    clock = FakeClock()
    leg = LegAudio("inbound", RATE, RATE, clock=clock)
    frames: list[AudioFrame] = []
    for k in range(100):  # 2 s in real time
        frames += leg.push(_tone(), k * 0.02)
        clock.now += 0.02
    clock.now += 6.0  # the network stalls for 6 s; then 1 s of audio is missing (lost in the stall)
    for k in range(150, 550):  # and 8 s of backlog arrive at once, faster than real time
        frames += leg.push(_tone(), k * 0.02)
    assert _timeline_end(frames) == pytest.approx(11.0)
    assert leg.silence_filled == pytest.approx(1.0) and leg.positions_pulled_back == 0


@pytest.mark.unit
def test_a_flat_out_replay_keeps_its_pauses_within_the_slack() -> None:
    clock = FakeClock()  # never moves: 60 s of audio sent in no wall time at all
    leg = LegAudio("external", RATE, 16000, clock=clock)
    frames: list[AudioFrame] = []
    for k in range(1500):
        frames += leg.push(_tone(), k * 0.02)
    for k in range(1500, 3000):  # resumed after a 4 s pause
        frames += leg.push(_tone(), 4.0 + k * 0.02)
    frames += leg.flush()
    assert _timeline_end(frames) == pytest.approx(64.0)
    assert leg.positions_pulled_back == 0


def _spool_wav(tmp_path: Path, clock: FakeClock, pushes: list[tuple[float, float]]) -> float:
    """Push (pts, wall seconds after) chunks; the WAV's length in seconds."""
    with ThreadPoolExecutor(1) as executor:
        spool = AudioSpool(tmp_path / "spool", "c1", executor, flush_seconds=0.5, clock=clock)
        for pts, wall in pushes:
            spool.push("a", pts, _tone(), RATE)
            clock.now += wall
        spool.finish(tmp_path / "c1.wav", ["a"])
    info = sf.info(tmp_path / "c1.wav")
    return float(info.frames / info.samplerate)


@pytest.mark.unit
def test_the_spool_never_spans_more_than_wall_time_plus_its_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    pushes = [(k * 59.0, 0.01) for k in range(300)]  # each within MAX_GAP of the last, 3 s of wall
    with caplog.at_level(logging.WARNING, logger="voice.processors.audio_spool"):
        seconds = _spool_wav(tmp_path, clock, pushes)
    assert seconds <= 300 * CHUNK / RATE + 3.0 + MAX_GAP + 0.01  # not 4.9 h
    assert sum("ahead of the wall clock" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.unit
def test_the_spool_keeps_gaps_that_passed_on_the_wall_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    pushes = [(k * 59.0, 59.0) for k in range(5)]  # a chunk a minute, a minute apart
    assert _spool_wav(tmp_path, clock, pushes) == pytest.approx(4 * 59.0 + 0.02, abs=0.001)


@pytest.mark.e2e
def test_a_tiny_twilio_stream_with_far_apart_timestamps_stays_a_short_call() -> None:
    """The reviewer's attack over a real socket: 300 messages of 20 ms, 59 s apart on their clock."""
    handler = CollectingHandler()
    app = FastAPI()
    app.include_router(create_router(handler, TelephonySettings()))
    payload = base64.b64encode(bytes(codecs.ulaw_encode(_tone()))).decode()

    async def scenario() -> float:
        async with serve(app) as host, connect(f"ws://{host}/ws/twilio") as ws:
            started = time.monotonic()
            start = {"streamSid": "MZ1", "tracks": ["inbound"], "customParameters": {"tenant": "acme"}}
            await ws.send(json.dumps({"event": "start", "streamSid": "MZ1", "start": start}))
            for k in range(300):
                media = {"track": "inbound", "timestamp": str(k * 59000), "payload": payload}
                await ws.send(json.dumps({"event": "media", "streamSid": "MZ1", "media": media}))
            await ws.send(json.dumps({"event": "stop", "streamSid": "MZ1"}))
            await ws.wait_closed()
            await asyncio.wait_for(handler.calls[0].closed.wait(), 10)
            return time.monotonic() - started

    wall = asyncio.run(asyncio.wait_for(scenario(), 60))
    (call,) = handler.calls
    call.check_contract()
    frames = call.of_type(AudioFrame)
    assert _timeline_end(frames) <= 300 * 0.02 + wall + MAX_LEAD  # was 300 x 59 s = 4.9 h
    assert call.duration("inbound") <= 300 * 0.02 + wall + MAX_LEAD


@pytest.mark.unit
def test_a_leg_made_at_its_first_frame_counts_wall_time_from_the_call_start() -> None:
    # WebRTC makes its leg when the first frame arrives, at a position counted from the call's
    # start: 8 s of ICE and DTLS are a real gap that passed on the wall clock.
    clock = FakeClock()
    leg = LegAudio("agent", RATE, RATE, clock=clock, started=clock.now - 8.0)
    frames = leg.push(_tone(), 8.0) + leg.flush()
    assert leg.positions_pulled_back == 0 and leg.silence_filled == pytest.approx(8.0)
    assert _timeline_end(frames) == pytest.approx(8.02)
    early = LegAudio("agent", RATE, RATE, clock=clock)  # counted from its own making: 3 s cut
    assert _timeline_end(early.push(_tone(), 8.0) + early.flush()) == pytest.approx(MAX_LEAD + 0.02)
