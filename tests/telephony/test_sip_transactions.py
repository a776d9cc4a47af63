"""SIP transaction timers against a scripted peer on 127.0.0.1: the 2xx to a re-INVITE until its
ACK, our BYE until its final response (UDP) or once (TCP), stop() grace, TCP idle timeout.

T1 is lowered to 20 ms (T2 80 ms, Timers H and F 1.28 s) so the retransmission schedule plays
out in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from telephony.settings import TelephonySettings
from telephony.sip import SipServer, transactions
from telephony.sip.message import SipMessage, response_to, via_branch
from tests.telephony.fakes import CollectingHandler
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server

pytestmark = pytest.mark.e2e
HOLD = PCMU_OFFER.replace("a=sendrecv", "a=inactive")
T1, T2 = 0.02, 0.08
TIMER_H = 64 * T1
SLACK = 0.5
"""How late (s) a timer may fire, or a message sent on time arrive, when the event loop shares a
loaded core (CI: a 2-core runner; at 3 busy loops on the test's core it is tens of ms). Generous on
purpose: these tests check what the timers do and in what order, not how punctually."""


@pytest.fixture(autouse=True)
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "T1", T1)
    monkeypatch.setattr(transactions, "T2", T2)


def run(coroutine, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def drain(queue: asyncio.Queue[SipMessage], seconds: float) -> list[SipMessage]:
    """Every message that arrives on ``queue`` within ``seconds``."""
    seen: list[SipMessage] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                seen.append(await queue.get())
    return seen


async def settle(queue: asyncio.Queue[SipMessage]) -> None:
    """Let a send already scheduled arrive, then forget everything received so far.

    What was sent before our ACK or 200 got in is forgotten whatever the load: that message is
    read in the loop's next turn, long before the sleep ends, so anything received later was sent
    after it."""
    await asyncio.sleep(0.05)
    while not queue.empty():
        queue.get_nowait()


async def arrivals(queue: asyncio.Queue[SipMessage], seconds: float) -> list[tuple[float, SipMessage]]:
    """Every message that arrives on ``queue`` within ``seconds``, with the loop time it was read at."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, SipMessage]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                message = await queue.get()
                seen.append((loop.time(), message))
    return seen


def ok_to(request: SipMessage, *, branch: str | None = None) -> bytes:
    """The far end's 200 to one of our requests (optionally with a Via branch of no request)."""
    response = response_to(request, 200, "OK")
    if branch is not None:
        via = request.get("Via") or ""
        response.set("Via", via.replace(via_branch(via), branch))
    return response.to_bytes()


# --- 2xx to a re-INVITE (RFC 3261 13.3.1.4) ---------------------------------------------------


def test_reinvite_200_is_retransmitted_until_its_ack_then_stops() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            await settle(peer.responses)  # 200s re-sent before our ACK got in
            after_first_ack = await drain(peer.responses, 0.2)
            branch = peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            before_ack = await drain(peer.responses, 0.35)
            # A retransmitted re-INVITE is answered from the transaction, not negotiated again.
            peer.request("INVITE", cseq=2, body=HOLD.format(port=7000), branch=branch)
            repeated = await peer.response(200)
            peer.request("ACK", cseq=2)
            await settle(peer.responses)  # a send already scheduled may still be in flight
            after_ack = await drain(peer.responses, 0.4)
            return after_first_ack, before_ack, repeated, after_ack, server.stats.requests

    after_first_ack, before_ack, repeated, after_ack, requests = run(scenario())
    assert after_first_ack == []
    # Sends at 0, 20, 60, 140 and 300 ms: at least the first 200 and two retransmissions.
    assert len(before_ack) >= 3
    assert {(r.status, r.get("CSeq")) for r in before_ack} == {(200, "2 INVITE")}
    assert len({r.to_bytes() for r in [*before_ack, repeated]}) == 1  # the very same 200
    assert requests["INVITE"] == 2
    assert after_ack == []


def test_reinvite_without_ack_stops_at_timer_h_and_keeps_the_call() -> None:
    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            sent = asyncio.get_running_loop().time()
            peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            # Listen well past Timer H plus the slack: a late retransmission must be seen to fail.
            oks = [(at - sent, r) for at, r in await arrivals(peer.responses, TIMER_H + SLACK + 0.3)]
            byes = await drain(peer.requests, 0.05)
            return oks, byes, list(server.calls), handler.calls[0].closed_reason

    oks, byes, calls, closed_reason = run(scenario())
    assert {r.get("CSeq") for _, r in oks} == {"2 INVITE"}
    # Re-sent (at 20, 60, 140 ms, then every 80 ms), and still being re-sent late in Timer H.
    assert len(oks) >= 3 and oks[-1][0] > TIMER_H / 2
    assert oks[-1][0] <= TIMER_H + SLACK  # none after Timer H
    assert byes == [] and calls and closed_reason is None  # logged, the call is kept


# --- our BYE: non-INVITE client transaction (RFC 3261 17.1.2) ---------------------------------


def test_udp_bye_is_retransmitted_until_its_200_and_the_pipeline_ends_at_once() -> None:
    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            (call,) = handler.calls
            call.output.hang_up("agent")
            ended_at_once = call.closed_reason
            byes = [await asyncio.wait_for(peer.requests.get(), 1.0)]
            byes += await drain(peer.requests, 0.2)
            peer.send_raw(ok_to(byes[0], branch="z9hG4bKnot-ours"))  # matches nothing
            after_stray = await drain(peer.requests, 0.25)
            peer.send_raw(ok_to(byes[0]))
            await settle(peer.requests)
            after_ok = await drain(peer.requests, 0.4)
            return ended_at_once, byes, after_stray, after_ok, server.stats.stray_responses

    ended_at_once, byes, after_stray, after_ok, stray = run(scenario())
    assert ended_at_once == "agent"  # the transaction does not hold the call open
    assert len(byes) >= 3 and len({b.to_bytes() for b in byes}) == 1  # same branch and CSeq
    assert after_stray and stray == 1  # an unmatched 200 does not end the transaction
    assert after_ok == []


def test_udp_bye_absorbs_retransmitted_200s_for_timer_k_then_forgets_the_transaction(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "T4", 0.3)

    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            handler.calls[0].output.hang_up("agent")
            bye = await asyncio.wait_for(peer.requests.get(), 1.0)
            peer.send_raw(ok_to(bye))
            await asyncio.sleep(0.1)
            peer.send_raw(ok_to(bye))  # our 200 was lost for the far end: it sends it again
            await asyncio.sleep(0.1)
            absorbed = server.stats.stray_responses
            await asyncio.sleep(0.3)  # Timer K has passed: the transaction is gone
            peer.send_raw(ok_to(bye))
            await asyncio.sleep(0.1)
            return absorbed, server.stats.stray_responses, await drain(peer.requests, 0.1)

    absorbed, after_timer_k, resent = run(scenario())
    assert absorbed == 0  # the copy belongs to the Completed transaction
    assert after_timer_k == 1
    assert resent == []  # and no BYE was re-sent after the first 200


def test_tcp_bye_is_sent_once_and_only_its_own_200_is_matched() -> None:
    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["tcp"], "tcp") as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            handler.calls[0].output.hang_up("agent")
            bye = await asyncio.wait_for(peer.requests.get(), 1.0)
            repeats = await drain(peer.requests, 0.4)  # spans five Timer E periods
            peer.send_raw(ok_to(bye, branch="z9hG4bKnot-ours"))
            peer.send_raw(ok_to(bye))
            await asyncio.sleep(0.1)
            return bye, repeats, server.stats.stray_responses

    bye, repeats, stray = run(scenario())
    assert bye.method == "BYE" and "SIP/2.0/TCP" in (bye.get("Via") or "")
    assert repeats == [] and stray == 1  # the wrong branch is stray, ours is not


