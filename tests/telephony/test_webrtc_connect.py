"""WebRTC calls whose media never starts still end: connect watchdog and close() on loopback."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from telephony.settings import TelephonySettings
from telephony.webrtc.transport import WebRtcIngress, WebRtcOffer
from tests.fakes.peers import ice_on_loopback_only
from tests.telephony.fakes import CollectingHandler
from voice.frames import CallEndedFrame

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    ice_on_loopback_only(monkeypatch)


async def orphan_offer(*, end_of_candidates: bool = True) -> str:
    """An offer whose browser went away before ICE finished: nobody answers the checks."""
    client = RTCPeerConnection()
    client.addTransceiver("audio", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    sdp = client.localDescription.sdp
    await client.close()
    # Chrome's non-trickle offers carry no end-of-candidates: ICE then stays "checking".
    return sdp if end_of_candidates else sdp.replace("a=end-of-candidates\r\n", "")


def test_a_call_that_never_connects_is_closed_by_the_watchdog() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[str | None, int, str, float]:
        ingress = WebRtcIngress(handler, TelephonySettings(), connect_timeout=0.5)
        call, _ = await ingress.accept(WebRtcOffer(sdp=await orphan_offer(end_of_candidates=False)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(handler.calls[0].closed.wait(), 10)
        waited = loop.time() - started
        await asyncio.sleep(0)  # let the ingress forget the call
        return handler.calls[0].closed_reason, len(ingress.calls), call.pc.connectionState, waited

    reason, live, state, waited = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert reason == "connect timeout"
    assert live == 0 and state == "closed"
    assert waited < 5.0  # 0.5 s watchdog + at most the 2 s drain
    assert isinstance(handler.calls[0].frames[-1], CallEndedFrame)


def test_shutdown_before_media_started_closes_the_pipeline_call() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[str | None, bool, bool]:
        ingress = WebRtcIngress(handler, TelephonySettings())
        call, _ = await ingress.accept(WebRtcOffer(sdp=await orphan_offer()))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(ingress.aclose(), 5)
        consumer = call._consumer
        return handler.calls[0].closed_reason, call.ended.is_set(), consumer is None or consumer.done()

    reason, ended, consumer_done = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert reason == "shutdown" and ended and consumer_done
    assert isinstance(handler.calls[0].frames[-1], CallEndedFrame)
