"""An aiortc client peer on loopback speaks real speech (Asterisk prompts, Opus) into
``POST /webrtc/offer`` of the real server: recognised words, role, tenant and agent from the
offer, event order, stored transcript."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tests.fakes.peers import ice_on_loopback_only
from tests.live.events import EventClient, check_event_order, check_stored, wer
from tests.live.peers import PROMPT_RATE, Prompts, read_pcm
from tests.live.server import LiveServer

pytestmark = pytest.mark.e2e

PROMPTS = ["vm-newuser", "followme__status"]
MAX_PROMPT_WER = 0.2


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    ice_on_loopback_only(monkeypatch)


class SpeechTrack(MediaStreamTrack):
    """A microphone that plays ``samples`` (int16 at 8 kHz) in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self.samples, self.sent, self.start = samples, 0, 0.0
        self.step = PROMPT_RATE // 50

    async def recv(self) -> av.AudioFrame:
        if self.sent * self.step >= len(self.samples):
            self.stop()
            raise MediaStreamError
        self.start = self.start or time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.sent * 0.02 - time.monotonic()))
        chunk = self.samples[self.sent * self.step : (self.sent + 1) * self.step]
        chunk = np.pad(chunk, (0, self.step - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = PROMPT_RATE, self.sent * self.step
        frame.time_base = fractions.Fraction(1, PROMPT_RATE)
        self.sent += 1
        return frame


def test_aiortc_peer_speaks_real_speech(
    live_server: LiveServer, supervisor: EventClient, prompts: Prompts, tmp_path: Path
) -> None:
    wav, reference = prompts.joined(PROMPTS, tmp_path / "speech.wav")
    samples = read_pcm(wav)

    async def scenario():
        follow = asyncio.create_task(supervisor.follow(lambda c: c["agent_id"] == "agent-rtc"))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = SpeechTrack(samples)
        pc.addTrack(track)
        await pc.setLocalDescription(await pc.createOffer())
        offer = {
            "sdp": pc.localDescription.sdp,
            "type": "offer",
            "tenant": "acme",
            "agent_id": "agent-rtc",
            "role": "agent",
        }
        token = live_server.add_agent("agent-rtc")  # the softphone's agent, signed in
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"http://{live_server.host}/webrtc/offer", json=offer, timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            )
        response.raise_for_status()
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=response.json()["sdp"], type="answer")
        )
        async with asyncio.timeout(60):
            while track.readyState != "ended":  # noqa: ASYNC110 - aiortc has no end-of-track event
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last packets in flight
        await pc.close()
        return response.json(), await follow

    answer, record = asyncio.run(scenario())
    assert answer["call_id"] == record.call_id and "opus/48000" in answer["sdp"]
    check_event_order(record)
    check_stored(record, live_server.services.live_store)
    started = record.events[0]
    assert (started["source"], started["tenant"], started["agent_id"]) == (
        "webrtc",
        "acme",
        "agent-rtc",
    )
    assert started["legs"] == {"agent": "agent"} and record.roles() == {"agent"}
    assert wer(reference, record.text()) <= MAX_PROMPT_WER, record.text()
