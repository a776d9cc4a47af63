"""Overlapping offers in one dialog against a scripted peer on 127.0.0.1 (RFC 3261 14.2, RFC 3311
5.2): a re-INVITE while the 2xx of an earlier INVITE still waits for its ACK, or an UPDATE offer
while our offer (in a 2xx to an offerless re-INVITE) is unanswered, gets 491 Request Pending; a
retransmission of the pending re-INVITE is still answered from its transaction."""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip.message import SipMessage
from telephony.sip.sdp import parse_sdp
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server

pytestmark = pytest.mark.e2e
HOLD = PCMU_OFFER.replace("a=sendrecv", "a=inactive")


def run(coroutine, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def answer(peer: SipPeer, cseq: str) -> SipMessage:
    """The next final response to the request with CSeq ``cseq`` (skips 100 and retransmissions)."""
    while True:
        response = await peer.response()
        if response.get("CSeq") == cseq and (response.status or 0) >= 200:
            return response


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_reinvite_before_the_ack_of_an_earlier_one_gets_491_and_after_it_200(transport: str) -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports[transport], transport) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            branch = peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            held = await answer(peer, "2 INVITE")
            peer.request("INVITE", cseq=3, body=PCMU_OFFER.format(port=7000))  # before ACK 2
            overlapping = await answer(peer, "3 INVITE")
            peer.request("INVITE", cseq=2, body=HOLD.format(port=7000), branch=branch)  # a copy
            repeated = await answer(peer, "2 INVITE")
            # RFC 3311 5.2: that re-INVITE's offer was answered in its 2xx, so an UPDATE offer is fine
            peer.request("UPDATE", cseq=4, body=HOLD.format(port=7000))
            update = await answer(peer, "4 UPDATE")
            peer.request("ACK", cseq=2)
            await asyncio.sleep(0.05)
            peer.request("INVITE", cseq=5, body=PCMU_OFFER.format(port=7000))
            retried = await answer(peer, "5 INVITE")
            peer.request("ACK", cseq=5)
            return held, overlapping, repeated, update, retried, server.stats.responses_sent

    held, overlapping, repeated, update, retried, sent = run(scenario())
    assert parse_sdp(held.body).media[0].direction == "inactive"
    assert overlapping.status == 491
    assert repeated.status == 200 and repeated.body == held.body and sent[491] == 1
    assert update.status == 200 and parse_sdp(update.body).media[0].direction == "inactive"
    assert retried.status == 200 and parse_sdp(retried.body).media[0].direction == "recvonly"


def test_reinvite_before_the_ack_of_the_first_invite_gets_491() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            ok = await peer.response(200)
            peer.to_tag = ok.get("To").split("tag=")[1]  # type: ignore[union-attr]
            peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            early = await answer(peer, "2 INVITE")
            peer.request("ACK", cseq=1)
            return early

    early = run(scenario())
    assert (early.status, early.get("CSeq")) == (491, "2 INVITE")


def test_update_offer_while_our_offer_is_unanswered_gets_491_and_without_offer_200() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("INVITE", cseq=2)  # no offer: ours goes in the 200, the answer in the ACK
            our_offer = await peer.response(200)
            peer.request("UPDATE", cseq=3, body=HOLD.format(port=7000))
            update_offer = await answer(peer, "3 UPDATE")
            peer.request("UPDATE", cseq=4)  # no offer: nothing overlaps
            update_plain = await answer(peer, "4 UPDATE")
            return our_offer, update_offer, update_plain

    our_offer, update_offer, update_plain = run(scenario())
    assert our_offer.body
    assert (update_offer.status, update_offer.get("CSeq")) == (491, "3 UPDATE")
    assert (update_plain.status, update_plain.get("CSeq")) == (200, "4 UPDATE")
