"""An asyncio SIP UAS and SIPREC SRS on UDP and TCP.

Scope (what contact-center SRCs and trunks send a recorder): INVITE (new and re-INVITE), ACK,
BYE, CANCEL, OPTIONS, INFO (DTMF relay) and UPDATE; 100 Trying, optional 180 Ringing, 200 OK
with a receive-only SDP answer (``;+sip.srs`` Contact for SIPREC). Over UDP every final response
to an INVITE or re-INVITE is re-sent until its ACK, and our BYE until its final response (see
:mod:`telephony.sip.transactions`); our BYE and UPDATE go where the dialog's latest request came
from. An ACK answering the offer of our 2xx (to an offerless re-INVITE) updates the media. A
TCP connection that carries no call and sends nothing for ``sip_tcp_idle_timeout`` is closed.
Offers in re-INVITE and UPDATE are negotiated again (see :mod:`telephony.sip.dialog`), one at a
time: else 491 (see ``SipCall.overlapping``). RFC 4028 session timers (422, refreshes, BYE at
expiry): see :mod:`telephony.sip.session_timer`.
Bad input gets the RFC answer and touches no other call: 400 for a malformed request we can
still address, 415 for a body that is not SDP, 420 for an unknown required extension, 482 for a
second INVITE with a Call-ID in use, 488 when no codec or transport fits (SRTP included), 481
for a request in a dialog we do not know, 405 for other methods, 500 when our own code fails;
unreadable datagrams and malformed responses are counted and dropped (never answered).
Call set-up re-checks the call after every await: a CANCEL or BYE meanwhile wins over the 200.
Why our own rather than pjsua2: pjsua2 is a full user agent with its own media stack and audio
bridge; an SRS needs no media of its own, and the SIPREC module of PJSIP is unverified in the
only wheel that installs (see shared/notes/telephony.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from telephony.errors import ProtocolError, SipParseError, UnsupportedMediaError
from telephony.settings import TelephonySettings
from telephony.sip.call import POLL_INTERVAL, CallReport, SipCall
from telephony.sip.channel import Listeners, SipChannel, TcpChannel, bind_listeners, read_tcp_messages
from telephony.sip.dialog import (
    ACCEPT,
    apply_ack_answer,
    in_dialog_request,
    read_offer,
    read_reoffer,
    refresh_answer,
    refusal,
    session_refresh,
)
from telephony.sip.mapping import plan_call
from telephony.sip.message import (
    REQUIRED_REQUEST_HEADERS,
    SipMessage,
    option_tags,
    parse_message,
    response_to,
    salvage_headers,
    tag_of,
    via_branch,
    warning_header,
)
from telephony.sip.sdp import negotiate
from telephony.sip.session_timer import SessionTimer, negotiate_timer
from telephony.sip.transactions import AckTimers, ClientTransactions
from telephony.sip.trust import SourceFilter
from voice.errors import VoiceError
from voice.frames import DtmfFrame
from voice.transport import CallHandler

log = logging.getLogger(__name__)
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"
SUPPORTED_EXTENSIONS = {"siprec", "timer", "replaces", "norefersub"}
TRANSACTION_TTL = 32.0
STOP_GRACE = 1.0
"""Seconds ``stop()`` waits for our BYEs over UDP to be answered (two sends at T1 = 0.5 s)."""


@dataclass
class SipStats:
    """Server-wide counters (per-call media counters are in ``SipServer.reports``)."""

    requests: Counter[str] = field(default_factory=Counter)
    responses_sent: Counter[int] = field(default_factory=Counter)
    unreadable: int = 0
    """Messages dropped: no 400 could be addressed, a malformed response, or our own failure."""
    stray_rtp: int = 0
    """RTP datagrams dropped by finished calls' receivers (summed at call end)."""
    stray_responses: int = 0
    """Well-formed responses that match no request of ours (dropped)."""


