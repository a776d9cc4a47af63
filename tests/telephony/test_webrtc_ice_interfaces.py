"""The answer's ICE host candidates stay on ``webrtc_ice_interfaces`` (default: the bind address).

The host is made to look multi-homed without touching a real network: aioice's address list is
replaced by 127.0.0.1 plus a decoy, 127.0.0.2 (loopback too). The client peer gathers on
127.0.0.1 only, before the decoy appears, so with the setting honoured all traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from telephony.settings import TelephonySettings
from telephony.webrtc.ice import ice_addresses
from telephony.webrtc.transport import WebRtcIngress, WebRtcOffer
from tests.telephony.fakes import CollectingHandler
from voice.errors import ConfigError

pytestmark = pytest.mark.e2e
DECOY = "127.0.0.2"


@pytest.fixture
def host_addresses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What aioice believes this host's addresses are (mutable: a test adds the decoy)."""
    addresses = ["127.0.0.1"]
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: list(addresses))
    return addresses


def host_candidates(sdp: str) -> set[str]:
    return {match.group(1) for match in re.finditer(r"a=candidate:\S+ \d+ \w+ \d+ (\S+) \d+ typ host", sdp)}


async def answer_on(settings: TelephonySettings, addresses: list[str], *, connect: bool):
    """A real aiortc client offers (on 127.0.0.1), then the host grows the decoy and answers."""
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("audio", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    addresses.append(DECOY)
    ingress = WebRtcIngress(CollectingHandler(), settings)
    try:
        call, answer = await ingress.accept(WebRtcOffer(sdp=client.localDescription.sdp))
        outside = aioice.ice.get_host_addresses(True, True)  # outside our gathering: untouched
        state = None
        if connect:
            await client.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
            async with asyncio.timeout(10):
                while call.pc.connectionState != "connected":  # noqa: ASYNC110 - aiortc has no wait
                    await asyncio.sleep(0.05)
            state = client.connectionState
        return answer.sdp, outside, state
    finally:
        await client.close()
        await ingress.aclose()


def test_a_server_bound_to_loopback_offers_and_connects_on_loopback_only(host_addresses: list[str]) -> None:
    settings = TelephonySettings()  # sip_host 127.0.0.1, webrtc_ice_interfaces unset
    sdp, outside, state = asyncio.run(asyncio.wait_for(answer_on(settings, host_addresses, connect=True), 30))
    assert host_candidates(sdp) == {"127.0.0.1"}  # not the decoy, although aioice lists it
    assert state == "connected"  # ICE and DTLS over 127.0.0.1 with a real aiortc peer
    assert outside == ["127.0.0.1", DECOY]  # other peer connections still get aioice's list


def test_listed_interfaces_and_an_unspecified_bind_address(host_addresses: list[str]) -> None:
    listed = TelephonySettings(sip_host="0.0.0.0", webrtc_ice_interfaces=("127.0.0.1",))
    sdp, _, _ = asyncio.run(asyncio.wait_for(answer_on(listed, host_addresses, connect=False), 30))
    assert host_candidates(sdp) == {"127.0.0.1"}  # the setting wins over the bind address
    host_addresses.remove(DECOY)
    everywhere = TelephonySettings(sip_host="0.0.0.0")
    sdp, _, _ = asyncio.run(asyncio.wait_for(answer_on(everywhere, host_addresses, connect=False), 30))
    assert host_candidates(sdp) == {"127.0.0.1", DECOY}  # bound to 0.0.0.0: every interface


def test_setting_values() -> None:
    assert ice_addresses(TelephonySettings()) == ("127.0.0.1",)
    assert ice_addresses(TelephonySettings(sip_host="0.0.0.0")) is None
    assert ice_addresses(TelephonySettings(webrtc_ice_interfaces=("::",))) is None
    assert "127.0.0.1" in (ice_addresses(TelephonySettings(webrtc_ice_interfaces=("lo",))) or ())
    assert ice_addresses(TelephonySettings(sip_host="localhost")) in (("127.0.0.1",), ("::1", "127.0.0.1"),
                                                                      ("127.0.0.1", "::1"))
    from_yaml = TelephonySettings(webrtc_ice_interfaces="127.0.0.1, 10.0.0.5")  # type: ignore[arg-type]
    assert from_yaml.webrtc_ice_interfaces == ("127.0.0.1", "10.0.0.5")
    with pytest.raises(ConfigError):
        TelephonySettings(webrtc_ice_interfaces=())
    with pytest.raises(ConfigError):
        ice_addresses(TelephonySettings(webrtc_ice_interfaces=("no-such-interface.invalid",)))