def test_stop_waits_briefly_for_our_shutdown_byes_and_not_once_they_are_answered() -> None:
    async def answer_byes(peer: SipPeer) -> None:
        while True:
            peer.send_raw(ok_to(await peer.requests.get()))

    async def stop_timed(answered: bool, grace: float) -> tuple[float, list[SipMessage]]:
        server = SipServer(CollectingHandler(), TelephonySettings(sip_port=0, rtp_port_min=0, rtp_port_max=0))
        await server.start()
        async with SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            answering = asyncio.create_task(answer_byes(peer)) if answered else None
            started = asyncio.get_running_loop().time()
            await server.stop(grace=grace)
            took = asyncio.get_running_loop().time() - started
            if answering is not None:
                answering.cancel()
            return took, await drain(peer.requests, 0.1)

    async def scenario():
        return await stop_timed(answered=False, grace=0.5), await stop_timed(answered=True, grace=2.0)

    (waited, unanswered), (answered_in, _) = run(scenario())
    # Waited the 0.5 s grace, retransmitting meanwhile, and stopped at it rather than letting the
    # transactions run on to Timer F (1.28 s here, 0.78 s of slack on a loaded core).
    assert 0.45 <= waited < TIMER_H and len(unanswered) >= 3
    # The 200s ended the wait: a localhost round trip, well before half of a 2 s grace.
    assert answered_in < 1.0