class SipServer:
    """SIP listener on UDP and TCP that turns accepted calls into frames for ``handler``."""

    def __init__(self, handler: CallHandler, settings: TelephonySettings | None = None) -> None:
        self.handler = handler
        self.settings = settings or TelephonySettings()
        self.stats = SipStats()
        self.calls: dict[str, SipCall] = {}
        """Active calls by SIP Call-ID."""
        self.reports: deque[CallReport] = deque(maxlen=1000)
        self.ports: dict[str, int] = {}
        """Bound port per transport (useful with ``sip_port=0``)."""
        self._transactions: dict[tuple[str, str, str], tuple[float, bytes | None]] = {}
        self.sources = SourceFilter(self.settings.sip_trusted_sources)
        """Who may send SIP; ``sources.dropped`` counts messages and connections refused."""
        self._listeners = Listeners()
        self._tasks: set[asyncio.Task[None]] = set()
        self._acks = AckTimers()
        self._rejections = AckTimers()
        """Non-2xx final responses to INVITEs over UDP, re-sent until their ACK (Timer G)."""
        self._client = ClientTransactions()

    async def start(self) -> None:
        """Bind the configured transports (the same port on UDP and TCP when possible)."""
        listeners = await bind_listeners(self.settings.sip_host, self.settings.sip_port,
                                         self.settings.sip_transports, self.on_message, self._serve_tcp)
        self._listeners, self.ports = listeners, listeners.ports
        self._spawn(self._housekeeping())
        self._spawn(self._poll_calls())
        log.info("SIP listening on %s %s", self.settings.sip_host, self.ports)
        self.sources.warn_if_open(self.settings.sip_host)

    @property
    def address(self) -> str:
        """``host:port`` we listen on, for logs."""
        port = next(iter(self.ports.values()), self.settings.sip_port)
        return f"{self.settings.sip_host}:{port} ({'+'.join(self.ports) or 'not started'})"

    def hang_up(self) -> None:
        """Send BYE on every call and end it (reason ``shutdown``); the listeners stay open for
        the BYEs' answers and retransmissions (a server shutting down calls this first)."""
        for call in list(self.calls.values()):
            self._send_bye(call)
            self._end(call, "shutdown")

    async def stop(self, *, grace: float = STOP_GRACE) -> None:
        """End every call (see :meth:`hang_up`), wait up to ``grace`` s for our BYEs, close."""
        self.hang_up()
        await self._client.settle(grace)  # the sockets stay open for retransmits and answers
        await self._listeners.close()
        for task in list(self._tasks):
            task.cancel()

    # --- transport entry points ---

    def on_message(self, data: bytes, channel: SipChannel) -> None:
        """Handle one message from a transport; never raises."""
        if not self.sources.allows(channel.peer[0]):
            return
        try:
            self._receive(data, channel)
        except Exception:  # a bug of ours must not kill the UDP callback or a TCP trunk
            self.stats.unreadable += 1
            log.exception("SIP message from %s could not be handled", channel.peer)
            self._answer_failure(data, channel)

    def _receive(self, data: bytes, channel: SipChannel) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            message = parse_message(data)
        except SipParseError as exc:
            if data.lstrip().startswith(b"SIP/"):
                # RFC 3261 18.1.2: a malformed response is discarded, never answered.
                self.stats.unreadable += 1
                log.info("malformed SIP response from %s dropped: %s", channel.peer, exc.message)
            else:
                self._reject_malformed(exc, channel)
            return
        if not message.is_request:
            if not self._client.on_response(message):
                self.stats.stray_responses += 1
                log.info("unsolicited SIP response from %s dropped", channel.peer)
            return
        key = (via_branch(message.get("Via") or ""), message.method or "", message.call_id)
        if key[0] and message.method != "ACK" and key in self._transactions:
            cached = self._transactions[key][1]
            if cached is not None:
                channel.send(cached)  # a retransmitted request: repeat our last answer
            return
        self._transactions[key] = (time.monotonic(), None)
        self.stats.requests[message.method or "?"] += 1
        self._spawn(self._dispatch(message, channel, key))

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = TcpChannel(writer, writer.get_extra_info("peername")[:2])
        try:
            if self.sources.allows(channel.peer[0]) and not await read_tcp_messages(
                reader, channel, self.on_message, idle_timeout=self.settings.sip_tcp_idle_timeout,
                in_use=lambda used: any(call.channel is used for call in self.calls.values()),
            ):
                self.stats.unreadable += 1  # a Content-Length over the limit: connection dropped
        finally:
            writer.close()

    # --- dispatch ---

    async def _dispatch(
        self, request: SipMessage, channel: SipChannel, key: tuple[str, str, str]
    ) -> None:
        try:
            handler = {
                "INVITE": self._on_invite,
                "ACK": self._on_ack,
                "BYE": self._on_bye,
                "CANCEL": self._on_cancel,
                "OPTIONS": self._on_options,
                "INFO": self._on_info,
                "UPDATE": self._on_update,
            }.get(request.method or "")
            if handler is None:
                self._respond(
                    request, channel, 405, "Method Not Allowed", extra=(("Allow", ALLOW),)
                )
                return
            await handler(request, channel)
        except Exception:  # one bad request must never take the listener down
            log.exception("SIP %s from %s failed", request.method, channel.peer)
            cached = self._transactions.get(key, (0.0, None))[1]
            if request.method != "ACK" and (cached is None or cached.startswith(b"SIP/2.0 1")):
                self._respond(request, channel, 500, "Server Internal Error")

    async def _on_invite(self, request: SipMessage, channel: SipChannel) -> None:
        if tag_of(request.get("To") or ""):
            self._on_reinvite(request, channel)
            return
        if unsupported := ", ".join(sorted(option_tags(request, "Require") - SUPPORTED_EXTENSIONS)):
            self._respond(request, channel, 420, "Bad Extension", extra=(("Unsupported", unsupported),))
            return
        if request.call_id in self.calls:
            # A second INVITE for a Call-ID we know (a merged fork, or a reused Call-ID);
            # retransmissions never get here: on_message answers them from the transaction.
            self._respond(request, channel, 482, "Loop Detected")
            return
        self._respond(request, channel, 100, "Trying")
        try:
            offer, recording = read_offer(request)
            choices = negotiate(offer)
            timer = negotiate_timer(request, self.settings.sip_min_session_expires, None)
        except (UnsupportedMediaError, ProtocolError) as exc:
            self._refuse_offer(request, channel, exc)
            return
        call = SipCall(
            request,
            channel,
            plan_call(request, choices, recording, self.settings),
            choices,
            self.settings,
            self._hang_up,
        )
        # Reserve the Call-ID before the first await: a concurrent INVITE now gets 482, and a
        # CANCEL during set-up finds the call.
        self.calls[request.call_id] = call
        try:
            await self._set_up(call, request, channel, timer)
        except Exception:
            log.exception("setting up SIP call %s failed", request.call_id)
            self._abort(call, channel, 500, "Server Internal Error")

    async def _set_up(
        self, call: SipCall, request: SipMessage, channel: SipChannel, timer: SessionTimer | None
    ) -> None:
        # After every await the call may have been CANCELled (487 sent) or BYEd: check it.
        try:
            await call.open_media()
        except OSError:
            self._abort(call, channel, 503, "Service Unavailable", extra=(("Retry-After", "5"),))
            return
        if call.state == "ended":
            call.close_media()
            return
        try:
            sink = await self.handler.open_call(call.started_frame(), call)
        except VoiceError as exc:
            self._abort(call, channel, 503, "Service Unavailable", extra=(warning_header(exc.message),))
            return
        if call.state == "ended":
            call.attach_late_sink(sink)  # the pipeline sees the call start and end at once
            return
        call.sink = sink
        if self.settings.ring_time > 0:
            self._respond(request, channel, 180, "Ringing", to_tag=call.local_tag)
            await asyncio.sleep(self.settings.ring_time)
            if call.state == "ended":
                return  # cancelled while ringing
        refresh_answer(call, self._sdp_host(channel))
        ok = self._ok_in_dialog(call, request, timer)
        call.answered(sink)
        self._send_2xx(call, channel, request, ok, initial=True)

    def _abort(
        self, call: SipCall, channel: SipChannel, status: int, reason: str, *, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Undo a call set-up that failed: free its ports and Call-ID, answer the INVITE."""
        call.close_media()
        if self.calls.get(call.sip_call_id) is call:
            del self.calls[call.sip_call_id]
        if call.state != "ended":  # else CANCEL or BYE already answered it with 487
            call.state = "ended"
            self._respond(call.invite, channel, status, reason, to_tag=call.local_tag, extra=extra)

    def _on_reinvite(self, request: SipMessage, channel: SipChannel) -> None:
        call = self._dialog_call(request, channel)
        if call is None:
            return
        if call.state == "early":
            self._retry_later(request, channel)  # RFC 3261 14.2: our first INVITE is pending
            return
        if self._request_pending(call, request, channel):
            return
        if (agreed := self._renegotiate(call, request, channel)) is not None:
            ok = self._ok_in_dialog(call, request, agreed[1])  # no offer: ours goes in the 200
            self._send_2xx(call, channel, request, ok, initial=False, offer=not agreed[0])

    async def _on_update(self, request: SipMessage, channel: SipChannel) -> None:
        call = self._dialog_call(request, channel)
        if call is None:
            return
        if call.state == "early" and request.body.strip():
            self._retry_later(request, channel)  # RFC 3311 5.2: the INVITE offer is unanswered
            return
        if self._request_pending(call, request, channel):
            return
        if (agreed := self._renegotiate(call, request, channel)) is not None:
            channel.send(self._ok_in_dialog(call, request, agreed[1], with_sdp=agreed[0]))

    def _renegotiate(
        self, call: SipCall, request: SipMessage, channel: SipChannel
    ) -> tuple[bool, SessionTimer | None] | None:
        """Answer a re-offer: (whether it had one, the timer for the 2xx to set), None when refused."""
        try:
            minimum, current = self.settings.sip_min_session_expires, call.session_timer
            timer = negotiate_timer(request, minimum, current, invite=call.invite)
            choices = read_reoffer(call, request)
        except (UnsupportedMediaError, ProtocolError) as exc:
            self._refuse_offer(request, channel, exc)  # the session (and its timer) stays as it was
            return None
        call.refresh_target(request)  # accepted: a target refresh, with or without an offer
        if choices is None:
            return False, timer
        call.update_media(choices)
        refresh_answer(call, self._sdp_host(channel))
        return True, timer

    async def _on_ack(self, request: SipMessage, channel: SipChannel) -> None:
        if self._rejections.ack_rejection(request):
            return  # the ACK of a non-2xx: Timer G of its INVITE transaction stops (RFC 3261 17.2.3)
        cseq = request.cseq[0]
        call = self.calls.get(request.call_id)
        if call is None or tag_of(request.get("To") or "") != call.local_tag:
            return
        call.channel = channel  # the dialog's latest hop (see _dialog_call)
        self._acks.ack((request.call_id, cseq))
        if call.awaits_answer(cseq):
            apply_ack_answer(call, request)  # the 2xx carried our offer (RFC 3264 5)
        call.acked(cseq)
        if call.state == "answered":
            call.state = "confirmed"

    async def _on_bye(self, request: SipMessage, channel: SipChannel) -> None:
        call = self._dialog_call(request, channel)
        if call is not None:
            self._respond(request, channel, 200, "OK")
            self._terminate_pending_invite(call)
            self._end(call, "hangup")

    async def _on_cancel(self, request: SipMessage, channel: SipChannel) -> None:
        branch = via_branch(request.get("Via") or "")
        call = self.calls.get(request.call_id)
        if call is None or call.invite_branch != branch:
            self._respond(request, channel, 481, "Call/Transaction Does Not Exist")
            return
        self._respond(request, channel, 200, "OK")
        if call.state == "early":
            self._terminate_pending_invite(call)
            self._end(call, "cancelled")

    def _terminate_pending_invite(self, call: SipCall) -> None:
        """487 to an INVITE not answered yet (CANCEL, or BYE in the early dialog)."""
        if call.state == "early":
            self._respond(
                call.invite, call.invite_channel, 487, "Request Terminated", to_tag=call.local_tag
            )

    async def _on_options(self, request: SipMessage, channel: SipChannel) -> None:
        supported = ("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))
        self._respond(request, channel, 200, "OK", extra=(("Allow", ALLOW), ("Accept", ACCEPT), supported))

    async def _on_info(self, request: SipMessage, channel: SipChannel) -> None:
        call = self._dialog_call(request, channel)
        if call is None:
            return
        self._respond(request, channel, 200, "OK")
        match = re.search(rb"(?im)^signal\s*=\s*([0-9*#A-D])", request.body)
        held = re.search(rb"(?im)^duration\s*=\s*(\d{1,4})\s*$", request.body)  # dtmf-relay, ms; 10 s+ not believed
        if match and call.sink is not None and call.plan.legs:
            call.sink.push(  # timed by the INFO's arrival on the call clock, not by the tone
                DtmfFrame(
                    digit=match.group(1).decode().upper(),
                    leg=call.plan.legs[0].leg,
                    audio_time=max(call.clock(), 0.0),
                    duration=int(held.group(1)) / 1000 if held else None,
                )
            )

    # --- helpers ---

    def _dialog_call(self, request: SipMessage, channel: SipChannel) -> SipCall | None:
        """The call an in-dialog request belongs to, or answer 481 and return None.

        Our BYE and UPDATE then go where this request came from (RFC 3261 18.1.1 reuses the
        far end's connection): a TCP connection that replaced the INVITE's, or the node that took
        over the dialog after an SBC failover, not the INVITE's dead hop.
        """
        call = self.calls.get(request.call_id)
        if call is None or tag_of(request.get("To") or "") != call.local_tag:
            self._respond(request, channel, 481, "Call/Transaction Does Not Exist")
            return None
        call.channel = channel
        return call

    def _contact(self, call: SipCall) -> str:
        port = self.ports.get(call.channel.transport, 0)
        contact = f"<sip:nextline@{call.channel.local_host()}:{port};transport={call.channel.transport}>"
        return contact + (";+sip.srs" if call.plan.source == "siprec" else "")

    def _ok_in_dialog(
        self, call: SipCall, request: SipMessage, timer: SessionTimer | None, *, with_sdp: bool = True
    ) -> bytes:
        """200 OK with our Contact, ``timer``'s Session-Expires and, unless told otherwise, our SDP."""
        headers = [("Contact", self._contact(call)), ("Allow", ALLOW)]
        if timer is not None:
            headers += timer.headers()
        if with_sdp:
            headers.append(("Content-Type", "application/sdp"))
        ok = response_to(
            request,
            200,
            "OK",
            to_tag=call.local_tag,
            body=call.answer_sdp.encode() if with_sdp else b"",
            headers=tuple(headers),
        )
        call.session_refreshed(timer)  # every 2xx we send to INVITE, re-INVITE or UPDATE is one (RFC 4028 10)
        return self._remember(request, ok)

    def _sdp_host(self, channel: SipChannel) -> str:
        return self.settings.media_address or channel.local_host()

    def _refuse_offer(self, request: SipMessage, channel: SipChannel, exc: VoiceError) -> None:
        """415, 488, 422 or 400 to an offer or its headers (see :func:`.refusal`)."""
        status, reason, extra = refusal(exc)
        self._respond(request, channel, status, reason, extra=extra)

    def _request_pending(self, call: SipCall, request: SipMessage, channel: SipChannel) -> bool:
        """491 to a re-INVITE or UPDATE offer that overlaps an INVITE of the dialog (see
        ``SipCall.overlapping``); the UAC retries after a random 2.1 to 4 s (RFC 3261 14.1)."""
        if not call.overlapping(request.method or "", bool(request.body.strip())):
            return False
        self._respond(request, channel, 491, "Request Pending")
        return True

    def _retry_later(self, request: SipMessage, channel: SipChannel) -> None:
        retry = ("Retry-After", str(random.randint(1, 10)))  # not a secret: spreads retries (RFC 3261 14.2)
        self._respond(request, channel, 500, "Server Internal Error", extra=(retry,))

    def _answer_failure(self, data: bytes, channel: SipChannel) -> None:
        """500 to a request whose handling failed before dispatch, when it can be addressed."""
        if data.lstrip().startswith(b"SIP/"):
            return  # never answer a response
        with contextlib.suppress(Exception):  # the safety net itself must not raise
            partial = SipMessage(method="?", uri="", headers=salvage_headers(data))
            if all(partial.get(name) for name in REQUIRED_REQUEST_HEADERS):
                self._respond(partial, channel, 500, "Server Internal Error")

    def _respond(
        self,
        request: SipMessage,
        channel: SipChannel,
        status: int,
        reason: str,
        *,
        to_tag: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if status > 100 and to_tag is None:
            to_tag = uuid.uuid4().hex[:10]  # RFC 3261 8.2.6.2: responses other than 100 carry one
        response = response_to(request, status, reason, to_tag=to_tag, headers=extra)
        data = self._remember(request, response)
        if request.method == "INVITE" and status >= 300 and channel.transport == "udp":
            # Timer G (RFC 3261 17.2.1): re-sent until the ACK of this INVITE's transaction.
            self._spawn(self._rejections.reject(channel, data, request))
        channel.send(data)

    def _remember(self, request: SipMessage, response: SipMessage) -> bytes:
        data = response.to_bytes()
        assert response.status is not None
        self.stats.responses_sent[response.status] += 1
        key = (via_branch(request.get("Via") or ""), request.method or "", request.call_id)
        if key[0]:
            self._transactions[key] = (time.monotonic(), data)
        return data

    def _reject_malformed(self, error: SipParseError, channel: SipChannel) -> None:
        partial = SipMessage(method="?", uri="", headers=error.headers)
        if any(not partial.get(name) for name in REQUIRED_REQUEST_HEADERS):
            self.stats.unreadable += 1
            return
        log.info("malformed SIP from %s: %s", channel.peer, error.message)
        response = response_to(
            partial,
            400,
            "Bad Request",
            to_tag=uuid.uuid4().hex[:10],
            headers=(warning_header(error.message),),
        )
        self.stats.responses_sent[400] += 1
        channel.send(response.to_bytes())

    def _hang_up(self, call: SipCall, reason: str) -> None:
        self._send_bye(call)
        self._end(call, reason)

    def _send_bye(self, call: SipCall) -> None:
        if call.state not in ("answered", "confirmed"):
            return
        via = f"{call.channel.local_host()}:{self.ports.get(call.channel.transport, 0)}"
        bye = in_dialog_request(call, "BYE", transport=call.channel.transport, via=via)
        self._client.send(bye, call.channel)  # retransmits in the background; the call ends now

    def _refresh_session(self, call: SipCall) -> None:
        """Our UPDATE refreshing a session we are the refresher of; no 2xx: it expires (BYE)."""
        via = f"{call.channel.local_host()}:{self.ports.get(call.channel.transport, 0)}"
        update = session_refresh(call, transport=call.channel.transport, via=via, contact=self._contact(call))
        self._client.send(update, call.channel, on_final=call.refresh_answered)

    def _end(self, call: SipCall, reason: str) -> None:
        report = call.finish(reason)
        self.calls.pop(call.sip_call_id, None)
        self.stats.stray_rtp += sum(stats.stray for stats in report.legs.values())
        self.reports.append(report)

    def _send_2xx(
        self, call: SipCall, channel: SipChannel, request: SipMessage, ok: bytes, *, initial: bool, offer: bool = False
    ) -> None:
        """Send a 2xx to an INVITE (``offer``: with our offer, answered in the ACK); over UDP re-send
        it until its ACK (RFC 3261 13.3.1.4)."""
        call.invite_answered(request.cseq[0], our_offer=offer)  # until the ACK, see overlapping
        if channel.transport == "udp":
            self._acks.expect((call.sip_call_id, request.cseq[0]))  # before an ACK can arrive
            self._spawn(self._await_ack(call, channel, request.cseq[0], ok, initial=initial))
        channel.send(ok)

    async def _await_ack(
        self, call: SipCall, channel: SipChannel, cseq: int, ok: bytes, *, initial: bool
    ) -> None:
        def alive() -> bool:
            return call.state != "ended"

        if await self._acks.retransmit(channel, ok, (call.sip_call_id, cseq), alive):
            return
        if initial:
            log.warning("no ACK for call %s within Timer H: hanging up", call.call_id)
            self._hang_up(call, "no ack")
        else:
            # RFC 3261 13.3.1.4 says the session should then end with a BYE. We keep it: a
            # recorder that drops a live call over one lost ACK loses audio, while a dead far
            # end is still caught by rtp_timeout.
            log.warning("no ACK for re-INVITE %d of call %s; keeping the call", cseq, call.call_id)

    async def _poll_calls(self) -> None:
        # One timer for every call: 200 calls cost 50 wake-ups a second, not 10,000.
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            for call in list(self.calls.values()):
                if call.state not in ("answered", "confirmed"):
                    continue
                if reason := call.poll():
                    self._hang_up(call, reason)
                elif call.refresh_due():
                    self._refresh_session(call)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            horizon = time.monotonic() - TRANSACTION_TTL
            self._transactions = {k: v for k, v in self._transactions.items() if v[0] > horizon}

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
