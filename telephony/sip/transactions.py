"""SIP transaction timers our UAS runs itself (RFC 3261 17): the 2xx to an INVITE until its ACK,
and the non-INVITE client transaction of the BYEs (and session-refresh UPDATEs) we send.

2xx to INVITE and re-INVITE (RFC 3261 13.3.1.4): the transaction layer of a UAS forgets an
INVITE once it sent a 2xx, so the UAS core re-sends the 2xx over UDP with T1 doubling to T2 until
the ACK with the same Call-ID and CSeq number arrives or Timer H (64*T1) passes. Over TCP it is
sent once. What happens on Timer H is the caller's choice (see ``SipServer._await_ack``).

A non-2xx final response to an INVITE (RFC 3261 17.2.1, Timer G) is re-sent on the same schedule
until its ACK or Timer H. That ACK is part of the INVITE's server transaction (RFC 3261 17.2.3):
it matches by the top Via's branch (with the magic cookie ``z9hG4bK``) and sent-by, so two INVITEs
that share Call-ID and CSeq but not the branch (a merged fork, a reused Call-ID) keep separate
timers, and the ACK to a 2xx (a transaction of its own, new branch) stops none of them. A branch
without the cookie (an RFC 2543 peer) is keyed by Call-ID and CSeq number as before: the RFC 2543
matching rules (Request-URI, tags, whole Via) are not implemented.

Our BYE (RFC 3261 17.1.2, non-INVITE client transaction): over UDP re-sent with Timer E (T1
doubling to T2; T2 once a provisional response came) until a final response or Timer F
(64*T1); over TCP sent once. Responses match by top Via branch, Call-ID and CSeq. After the final
response a UDP transaction stays Completed for Timer K (T4) and absorbs the far end's retransmitted
copies of it, which would otherwise be counted and logged as stray. The call's pipeline has ended
before any of this: only the transaction lives on in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

from telephony.errors import SipParseError
from telephony.sip.channel import SipChannel
from telephony.sip.message import SipMessage, response_to, via_branch

log = logging.getLogger(__name__)
T1, T2, T4 = 0.5, 4.0, 5.0
"""RFC 3261 timer values (seconds): RTT estimate, the longest retransmit interval, and the longest a
message stays in the network (Timer K, over UDP).