# --- TCP idle timeout -------------------------------------------------------------------------


def test_idle_tcp_connection_is_closed_but_one_carrying_a_call_is_not() -> None:
    async def scenario():
        async with (
            sip_server(sip_tcp_idle_timeout=0.3) as (server, _),
            SipPeer(server.ports["tcp"], "tcp") as idle,
            SipPeer(server.ports["tcp"], "tcp") as busy,
        ):
            await busy.invite(PCMU_OFFER.format(port=7000))
            idle.request("OPTIONS")
            await idle.response(200)
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(idle.closed.wait(), 5.0)  # closed: no hang (generous bound)
            idled = asyncio.get_running_loop().time() - started
            await asyncio.sleep(0.5)  # the call's connection is now idle for more than 0.3 s
            busy.request("OPTIONS", cseq=9)
            still_answered = await busy.response(200)
            return idled, busy.closed.is_set(), still_answered, list(server.calls)

    idled, busy_closed, still_answered, calls = run(scenario())
    assert idled >= 0.25  # not before its 0.3 s idle timeout (from the last message, just before)
    assert not busy_closed and still_answered.get("CSeq") == "9 OPTIONS" and calls


def test_a_session_refresh_left_unanswered_ends_the_call_at_timer_f_like_a_408() -> None:
    """RFC 4028 10: a refresh whose transaction times out ends the session with BYE. Interval
    12 s: our UPDATE at 6 s, Timer F (64 x T1, 1.28 s here) at about 7.3 s, expiry at 8 s."""
    from telephony.sip.session_timer import REFRESH_FAILED

    async def scenario():
        async with sip_server(sip_min_session_expires=1) as (server, _), SipPeer(server.ports["udp"]) as peer:
            timer = {"Session-Expires": "12;refresher=uas", "Supported": "timer", "Allow": "INVITE, ACK, BYE, UPDATE"}
            await peer.invite(PCMU_OFFER.format(port=7000), headers=timer)
            loop = asyncio.get_running_loop()
            answered_at, seen = loop.time(), []
            while not any(request.method == "BYE" for _, request in seen) and loop.time() - answered_at < 9:
                with contextlib.suppress(TimeoutError):
                    request = await asyncio.wait_for(peer.requests.get(), 0.5)
                    seen.append((loop.time() - answered_at, request))  # UPDATEs go unanswered
            return seen, [report.reason for report in server.reports]

    seen, reasons = run(scenario())
    updates = [at for at, request in seen if request.method == "UPDATE"]
    byes = [at for at, request in seen if request.method == "BYE"]
    # The refresh at half the interval (6 s; on a loaded core up to SLACK late), retransmitted over UDP.
    assert updates and 5.8 < updates[0] < 6 + SLACK and len(updates) >= 3
    # The BYE after Timer F of the UPDATE, for the failed refresh: the reason tells it from the
    # 8 s expiry (SESSION_EXPIRED), so no upper bound on the wall clock is needed.
    assert len(byes) == 1 and byes[0] > 7.0 and reasons == [REFRESH_FAILED]
