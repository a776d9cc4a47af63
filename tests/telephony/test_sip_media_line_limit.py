"""An offer is refused (400 with a Warning) before any RTP port is bound when it has more m-lines
than ``MAX_MEDIA_LINES`` or an m-line port above 65535: one INVITE of 2,500 m-lines once bound
2,500 ports and sockets, and a 20-port range fell to a single INVITE."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telephony.sip.sdp import MAX_MEDIA_LINES, parse_sdp
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server

pytestmark = pytest.mark.e2e
SESSION = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


def offer(lines: int) -> str:
    return SESSION + "".join(f"m=audio {7000 + 2 * i} RTP/AVP 0\r\na=sendonly\r\n" for i in range(lines))


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30.0))


def test_too_many_m_lines_get_400_and_bind_nothing() -> None:
    async def scenario() -> tuple[Any, Any, Any, int]:
        async with sip_server() as (server, handler):
            async with SipPeer(server.ports["udp"]) as peer:
                peer.request("INVITE", body=offer(MAX_MEDIA_LINES + 1))
                refused = await peer.response()
                while refused.status < 200:
                    refused = await peer.response()
            calls_after_refusal = len(handler.calls)
            async with SipPeer(server.ports["udp"]) as peer:  # SIPREC-sized offers still work
                ok, _ = await peer.invite(offer(2))
                peer.request("BYE", cseq=2)
                await peer.response(200)
            return refused, ok, server, calls_after_refusal

    refused, ok, server, calls_after_refusal = run(scenario())
    assert refused.status == 400
    assert f"at most {MAX_MEDIA_LINES}" in (refused.get("Warning") or "")
    assert calls_after_refusal == 0  # refused before open_media and open_call
    assert server.stats.responses_sent[500] == 0
    assert [m.port != 0 for m in parse_sdp(ok.body).media] == [True, True]


def test_offer_with_the_most_m_lines_allowed_is_answered() -> None:
    async def scenario() -> Any:
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            ok, _ = await peer.invite(offer(MAX_MEDIA_LINES))
            peer.request("BYE", cseq=2)
            await peer.response(200)
            return ok

    assert len(parse_sdp(run(scenario()).body).media) == MAX_MEDIA_LINES


@pytest.mark.parametrize("port", ["65536", "70000", "4294967295"])
def test_m_line_port_above_65535_gets_400(port: str) -> None:
    async def scenario() -> Any:
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=PCMU_OFFER.format(port=port))
            answer = await peer.response()
            while answer.status < 200:
                answer = await peer.response()
            assert handler.calls == []
            return answer

    answer = run(scenario())
    assert answer.status == 400 and "above 65535" in (answer.get("Warning") or "")
