"""One SIP call on our UAS: its dialog state, its RTP receivers and its sink.

The call pushes frames into the pipeline's sink as RTP arrives; the server polls it every
``POLL_INTERVAL`` (one timer for all calls) to release packets whose gap waited long enough and
to notice RTP that stopped for ``rtp_timeout`` (a BYE that never came). While the far end holds
the call (a re-offer with ``a=inactive``/``recvonly``, ``sendonly`` after ``sendrecv``, or
``c=0.0.0.0``) no RTP is due, so that check pauses and restarts from the un-hold. The same poll
ends a call whose RFC 4028 session timer ran out (see :mod:`telephony.sip.session_timer`), held or
not, or whose session refresh got 481. The call also remembers the 2xx to an INVITE still waiting
for its ACK, so an overlapping re-INVITE or UPDATE offer gets 491 (see :meth:`SipCall.overlapping`).
It is also the pipeline's :class:`~voice.transport.CallOutput`: RTP carries nothing back, so
``send`` drops frames, and ``hang_up`` makes the server send BYE.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from telephony.settings import TelephonySettings
from telephony.sip.channel import UNSPECIFIED_ADDRESSES, SipChannel
from telephony.sip.mapping import CallPlan
from telephony.sip.media import ReceiverStats, RtpReceiver, RtpStreamDecoder, open_receiver
from telephony.sip.message import SipMessage, parse_name_addr, split_header_values, via_branch
from telephony.sip.sdp import MediaChoice
from telephony.sip.session_timer import (
    DIALOG_GONE,
    REFRESH_FAILED,
    SESSION_EXPIRED,
    SessionTimer,
    answered_timer,
    raised_interval,
    retry_delay,
)
from telephony.sip.transactions import T1
from voice.frames import CallEndedFrame, CallStartedFrame, Frame
from voice.transport import CallSink

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.02
MAX_REFRESH_RETRIES = 2
"""Retries of one session refresh answered 491, 5xx or 422: an overloaded SBC is not flooded."""


@dataclass
class CallReport:
    """What a finished call saw, kept by the server for operators and tests."""

    call_id: str
    sip_call_id: str
    reason: str
    legs: dict[str, ReceiverStats] = field(default_factory=dict)


class SipCall:
    """Dialog and media of one accepted INVITE."""

    def __init__(
        self,
        invite: SipMessage,
        channel: SipChannel,
        plan: CallPlan,
        choices: list[MediaChoice],
        settings: TelephonySettings,
        on_hang_up: Callable[[SipCall, str], None],
    ) -> None:
        self.call_id = f"sip-{uuid.uuid4().hex[:16]}"
        self.invite = invite
        self.channel = channel
        """Where our BYE and UPDATE go: the channel of the dialog's latest request from the far end."""
        self.invite_channel = channel
        """Where the responses to the initial INVITE go (its server transaction's channel)."""
        self.plan = plan
        self.choices = choices
        self.settings = settings
        self.local_tag = uuid.uuid4().hex[:10]
        self.invite_branch = via_branch(invite.get("Via") or "")
        self.state = "early"  # early -> answered -> confirmed -> ended
        self.receivers: dict[str, RtpReceiver] = {}
        self.ports: dict[int, int] = {}
        self.sink: CallSink | None = None
        self.local_cseq = 0
        self.answer_sdp = ""
        self.sdp_session_id = 0
        """o= session id of our answers (fixed for the dialog); ``sdp_version`` counts changes."""
        self.sdp_version = 0
        self.route_set = split_header_values(invite.get_all("Record-Route"))
        """RFC 3261 12.1.1: the UAS keeps Record-Route in order as the dialog's route set."""
        self.remote_target = _contact_uri(invite)
        """Where our in-dialog requests go (the latest Contact of the far end)."""
        self.end_reason: str | None = None
        self.session_timer: SessionTimer | None = None
        """The RFC 4028 timer of the latest 2xx, ours or to our UPDATE (None: the session never expires)."""
        self._session_deadline: float | None = None
        self._refresh_at: float | None = None
        """When we send our next session refresh (only while we are the refresher), or retry one."""
        self._refresh_failed: str | None = None
        """Why our refresh failed for good (481: dialog gone; 408 or no answer): the next poll ends the call."""
        self._refresh_retries = 0
        """Retries of our current refresh (reset by every 2xx that restarts the timer)."""
        self._refresh_raised = False
        """Whether our current refresh was already retried after a 422 (once per refresh, RFC 4028 7.4)."""
        self._unacked: tuple[int, bool, float] | None = None
        """(CSeq, whether it carries our offer, when sent) of a 2xx to an INVITE not ACKed yet."""
        self._initial_directions = {c.index: c.media.direction for c in choices}
        self._on_hang_up = on_hang_up
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._watch_from = 0.0
        self.on_hold = not any(self._far_end_sends(choices[leg.choice_index]) for leg in plan.legs)
        """True while no accepted m-line expects RTP from the far end (its hold or pause)."""

    @property
    def sip_call_id(self) -> str:
        """The dialog's Call-ID."""
        return self.invite.call_id

    def clock(self) -> float:
        """Seconds of call audio so far (0 when the call was answered)."""
        return self._loop.time() - self._started_at

    def started_frame(self) -> CallStartedFrame:
        """The frame that opens this call in the pipeline."""
        return CallStartedFrame(
            call_id=self.call_id,
            tenant=self.plan.tenant,
            agent_id=self.plan.agent_id,
            legs={leg.leg: leg.role for leg in self.plan.legs},
            context=dict(self.plan.context),
            source=self.plan.source,
            metadata=dict(self.plan.metadata, rtp_ports={str(k): v for k, v in self.ports.items()}),
        )

    async def open_media(self) -> None:
        """Bind one RTP receiver per accepted m-line.

        Raises:
            OSError: no free port (the server answers 503).
        """
        port_range = (self.settings.rtp_port_min, self.settings.rtp_port_max)
        try:
            for leg in self.plan.legs:
                choice = self.choices[leg.choice_index]
                decoder = RtpStreamDecoder(leg.leg, choice, self.settings.sample_rate)
                receiver = await open_receiver(
                    self.settings.sip_host,
                    port_range,
                    lambda d=decoder: RtpReceiver(
                        d,
                        self._emit,
                        self.clock,  # type: ignore[misc]
                        jitter_delay=self.settings.jitter_delay,
                    ),
                )
                receiver.remote = (choice.media.address, choice.media.port)
                self.receivers[leg.leg] = receiver
                self.ports[leg.choice_index] = receiver.port
        except OSError:
            self.close_media()
            raise

    def answered(self, sink: CallSink) -> None:
        """The 200 OK is going out: start the call clock."""
        self.sink = sink
        self.state = "answered"
        self._started_at = self._loop.time()

    def refresh_target(self, request: SipMessage) -> None:
        """An accepted re-INVITE or UPDATE (a target refresh, RFC 3261 12.2.2): its Contact, if
        any, is where our requests go from now on."""
        self.remote_target = _contact_uri(request) or self.remote_target

    def update_media(self, choices: list[MediaChoice]) -> None:
        """Apply an accepted re-offer, or the answer to ours: receivers follow their m-line, hold
        pauses the watchdog.

        New m-lines get no receiver (their answer has port 0): the pipeline's legs are fixed
        by ``CallStartedFrame``.
        """
        self.choices = choices
        for leg in self.plan.legs:
            self.receivers[leg.leg].renegotiate(choices[leg.choice_index])
        held = not any(self._far_end_sends(choices[leg.choice_index]) for leg in self.plan.legs)
        if self.on_hold and not held:
            self._watch_from = self.clock()  # silence counts again from the un-hold
        if held != self.on_hold:
            log.info("call %s %s", self.call_id, "on hold" if held else "resumed")
        self.on_hold = held

    def session_refreshed(self, timer: SessionTimer | None) -> None:
        """A 2xx to the INVITE or to a refresh (theirs or ours) with ``timer`` passed: (re)start it."""
        now = self._loop.time()
        deadline = None if timer is None else now + timer.bye_after()
        after = None if timer is None else timer.refresh_after()
        self._session_deadline, self._refresh_at = deadline, None if after is None else now + after
        self._refresh_retries, self._refresh_raised = 0, False
        self.session_timer = timer  # only now: nothing above may leave the call with a timer half set

    def refresh_answered(self, response: SipMessage) -> None:
        """The final response to our session refresh (RFC 4028 10, see :mod:`.session_timer`): a 2xx
        restarts the timer as it says; 491, a 5xx with Retry-After, or a 422 with a usable Min-SE, is
        retried when the retry still goes out before the BYE is due; 481 ends the call; anything else
        leaves it to run out."""
        status = response.status
        if status is None or self.state == "ended":
            return
        if status < 300:
            self.session_refreshed(answered_timer(response, self.session_timer, self.settings.sip_min_session_expires))
            return
        if status in (408, 481):  # RFC 4028 10: a timed-out or 481 refresh ends the session with BYE
            log.info("call %s: our session refresh got %d: ending the call", self.call_id, status)
            self._refresh_failed = DIALOG_GONE if status == 481 else REFRESH_FAILED
            return
        if status == 422 and self._retry_raised(response):
            return
        delay, now = retry_delay(response), self._loop.time()
        if delay is not None and self._may_retry(now + delay):
            self._refresh_retries += 1
            log.info("call %s: session refresh got %d: retrying in %.2f s", self.call_id, status, delay)
            self._refresh_at = now + (delay or 0.0)
        else:
            log.info("call %s: session refresh got %d: the session expires unless refreshed", self.call_id, status)

    def _may_retry(self, at: float) -> bool:
        """Whether a retry of our refresh may go out at ``at``: we are still the refresher, nothing
        refreshed the session since, the retry precedes the BYE and this refresh has retries left."""
        timer, deadline = self.session_timer, self._session_deadline
        ours = timer is not None and timer.refresher == "uas" and self._refresh_at is None
        return ours and deadline is not None and at < deadline and self._refresh_retries < MAX_REFRESH_RETRIES

    def _retry_raised(self, response: SipMessage) -> bool:
        """A 422 to our refresh: retry it at once, once per refresh, asking the 422's Min-SE (RFC 4028
        7.4); False: no retry (see :func:`.raised_interval`), the caller goes on as for any failure."""
        timer, now = self.session_timer, self._loop.time()
        if timer is None or self._refresh_raised or not self._may_retry(now):
            return False
        raised = raised_interval(response, timer)
        if raised is None:
            return False
        self._refresh_retries, self._refresh_raised = self._refresh_retries + 1, True
        log.info("call %s: session refresh got 422: retrying with Session-Expires %d", self.call_id, raised)
        # Only what our UPDATE asks changes: the interval and the BYE due stay until the retry's 2xx.
        self.session_timer = replace(timer, min_se=raised)
        self._refresh_at = now  # the next poll sends it
        return True

    def refresh_due(self) -> bool:
        """True once when we are the refresher and half the interval has passed (RFC 4028 10)."""
        if self._refresh_at is None or self._loop.time() < self._refresh_at:
            return False
        self._refresh_at = None  # the next one is scheduled by the 2xx to this one
        return True

    def invite_answered(self, cseq: int, *, our_offer: bool) -> None:
        """A 2xx to INVITE ``cseq`` went out; ``our_offer``: it carries an offer, the ACK the answer."""
        self._unacked = (cseq, our_offer, self._loop.time())

    def awaits_answer(self, cseq: int) -> bool:
        """Whether the 2xx to INVITE ``cseq`` carried our offer, unanswered so far: its ACK has
        the answer (RFC 3261 13.2.1)."""
        return self._unacked is not None and self._unacked[:2] == (cseq, True)

    def acked(self, cseq: int) -> None:
        """The ACK for INVITE ``cseq`` came (a stale ACK of an older one changes nothing)."""
        if self._unacked is not None and self._unacked[0] == cseq:
            self._unacked = None

    def overlapping(self, method: str, has_offer: bool) -> bool:
        """Whether a re-INVITE or UPDATE must get 491 Request Pending now.

        A re-INVITE while the 2xx of an earlier INVITE waits for its ACK: that INVITE is still in
        progress, which RFC 3261 14.1 forbids the UAC; as in the glare case of 14.2 it gets 491 and
        the UAC retries after 2.1 to 4 s, by when the ACK has come. An UPDATE with an offer while our own offer
        (in the 2xx to an offerless re-INVITE) has no answer yet (RFC 3311 5.2); after a 2xx that
        answered, the exchange is complete and an UPDATE offer is fine. A 2xx unacknowledged past
        Timer H blocks nothing, as its retransmissions stopped too.
        """
        if self._unacked is None:
            return False
        _, our_offer, sent_at = self._unacked
        if self._loop.time() - sent_at > 64 * T1:
            self._unacked = None
            return False
        return method == "INVITE" or (has_offer and our_offer)

    def _far_end_sends(self, choice: MediaChoice) -> bool:
        """Whether the far end is expected to send RTP on this m-line now."""
        media = choice.media
        if not choice.accepted or media.address in UNSPECIFIED_ADDRESSES:
            return False  # stream rejected, or RFC 2543 hold (c=0.0.0.0)
        if media.direction in ("inactive", "recvonly"):
            return False
        # sendonly after a sendrecv offer is the RFC 3264 8.4 hold: music on hold, if any,
        # may be silence-suppressed. A stream offered sendonly from the start (SIPREC) is live.
        initial = self._initial_directions.get(choice.index, "sendrecv")
        return not (media.direction == "sendonly" and initial == "sendrecv")

    def attach_late_sink(self, sink: CallSink) -> None:
        """The pipeline opened a call that ended meanwhile (CANCEL): end and close it at once."""
        if self.sink is not None:
            return
        self.sink = sink
        reason = self.end_reason or "cancelled"
        sink.push(CallEndedFrame(call_id=self.call_id, reason=reason, audio_time=0.0))
        sink.close(reason)

    def finish(self, reason: str) -> CallReport:
        """Flush media, push ``CallEndedFrame``, close the sink; idempotent."""
        report = CallReport(self.call_id, self.sip_call_id, reason)
        if self.state == "ended":
            return report
        self.state = "ended"
        self.end_reason = reason
        frames: list[Frame] = []
        for leg, receiver in self.receivers.items():
            frames += receiver.finish()
            report.legs[leg] = receiver.stats
        if self.sink is not None:
            frames.append(
                CallEndedFrame(
                    call_id=self.call_id, reason=reason, audio_time=max(self.clock(), 0.0)
                )
            )
            self._emit(frames)
            self.sink.close(reason)
        return report

    def close_media(self) -> None:
        """Close the RTP sockets without flushing (call refused before it started)."""
        for receiver in self.receivers.values():
            if receiver.transport is not None:
                receiver.transport.close()

    # --- CallOutput ---

    def send(self, frame: Frame) -> None:
        """RTP carries nothing back to the SRC: dropped."""

    def hang_up(self, reason: str) -> None:
        """End the call from the pipeline: BYE to the peer, then finish."""
        if self.state != "ended":
            self._on_hang_up(self, reason)

    # --- internals ---

    def _emit(self, frames: list[Frame]) -> None:
        if self.sink is None:
            return  # RTP before the pipeline accepted the call
        for frame in frames:
            self.sink.push(frame)

    def poll(self) -> str | None:
        """Release held packets whose wait is over; the reason to end the call, if any."""
        for receiver in self.receivers.values():
            receiver.poll()
        if self._refresh_failed is not None:
            return self._refresh_failed
        if self._session_deadline is not None and self._loop.time() >= self._session_deadline:
            log.info("call %s: no session refresh in time (RFC 4028): hanging up", self.call_id)
            return SESSION_EXPIRED  # checked before hold: SBCs refresh held calls too
        if self.on_hold:
            return None  # no RTP is due while the far end holds the call (hours, sometimes)
        latest = max((r.last_packet_at for r in self.receivers.values()), default=0.0)
        if self.clock() - max(latest, self._watch_from, 0.0) > self.settings.rtp_timeout:
            return "rtp timeout"
        return None


def _contact_uri(message: SipMessage) -> str:
    """The URI of the first Contact (empty when there is none)."""
    contact = split_header_values(message.get_all("Contact"))
    return parse_name_addr(contact[0]).uri if contact else ""
