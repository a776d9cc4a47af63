"""Non-2xx final responses to an INVITE over UDP are re-sent until their ACK (RFC 3261 17.2.1,
Timer G: T1 doubling to T2, up to Timer H = 64*T1); over TCP they are sent once.

T1 is lowered to 20 ms (T2 80 ms, Timer H 1.28 s) so the schedule plays out in well under a second.
"""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip import transactions
from telephony.sip.message import tag_of
from tests.telephony.sip_peer import G729_OFFER, PCMU_OFFER, SipPeer, drain, sip_server

pytestmark = pytest.mark.e2e
T1, T2 = 0.02, 0.08


@pytest.fixture(autouse=True)
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "T1", T1)
    monkeypatch.setattr(transactions, "T2", T2)


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_488_is_resent_until_its_ack_then_stops() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=G729_OFFER.format(port=7000))
            before = await drain(peer, 0.35)  # sent at 0, 20, 60, 140, 220 and 300 ms
            peer.request("ACK", branch=branch, to_tag=tag_of(before[-1].get("To") or ""))
            await asyncio.sleep(0.05)  # a send already scheduled may still be in flight
            after = await drain(peer, 0.4)
            return before, after

    before, after = run(scenario())
    statuses = [r.status for r in before]
    assert statuses[0] == 100 and set(statuses[1:]) == {488} and len(statuses[1:]) >= 3
    assert len({r.to_bytes() for r in before[1:]}) == 1  # the very same 488
    assert after == []


def test_487_after_cancel_is_resent_until_its_ack() -> None:
    async def scenario():
        async with sip_server(ring_time=5.0) as (server, _), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            await peer.response(180)
            peer.request("CANCEL", branch=branch)
            before = await drain(peer, 0.2)
            terminated = [r for r in before if r.status == 487]
            peer.request("ACK", branch=branch, to_tag=tag_of(terminated[0].get("To") or ""))
            await asyncio.sleep(0.05)
            return terminated, await drain(peer, 0.3)

    terminated, after = run(scenario())
    assert len(terminated) >= 2 and {r.get("CSeq") for r in terminated} == {"1 INVITE"}
    assert after == []


def test_488_without_ack_stops_at_timer_h() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=G729_OFFER.format(port=7000))
            return await drain(peer, 64 * T1 + 0.1), await drain(peer, 0.3)

    until_h, after = run(scenario())
    assert len([r for r in until_h if r.status == 488]) >= 10
    assert after == []


def test_488_over_tcp_is_sent_once() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["tcp"], "tcp") as peer:
            peer.request("INVITE", body=G729_OFFER.format(port=7000))
            return await drain(peer, 0.3)

    assert [r.status for r in run(scenario())] == [100, 488]
