"""In-dialog SIP for our UAS: offers in INVITE, re-INVITE and UPDATE, and requests we send.

Offers (RFC 3264): the body of an INVITE, re-INVITE or UPDATE is SDP or a SIPREC multipart
(SDP plus rs-metadata); anything else is refused with 415 and an ``Accept`` header (RFC 3261
21.4.16). A re-offer is negotiated again: existing m-lines keep their RTP ports and follow the new
codec, direction and source; new m-lines are answered with port 0, because the pipeline's legs are
fixed when the call starts. A refused re-offer leaves the session as it was (RFC 3261 14.2).
A re-INVITE without an offer gets ours in the 2xx; the far end's answer in the ACK is applied
like a re-offer (:func:`apply_ack_answer`).

Requests we send (BYE, and UPDATE when we refresh the session timer) follow RFC 3261 12.2.1.1:
Request-URI from the far end's latest Contact, Route from the Record-Route set of the INVITE
(loose routing; strict routers get the RFC 2543 form), Via with the address the far end can reach
us on. They are sent on the channel of the dialog's latest request from the far end.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from telephony.errors import ProtocolError, UnsupportedMediaError
from telephony.sip.call import SipCall
from telephony.sip.mapping import is_siprec
from telephony.sip.message import SipMessage, parse_name_addr, tag_of, warning_header
from telephony.sip.sdp import MediaChoice, SessionDescription, build_answer, negotiate, parse_sdp
from telephony.sip.session_timer import SessionIntervalTooSmallError
from telephony.sip.siprec import METADATA_TYPES, RecordingMetadata, parse_metadata, split_multipart
from voice.errors import VoiceError

log = logging.getLogger(__name__)
ACCEPT = "application/sdp, multipart/mixed"
_LOOSE_ROUTE = re.compile(r"(?i);lr(?:[;=?]|$)")


class UnsupportedBodyError(UnsupportedMediaError):
    """A body that is neither SDP nor a SIPREC multipart (SIP 415 Unsupported Media Type)."""


def offer_parts(message: SipMessage) -> tuple[bytes | None, RecordingMetadata | None]:
    """The SDP offer (None when there is none) and SIPREC metadata of a request's body.

    Raises:
        UnsupportedBodyError: a body of another type (answer 415 with ``Accept``).
        ProtocolError: unparseable multipart or metadata (answer 400).
    """
    content_type = (message.get("Content-Type") or "").lower()
    sdp: bytes | None = None
    recording = None
    if content_type.startswith("multipart/"):
        for part in split_multipart(message.get("Content-Type") or "", message.body):
            if part.content_type == "application/sdp":
                sdp = part.body
            elif part.content_type in METADATA_TYPES:
                recording = parse_metadata(part.body)
    elif content_type.startswith("application/sdp"):
        sdp = message.body
    elif message.body.strip():
        raise UnsupportedBodyError(
            f"body of type {content_type or '(none)'!r} is not an SDP offer",
            hint=f"send the offer as one of: {ACCEPT}",
        )
    return sdp or None, recording


def read_offer(invite: SipMessage) -> tuple[SessionDescription, RecordingMetadata | None]:
    """The SDP offer and, for SIPREC, the recording metadata of an INVITE.

    Raises:
        UnsupportedBodyError: a body that is not SDP (answer 415).
        UnsupportedMediaError: no SDP offer (we do not do late offers).
        ProtocolError: unparseable SDP, multipart or metadata.
    """
    sdp, recording = offer_parts(invite)
    if sdp is None:
        raise UnsupportedMediaError(
            "INVITE without an SDP offer", hint="send the offer in the INVITE"
        )
    if recording is None and is_siprec(invite, None):
        log.info("SIPREC INVITE %s without rs-metadata; roles will be unknown", invite.call_id)
    return parse_sdp(sdp), recording


def read_reoffer(call: SipCall, request: SipMessage) -> list[MediaChoice] | None:
    """Negotiate the offer of a re-INVITE or UPDATE; None when it carries none.

    Raises:
        UnsupportedBodyError: a body that is not SDP (answer 415).
        UnsupportedMediaError: nothing acceptable, or m-lines were removed (answer 488).
        ProtocolError: unparseable SDP or metadata (answer 400).
    """
    sdp, _ = offer_parts(request)  # metadata updates are parsed for errors; legs stay as they were
    if sdp is None:
        return None
    offer = parse_sdp(sdp)
    if len(offer.media) < len(call.choices):
        raise UnsupportedMediaError(
            f"re-offer has {len(offer.media)} m-lines where the session has {len(call.choices)}",
            hint="keep every m-line; disable a stream with port 0 (RFC 3264 8)",
        )
    return negotiate(offer)


def refusal(exc: VoiceError) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """Status, reason and headers that refuse an offer or its headers: 422 for a too short
    Session-Expires, 415 for a body that is not SDP, 488 for media we cannot take, 400 for bad
    SDP or headers."""
    if isinstance(exc, SessionIntervalTooSmallError):
        return 422, "Session Interval Too Small", (("Min-SE", str(exc.min_se)), warning_header(exc.message))
    if isinstance(exc, UnsupportedBodyError):
        return 415, "Unsupported Media Type", (("Accept", ACCEPT), warning_header(exc.message))
    if isinstance(exc, UnsupportedMediaError):
        return 488, "Not Acceptable Here", (warning_header(exc.message, code=304),)
    return 400, "Bad Request", (warning_header(exc.message),)


def apply_ack_answer(call: SipCall, ack: SipMessage) -> None:
    """Apply the far end's answer in the ACK to the offer of our 2xx (to an offerless re-INVITE).

    An unusable answer leaves the session as it was: nothing can refuse an ACK, and a recorder
    that hung up would lose the call's audio (a moved source is then caught by ``rtp_timeout``).
    """
    try:
        choices = read_answer(call, ack)
    except (UnsupportedMediaError, ProtocolError) as exc:
        log.warning("call %s: the answer in the ACK is unusable (%s); media unchanged", call.call_id, exc.message)
        return
    if choices is None:
        log.info("call %s: ACK without the answer to our offer; media unchanged", call.call_id)
    else:
        call.update_media(choices)


def read_answer(call: SipCall, ack: SipMessage) -> list[MediaChoice] | None:
    """What we receive per m-line after the far end's answer to our offer; None without one.

    Our offer is our latest answer (one codec, ``recvonly``), so the answer names the codec and
    says ``sendonly`` to send: that is read as the far end sending, not as the hold that
    ``sendonly`` after ``sendrecv`` would be in an offer (RFC 3264 8.4). Labels missing from the
    answer are kept from the session.

    Raises:
        UnsupportedBodyError: a body that is not SDP.
        UnsupportedMediaError: no stream we can receive.
        ProtocolError: unparseable SDP, or not one m-line per m-line of our offer (RFC 3264 6).
    """
    sdp, _ = offer_parts(ack)
    if sdp is None:
        return None
    answer = parse_sdp(sdp)
    if len(answer.media) != len(call.choices):
        raise ProtocolError(f"answer has {len(answer.media)} m-lines where our offer had {len(call.choices)}")
    for media, ours in zip(answer.media, call.choices, strict=True):
        media.direction = "sendrecv" if media.direction == "sendonly" else media.direction
        media.label = media.label or ours.media.label
    return negotiate(answer)


def refresh_answer(call: SipCall, address: str) -> None:
    """Rebuild our SDP answer; same o= session id, version raised only when it changed."""
    if not call.sdp_session_id:
        call.sdp_session_id = call.sdp_version = int(time.time())

    def build() -> str:
        return build_answer(
            call.choices,
            call.ports,
            address=address,
            session_id=call.sdp_session_id,
            version=call.sdp_version,
        )

    body = build()
    if call.answer_sdp and body != call.answer_sdp:
        call.sdp_version += 1
        body = build()
    call.answer_sdp = body


def in_dialog_request(call: SipCall, method: str, *, transport: str, via: str) -> SipMessage:
    """A request of ours in the call's dialog (BYE), routed by the dialog's route set.

    ``via`` is ``host:port`` the far end reaches us on (never a wildcard address).
    """
    call.local_cseq += 1
    target = call.remote_target or parse_name_addr(call.invite.get("From") or "").uri
    uri, routes = target or (call.invite.uri or ""), list(call.route_set)
    if routes and not _LOOSE_ROUTE.search(parse_name_addr(routes[0]).uri):
        # A strict (RFC 2543) router: it gets the Request-URI, the target goes last in Route.
        uri, routes = parse_name_addr(routes[0]).uri, [*routes[1:], f"<{uri}>"]
    to = call.invite.get("To") or ""
    branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
    headers = [
        ("Via", f"SIP/2.0/{transport.upper()} {via};branch={branch};rport"),
        ("Max-Forwards", "70"),
        *(("Route", route) for route in routes),
        ("From", to if tag_of(to) else f"{to};tag={call.local_tag}"),
        ("To", call.invite.get("From") or ""),
        ("Call-ID", call.sip_call_id),
        ("CSeq", f"{call.local_cseq} {method}"),
    ]
    return SipMessage(method=method, uri=uri, headers=headers)


def session_refresh(call: SipCall, *, transport: str, via: str, contact: str) -> SipMessage:
    """Our UPDATE without SDP that refreshes the session timer we are the refresher of (RFC 4028
    7.4: ``refresher=uac``, the UAC of this UPDATE being us); an UPDATE is a target refresh request,
    so it carries our Contact (RFC 3311 5.1)."""
    update = in_dialog_request(call, "UPDATE", transport=transport, via=via)
    update.headers.append(("Contact", contact))
    if call.session_timer is not None:
        update.headers += call.session_timer.refresh_headers()
    return update
