"""An offerless re-INVITE (delayed offer, as CUCM and 3PCC transfers send): our offer goes in the
200 and the far end's answer comes in the ACK (RFC 3261 13.2.1, RFC 3264 5). Its new address
must be applied, else the moved RTP counts as stray and the call ends on ``rtp_timeout``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from telephony.sip.sdp import parse_sdp
from tests.telephony.sip_peer import G729_OFFER, PCMU_OFFER, RtpSender, SipPeer, sip_server

pytestmark = pytest.mark.e2e
TONE = (3000 * np.sin(np.arange(160) * 0.3)).astype(np.int16)
ANSWER = PCMU_OFFER.replace("a=sendrecv", "a=sendonly")
"""The far end's answer to our recvonly offer: it sends (not a hold)."""


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_answer_in_the_ack_moves_the_media_source() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            _, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000))
            call = next(iter(server.calls.values()))
            async with RtpSender(rtp_port, ssrc=1) as old:
                for seq in range(5):
                    old.audio(seq, TONE)
                await asyncio.sleep(0.1)  # latches the old source
            async with RtpSender(rtp_port, ssrc=2) as new:
                assert new.transport is not None
                new_port = new.transport.get_extra_info("sockname")[1]
                peer.request("INVITE", cseq=2)  # no offer: ours comes in the 200
                ok = await peer.response(200)
                peer.request("ACK", cseq=2, body=ANSWER.format(port=new_port))
                await asyncio.sleep(0.05)
                for seq in range(10):
                    new.audio(100 + seq, TONE)
                await asyncio.sleep(0.2)
            (receiver,) = call.receivers.values()
            return ok, receiver, new_port, call, call.state

    ok, receiver, new_port, call, state = run(scenario())
    (offer,) = parse_sdp(ok.body).media
    assert offer.port == receiver.port and offer.direction == "recvonly"
    assert receiver.remote == ("127.0.0.1", new_port)
    assert (receiver.stats.packets, receiver.stats.stray) == (15, 0)
    assert call.on_hold is False  # "sendonly" answering our recvonly offer is no hold
    assert state == "confirmed"


def test_an_unusable_answer_in_the_ack_leaves_the_session_as_it_was() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            call = next(iter(server.calls.values()))
            peer.request("INVITE", cseq=2)
            await peer.response(200)
            peer.request("ACK", cseq=2, body=G729_OFFER.format(port=7100))  # no codec of ours
            await asyncio.sleep(0.1)
            (receiver,) = call.receivers.values()
            return receiver.remote, call.state, dict(server.calls)

    remote, state, calls = run(scenario())
    assert remote == ("127.0.0.1", 7000)
    assert state == "confirmed" and len(calls) == 1  # nothing can refuse an ACK: the call goes on
