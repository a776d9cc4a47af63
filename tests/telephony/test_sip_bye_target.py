"""Our BYE goes where the dialog's latest request came from (RFC 3261 12.2.1.1, 18.1.1), not to
the hop of the INVITE: a TCP connection that replaced the INVITE's, or the standby node of an SBC
that took the dialog over with a re-INVITE and its own Contact (UDP)."""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip.message import response_to
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server

pytestmark = pytest.mark.e2e


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def take_over(new: SipPeer, old: SipPeer) -> None:
    """``new`` continues ``old``'s dialog."""
    new.call_id, new.from_tag, new.to_tag = old.call_id, old.from_tag, old.to_tag


def test_bye_goes_on_the_tcp_connection_that_carried_the_latest_request() -> None:
    async def scenario():
        async with sip_server() as (server, _):
            first = await SipPeer(server.ports["tcp"], "tcp").__aenter__()
            await first.invite(PCMU_OFFER.format(port=7000))
            async with SipPeer(server.ports["tcp"], "tcp") as second:
                take_over(second, first)
                await first.__aexit__()  # the INVITE's connection goes away
                second.request("INVITE", cseq=2, body=PCMU_OFFER.format(port=7000))
                await second.response(200)
                second.request("ACK", cseq=2)
                await asyncio.sleep(0.05)
                next(iter(server.calls.values())).hang_up("test")
                return await asyncio.wait_for(second.requests.get(), 2.0)

    bye = run(scenario())
    assert bye.method == "BYE"


def test_bye_goes_to_the_node_that_took_the_dialog_over_udp() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as active:
            async with SipPeer(server.ports["udp"]) as standby:
                await active.invite(PCMU_OFFER.format(port=7000))
                take_over(standby, active)
                standby.request("INVITE", cseq=2)  # offerless: still a target refresh
                await standby.response(200)
                standby.request("ACK", cseq=2, body=PCMU_OFFER.format(port=7000))
                await asyncio.sleep(0.05)
                next(iter(server.calls.values())).hang_up("test")
                bye = await asyncio.wait_for(standby.requests.get(), 2.0)
                standby.send_raw(response_to(bye, 200, "OK").to_bytes())
                await asyncio.sleep(0.1)
                return bye, standby.local_port, active.requests.qsize()

    bye, standby_port, to_failed_node = run(scenario())
    assert bye.method == "BYE"
    assert bye.uri == f"sip:peer@127.0.0.1:{standby_port};transport=udp"  # the standby's Contact
    assert to_failed_node == 0
