"""Non-2xx final responses to an INVITE over UDP are re-sent until their ACK (RFC 3261 17.2.1,
Timer G: T1 doubling to T2, up to Timer H = 64*T1); over TCP they are sent once.

The ACK stops only the timer of its own INVITE transaction (RFC 3261 17.2.3: top Via branch and
sent-by), not every response with the same Call-ID and CSeq.

T1 is lowered to 20 ms (T2 80 ms, Timer H 1.28 s) so the schedule plays out in well under a second.
"""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip import transactions
from telephony.sip.message import SipMessage, tag_of, via_branch
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


# --- one Timer G per INVITE transaction (RFC 3261 17.2.3), not per Call-ID and CSeq ------------


def branch_of(response: SipMessage) -> str:
    return via_branch(response.get("Via") or "")


async def settle(peer: SipPeer) -> None:
    """Let a send already scheduled arrive, then forget everything received so far."""
    await asyncio.sleep(0.05)
    while not peer.responses.empty():
        peer.responses.get_nowait()


def test_two_invites_differing_only_by_branch_have_their_own_timer_g() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            first = peer.request("INVITE", body=G729_OFFER.format(port=7000))
            await asyncio.sleep(0.03)  # the first 488's timer is running
            second = peer.request("INVITE", body=G729_OFFER.format(port=7000))  # same Call-ID, CSeq
            both = await drain(peer, 0.25)
            tags = {branch_of(r): tag_of(r.get("To") or "") for r in both if r.status == 488}
            peer.request("ACK", branch=first, to_tag=tags[first])
            await settle(peer)
            after_first_ack = await drain(peer, 0.35)
            peer.request("ACK", branch=second, to_tag=tags[second])
            await settle(peer)
            return first, second, both, after_first_ack, await drain(peer, 0.35)

    first, second, both, after_first_ack, after_both = run(scenario())
    assert {branch_of(r) for r in both if r.status == 488} == {first, second}
    # The ACK of the first INVITE stopped its 488 only: the second's is still re-sent.
    assert after_first_ack and {(r.status, branch_of(r)) for r in after_first_ack} == {(488, second)}
    assert after_both == []


def test_the_ack_of_a_2xx_does_not_stop_timer_g_of_a_merged_fork() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            ok = await peer.response(200)
            # The same INVITE reaching us again through a forking proxy: another branch, 482.
            forked = peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            await peer.response(482)
            peer.request("ACK", to_tag=tag_of(ok.get("To") or ""))  # the 2xx's ACK: a new branch
            await settle(peer)
            return forked, await drain(peer, 0.3)

    forked, after_2xx_ack = run(scenario())
    assert after_2xx_ack and {(r.status, branch_of(r)) for r in after_2xx_ack} == {(482, forked)}
