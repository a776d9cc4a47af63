"""An aiortc client peer on loopback posts its offer to ``POST /webrtc/offer`` and streams audio."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from fastapi import FastAPI

from telephony.webrtc import create_router
from tests.fakes.peers import ice_on_loopback_only
from tests.telephony.fakes import CollectingHandler
from tests.telephony.http_server import serve

pytestmark = pytest.mark.e2e
RATE = 16000


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    ice_on_loopback_only(monkeypatch)


class ToneTrack(MediaStreamTrack):
    """A paced 440 Hz tone of ``seconds``, like a microphone."""

    kind = "audio"

    def __init__(self, seconds: float, rate: int = 48000) -> None:
        super().__init__()
        self.rate, self.frames, self.sent, self.start = rate, int(seconds * 50), 0, None

    async def recv(self) -> av.AudioFrame:
        if self.sent >= self.frames:
            self.stop()
            raise MediaStreamError
        self.start = self.start or time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.sent * 0.02 - time.monotonic()))
        size = self.rate // 50
        t = (np.arange(size) + self.sent * size) / self.rate
        frame = av.AudioFrame.from_ndarray(
            (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None, :],
            format="s16",
            layout="mono",
        )
        frame.sample_rate, frame.pts = self.rate, self.sent * size
        frame.time_base = fractions.Fraction(1, self.rate)
        self.sent += 1
        return frame


@pytest.mark.parametrize("codec", [None, "pcmu"])
def test_aiortc_peer_streams_a_tone(codec: str | None) -> None:
    handler = CollectingHandler()
    app = FastAPI()
    app.include_router(create_router(handler))

    async def scenario():
        async with serve(app) as host:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTrack(ToneTrack(2.0))
            await pc.setLocalDescription(await pc.createOffer())
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://{host}/webrtc/offer",
                    json={
                        "sdp": pc.localDescription.sdp,
                        "type": "offer",
                        "tenant": "acme",
                        "agent_id": "agent-3",
                        "role": "agent",
                        "codec": codec,
                        "context": {"customer_tier": 2},
                    },
                )
                bad = await client.post(f"http://{host}/webrtc/offer", json={"sdp": "v=0 nonsense"})
                bad_fact = {"sdp": pc.localDescription.sdp, "context": {"tier": "gold"}}
                assert (await client.post(f"http://{host}/webrtc/offer", json=bad_fact)).status_code == 422
            answer = response.json()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            call = (await handler.wait_for_calls(1))[0]
            async with asyncio.timeout(10):
                while call.duration("agent") < 2.0:  # noqa: ASYNC110 - polls the fake's record
                    await asyncio.sleep(0.05)
            await pc.close()
            await asyncio.wait_for(call.closed.wait(), 10)
            return response.status_code, answer, bad.status_code, call

    status, answer, bad_status, call = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (
        status == 200 and answer["type"] == "answer" and answer["call_id"] == call.started.call_id
    )
    assert bad_status == 400
    wanted = "PCMU/8000" if codec == "pcmu" else "opus/48000"
    assert wanted in answer["sdp"].split("m=audio")[1].split("a=rtpmap:")[1]  # first codec answered
    started = call.started
    assert (started.source, started.tenant, started.agent_id) == ("webrtc", "acme", "agent-3")
    assert started.legs == {"agent": "agent"} and started.context == {"customer_tier": 2.0}
    call.check_contract()
    audio = call.audio("agent")[-RATE:]
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    assert np.argmax(spectrum) * RATE / len(audio) == pytest.approx(440, abs=2)
    assert call.closed_reason in ("hangup", "ice failed")