Timers H and F are 64*T1 and are computed from T1 when used, so a test that lowers T1 gets them
shorter too."""

TransactionKey = tuple[str, str, int, str]
"""(top Via branch, Call-ID, CSeq number, CSeq method) of one client transaction."""
MAGIC_COOKIE = "z9hG4bK"
"""How an RFC 3261 branch starts (RFC 3261 8.1.1.7): unique per transaction, so it can key one."""
InviteKey = tuple[str, str, str]
"""(branch, sent-by, "INVITE") of one INVITE server transaction (RFC 3261 17.2.3), or
("", Call-ID, CSeq number) for a branch without the magic cookie."""


def invite_transaction_key(message: SipMessage) -> InviteKey:
    """The INVITE server transaction an INVITE or its ACK belongs to (RFC 3261 17.2.3: the ACK to
    a non-2xx response has the INVITE's top Via; ACK matches the INVITE's transaction).

    Raises:
        SipParseError: a malformed CSeq (only needed without the magic cookie).
    """
    top_via = (message.get("Via") or "").split(",", 1)[0]
    branch = via_branch(top_via)
    if branch.startswith(MAGIC_COOKIE):
        sent_by = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+([^;]*)", top_via, re.IGNORECASE)
        return branch, re.sub(r"\s+", "", sent_by.group(1)).lower() if sent_by else "", "INVITE"
    return "", message.call_id, str(message.cseq[0])


class AckTimers:
    """Retransmits final responses to INVITEs over UDP until their ACK: 2xx keyed by (Call-ID,
    CSeq number) (RFC 3261 13.3.1.4), non-2xx by :func:`invite_transaction_key` (Timer G)."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, asyncio.Event] = {}

    def expect(self, key: Hashable) -> None:
        """Start waiting for the ACK matching ``key``; call before the response goes out."""
        self._waiting[key] = asyncio.Event()

    def ack(self, key: Hashable) -> bool:
        """An ACK arrived: stop re-sending the matching response; False when none is pending."""
        event = self._waiting.get(key)
        if event is not None:
            event.set()
        return event is not None

    async def retransmit(
        self,
        channel: SipChannel,
        response: bytes,
        key: Hashable,
        alive: Callable[[], bool],
    ) -> bool:
        """Re-send ``response`` until its ACK or until ``alive()`` turns false.

        Returns:
            False when Timer H passed without an ACK while the call was still alive.
        """
        acked = self._waiting.setdefault(key, asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 64 * T1  # Timer H, on the clock: a busy loop must not stretch it
        interval = T1  # Timer G
        try:
            while (remaining := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(acked.wait(), min(interval, remaining))
                if acked.is_set() or not alive():
                    return True
                if loop.time() >= deadline:
                    break
                channel.send(response)
                interval = min(interval * 2, T2)
            return False
        finally:
            if self._waiting.get(key) is acked:
                del self._waiting[key]

    def reject(self, channel: SipChannel, response: bytes, invite: SipMessage) -> Coroutine[Any, Any, None]:
        """Timer G: wait for the ACK of ``invite``'s transaction now; the coroutine re-sends the
        non-2xx ``response`` until that ACK (see :meth:`ack_rejection`) or Timer H."""
        key = invite_transaction_key(invite)
        self.expect(key)  # before an ACK can arrive
        return self._resend_until_ack(channel, response, key)

    def ack_rejection(self, ack: SipMessage) -> bool:
        """An ACK: stop Timer G of its INVITE transaction; True when it matched one by branch (the
        transaction absorbs it, RFC 3261 17.2.1). An ACK without the magic cookie may be the
        ACK of a 2xx with the same Call-ID and CSeq, so it is passed on as before (False)."""
        try:
            key = invite_transaction_key(ack)
        except SipParseError:
            return False
        return self.ack(key) and bool(key[0])

    async def _resend_until_ack(self, channel: SipChannel, response: bytes, key: InviteKey) -> None:
        if not await self.retransmit(channel, response, key, lambda: True):
            log.info("no ACK for our final response to INVITE transaction %s within Timer H", key)


@dataclass
class _ClientTransaction:
    request: SipMessage
    channel: SipChannel
    done: asyncio.Event = field(default_factory=asyncio.Event)
    proceeding: bool = False
    """A provisional response came: retransmit every T2 from now on (RFC 3261 17.1.2.2)."""
    on_final: Callable[[SipMessage], None] | None = None
    """Told the first final response (retransmitted copies are absorbed, not told)."""


class ClientTransactions:
    """Non-INVITE client transactions for the requests we send (BYE, UPDATE)."""

    def __init__(self) -> None:
        self._open: dict[TransactionKey, _ClientTransaction] = {}
        self._tasks: dict[asyncio.Task[None], _ClientTransaction] = {}
        """Running transactions (Completed ones included, until Timer K)."""

    def __len__(self) -> int:
        return len(self._open)

    def send(
        self, request: SipMessage, channel: SipChannel, on_final: Callable[[SipMessage], None] | None = None
    ) -> None:
        """Send ``request`` now and run its transaction in the background; ``on_final`` is told its
        final response, or a 408 made here when Timer F passes without one."""
        cseq, method = request.cseq
        key = (via_branch(request.get("Via") or ""), request.call_id, cseq, method)
        transaction = _ClientTransaction(request, channel, on_final=on_final)
        self._open[key] = transaction
        channel.send(request.to_bytes())
        task = asyncio.create_task(self._run(key, transaction))
        self._tasks[task] = transaction
        task.add_done_callback(self._tasks.pop)

    def on_response(self, response: SipMessage) -> bool:
        """Hand a response to its transaction; False when none matches (unsolicited)."""
        try:
            cseq, method = response.cseq
        except SipParseError:
            return False
        key = (via_branch(response.get("Via") or ""), response.call_id, cseq, method)
        transaction = self._open.get(key)
        if transaction is None or response.status is None:
            return False
        if response.status >= 200:
            if transaction.on_final is not None and not transaction.done.is_set():
                transaction.on_final(response)
            transaction.done.set()
        else:
            transaction.proceeding = True
        return True

    async def settle(self, grace: float) -> None:
        """Give unanswered transactions that may still retransmit (UDP) up to ``grace`` s, then end
        all (answered ones only wait out Timer K, which shutdown need not)."""
        waits = [asyncio.ensure_future(_answered_or_over(task, transaction))
                 for task, transaction in self._tasks.items()
                 if transaction.channel.transport == "udp" and not transaction.done.is_set()]
        if waits and grace > 0:
            await asyncio.wait(waits, timeout=grace)
        for task in [*waits, *self._tasks]:
            task.cancel()

    async def _run(self, key: TransactionKey, transaction: _ClientTransaction) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 64 * T1  # Timer F
        reliable = transaction.channel.transport != "udp"
        interval = T1  # Timer E
        data = transaction.request.to_bytes()
        try:
            while (remaining := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    wait = remaining if reliable else min(interval, remaining)
                    await asyncio.wait_for(transaction.done.wait(), wait)
                if transaction.done.is_set():
                    if not reliable:
                        await asyncio.sleep(T4)  # Timer K: absorb retransmitted final responses
                    return
                if not reliable and loop.time() < deadline:
                    transaction.channel.send(data)
                    interval = T2 if transaction.proceeding else min(interval * 2, T2)
            log.warning(
                "no final response to our %s for %s within %.1f s (Timer F)",
                key[3],
                key[1],
                64 * T1,
            )
            if transaction.on_final is not None:  # a timeout is a 408 to the caller (RFC 3261 8.1.3.1)
                transaction.on_final(response_to(transaction.request, 408, "Request Timeout"))
        finally:
            self._open.pop(key, None)


async def _answered_or_over(task: asyncio.Task[None], transaction: _ClientTransaction) -> None:
    """Until the transaction has its final response or has ended (Timer F, cancelled)."""
    answered = asyncio.ensure_future(transaction.done.wait())
    try:
        await asyncio.wait({task, answered}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        answered.cancel()
