"""Non-2xx final responses to an INVITE over UDP are re-sent until their ACK (RFC 3261 17.2.1,
Timer G: T1 doubling to T2, up to Timer H = 64*T1); over TCP they are sent once.

The ACK stops only the timer of its own INVITE transaction (RFC 3261 17.2.3: top Via branch and
sent-by), not every response with the same Call-ID and CSeq.

T1 is lowered to 20 ms (T2 80 ms, Timer H 1.28 s) so the schedule plays out in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from telephony.sip import transactions
from telephony.sip.message import SipMessage, tag_of, via_branch
from tests.telephony.sip_peer import G729_OFFER, PCMU_OFFER, SipPeer, drain, sip_server

pytestmark = pytest.mark.e2e
T1, T2 = 0.02, 0.08
TIMER_H = 64 * T1
SLACK = 0.5
"""How late (s) a 488 sent before Timer H may still reach the peer when the event loop shares a
loaded core (CI: a 2-core runner; at 3 busy loops on the test's core sends arrive tens of ms late).
Generous on purpose: the tests check that the retransmissions stop, not how punctually."""


@pytest.fixture(autouse=True)
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "T1", T1)
    monkeypatch.setattr(transactions, "T2", T2)


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def settle(peer: SipPeer) -> None:
    """Let a send already scheduled arrive, then forget everything received so far.

    What was sent before the ACK got in is forgotten whatever the load: the ACK is read in the
    loop's next turn, long before the sleep ends, so anything received later was sent after it."""
    await asyncio.sleep(0.05)
    while not peer.responses.empty():
        peer.responses.get_nowait()


def test_488_is_resent_until_its_ack_then_stops() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=G729_OFFER.format(port=7000))
            before = await drain(peer, 0.35)  # sent at 0, 20, 60, 140, 220 and 300 ms
            peer.request("ACK", branch=branch, to_tag=tag_of(before[-1].get("To") or ""))
            await settle(peer)  # a send already scheduled may still be in flight
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
            await settle(peer)
            return terminated, await drain(peer, 0.3)

    terminated, after = run(scenario())
    assert len(terminated) >= 2 and {r.get("CSeq") for r in terminated} == {"1 INVITE"}
    assert after == []


async def arrivals(peer: SipPeer, seconds: float) -> list[tuple[float, SipMessage]]:
    """Every response that arrives within ``seconds``, with the loop time it was read at."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, SipMessage]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                response = await peer.responses.get()
                seen.append((loop.time(), response))
    return seen


def test_488_without_ack_stops_at_timer_h() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            sent = asyncio.get_running_loop().time()
            peer.request("INVITE", body=G729_OFFER.format(port=7000))
            # Listen well past Timer H plus the slack: a late retransmission must be seen to fail.
            return [(at - sent, r) for at, r in await arrivals(peer, TIMER_H + SLACK + 0.3)]

    rejections = [at for at, r in run(scenario()) if r.status == 488]
    # Re-sent (at 20, 60, 140 ms, then every 80 ms), and still being re-sent late in Timer H.
    assert len(rejections) >= 3 and rejections[-1] > TIMER_H / 2
    assert rejections[-1] <= TIMER_H + SLACK  # none after Timer H


class BusyChannel:
    """A UDP channel whose every send holds the event loop for ``BUSY`` s, as a loaded core
    does: it records the loop time of each send."""

    BUSY = 0.05
    transport, peer = "udp", ("127.0.0.1", 5060)

    def __init__(self) -> None:
        self.sent_at: list[float] = []

    def send(self, data: bytes) -> None:
        self.sent_at.append(asyncio.get_running_loop().time())
        time.sleep(self.BUSY)  # blocks the loop on purpose: the condition under test

    def local_host(self) -> str:
        return "127.0.0.1"


def test_timer_h_is_a_deadline_that_a_busy_loop_does_not_stretch() -> None:
    """Timer H counts time on the clock, not the nominal intervals waited: ~17 sends that each
    hold the loop 50 ms would push a sum of intervals about 0.85 s past Timer H."""

    async def scenario():
        channel = BusyChannel()
        started = asyncio.get_running_loop().time()
        acked = await transactions.AckTimers().retransmit(channel, b"488", "key", lambda: True)
        return acked, [at - started for at in channel.sent_at]

    acked, sent_at = run(scenario())
    assert acked is False  # Timer H passed without an ACK
    assert len(sent_at) >= 3
    # Every send was decided before Timer H; BUSY allows for the decision and the recording of
    # the last one being split by a preemption.
    assert max(sent_at) < TIMER_H + BusyChannel.BUSY


def test_488_over_tcp_is_sent_once() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["tcp"], "tcp") as peer:
            peer.request("INVITE", body=G729_OFFER.format(port=7000))
            return await drain(peer, 0.3)

    assert [r.status for r in run(scenario())] == [100, 488]


# --- one Timer G per INVITE transaction (RFC 3261 17.2.3), not per Call-ID and CSeq ------------


def branch_of(response: SipMessage) -> str:
    return via_branch(response.get("Via") or "")


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
