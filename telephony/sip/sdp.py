"""SDP (RFC 4566) parsing and the receive-only offer/answer (RFC 3264) of our SIP UAS and SRS.

We only ever receive audio, so the answer is simple: for each offered plain-RTP ``m=audio`` line
(``RTP/AVP`` or ``RTP/AVPF``; SRTP is not supported) pick the first offered codec we decode (PCMU
or PCMA, 8 kHz) plus ``telephone-event/8000`` if offered, answer ``recvonly`` (``inactive`` when
the offer does not send) on our own RTP port, and reject (port 0) every other m-line.
Session-level direction attributes apply to m-lines without their own. Numbers are ASCII digits
only (``str.isdigit`` would let ``"²"`` through to ``int``), of at most 10 digits after leading
zeros (``int`` raises beyond 4,300), and an m-line port is at most 65535. SIPREC streams
keep their ``a=label`` so the metadata can name them. No well-kept Python SDP library covers the
answer side; ``aiortc.sdp`` is WebRTC-specific (ICE/DTLS mandatory).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from telephony.errors import ProtocolError, UnsupportedMediaError
from telephony.sip.message import is_short_number, number_value

SUPPORTED_CODECS = ("PCMU", "PCMA")
SUPPORTED_PROTOS = ("RTP/AVP", "RTP/AVPF")
"""Plain RTP only: an SRTP stream (RTP/SAVP, a=crypto) would decode ciphertext as G.711."""
STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1)}
MAX_PORT = 65535
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {
    "sendrecv": "recvonly",
    "sendonly": "recvonly",
    "recvonly": "inactive",
    "inactive": "inactive",
}


@dataclass
class MediaDescription:
    """One ``m=`` section."""

    media: str
    port: int
    proto: str
    formats: list[str]
    address: str | None = None
    rtpmaps: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    """payload type -> (encoding name upper-case, clock rate, channels)."""
    direction: str = "sendrecv"
    label: str | None = None
    attributes: list[str] = field(default_factory=list)

    def codec_of(self, payload_type: int) -> tuple[str, int, int] | None:
        """(encoding, clock rate, channels) of a payload type, from rtpmap or the static table."""
        return self.rtpmaps.get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)


@dataclass
class SessionDescription:
    """A parsed SDP body."""

    origin: str = ""
    address: str | None = None
    direction: str | None = None
    """Session-level ``a=sendonly/recvonly/inactive``: the default of every m-line."""
    media: list[MediaDescription] = field(default_factory=list)


@dataclass(frozen=True)
class MediaChoice:
    """What we answer for one offered m-line. ``codec is None`` means rejected."""

    index: int
    media: MediaDescription
    codec: str | None = None
    payload_type: int | None = None
    dtmf_payload_type: int | None = None

    @property
    def accepted(self) -> bool:
        """True when we receive this stream."""
        return self.codec is not None and self.media.port != 0


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse an SDP body.

    Raises:
        ProtocolError: not SDP (no ``v=0``) or a malformed ``m=``/``c=``/``a=rtpmap`` line.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise ProtocolError("SDP body does not start with v=0")
    session = SessionDescription()
    current: MediaDescription | None = None
    for line in lines[1:]:
        kind, sep, value = line.partition("=")
        if not sep or len(kind) != 1:
            raise ProtocolError(f"malformed SDP line {line[:40]!r}")
        if kind == "m":
            current = _parse_media_line(value)
            session.media.append(current)
        elif kind == "c":
            address = _parse_connection(value)
            if current is None:
                session.address = address
            else:
                current.address = address
        elif kind == "o" and current is None:
            session.origin = value
        elif kind == "a" and current is not None:
            _apply_attribute(current, value)
        elif kind == "a" and value in DIRECTIONS:
            session.direction = value
    for media in session.media:
        media.address = media.address or session.address
        if session.direction and not any(a in DIRECTIONS for a in media.attributes):
            media.direction = session.direction  # RFC 4566 6: media-level wins when present
    return session


MAX_MEDIA_LINES = 16
"""Most m-lines an offer (or re-offer) may have. Each accepted audio m-line binds an RTP socket and
port, so one INVITE of 2,500 m-lines (one 64 KiB datagram) took 2,500 fds and emptied the port
range for everyone. Why 16 is plenty: SIPREC (RFC 7866) sends one m-line per recorded stream,
one per participant direction, so 2 for a two-party call (4 with video); m-lines are never
removed (RFC 3264 8), so re-INVITEs that add streams after a transfer or a conference join grow
the count slowly, and 16 leaves room for a few of those."""


def negotiate(offer: SessionDescription) -> list[MediaChoice]:
    """Choose what to receive on each offered m-line.

    Raises:
        ProtocolError: more than ``MAX_MEDIA_LINES`` m-lines (answer 400, before any port is bound).
        UnsupportedMediaError: no audio m-line offers PCMU or PCMA (answer 488).
    """
    if len(offer.media) > MAX_MEDIA_LINES:
        raise ProtocolError(
            f"offer has {len(offer.media)} m-lines; at most {MAX_MEDIA_LINES} are accepted",
            hint="send one m-line per recorded stream",
        )
    choices = [_choose(index, media) for index, media in enumerate(offer.media)]
    if not any(choice.accepted for choice in choices):
        offered = sorted(
            {
                codec[0]
                for m in offer.media
                for pt in m.formats
                if is_short_number(pt) and (codec := m.codec_of(number_value(pt)))
            }
        )
        protos = sorted({m.proto for m in offer.media if m.media == "audio"} - set(SUPPORTED_PROTOS))
        if protos:
            raise UnsupportedMediaError(
                f"no plain RTP audio offered (transport {', '.join(protos)}; SRTP is not supported)",
                hint="offer RTP/AVP with PCMU or PCMA at 8000 Hz",
            )
        raise UnsupportedMediaError(
            f"no supported audio codec offered (offered: {offered or 'none'})",
            hint="offer PCMU or PCMA at 8000 Hz",
        )
    return choices


def build_answer(
    choices: list[MediaChoice],
    ports: dict[int, int],
    *,
    address: str,
    session_id: int | None = None,
    version: int | None = None,
) -> str:
    """The SDP answer; ``ports`` maps accepted choice indices to our RTP ports.

    ``version`` is the o= line's session version (default: ``session_id``); RFC 3264 8 wants
    the same session id in every answer of a dialog and a higher version when anything changed.
    """
    session_id = session_id or int(time.time())
    version = session_id if version is None else version
    lines = [
        "v=0",
        f"o=nextline {session_id} {version} IN IP4 {address}",
        "s=nextline",
        f"c=IN IP4 {address}",
        "t=0 0",
    ]
    for choice in choices:
        lines += _answer_media(choice, ports.get(choice.index, 0))
    return "\r\n".join(lines) + "\r\n"


def _choose(index: int, media: MediaDescription) -> MediaChoice:
    if media.media != "audio" or media.port == 0 or media.proto not in SUPPORTED_PROTOS:
        return MediaChoice(index, media)
    codec = payload_type = dtmf = None
    for fmt in media.formats:
        if not is_short_number(fmt):
            continue
        found = media.codec_of(number_value(fmt))
        if found is None:
            continue
        name, rate, _ = found
        if name == "TELEPHONE-EVENT" and rate == 8000 and dtmf is None:
            dtmf = number_value(fmt)
        elif name in SUPPORTED_CODECS and rate == 8000 and codec is None:
            codec, payload_type = name, number_value(fmt)
    if codec is None:
        return MediaChoice(index, media)
    return MediaChoice(index, media, codec, payload_type, dtmf)


def _answer_media(choice: MediaChoice, port: int) -> list[str]:
    media = choice.media
    if not choice.accepted or port == 0:
        first = media.formats[0] if media.formats else "0"
        return [f"m={media.media} 0 {media.proto} {first}"]
    formats = [str(choice.payload_type)]
    lines = [f"a=rtpmap:{choice.payload_type} {choice.codec}/8000"]
    if choice.dtmf_payload_type is not None:
        formats.append(str(choice.dtmf_payload_type))
        lines += [
            f"a=rtpmap:{choice.dtmf_payload_type} telephone-event/8000",
            f"a=fmtp:{choice.dtmf_payload_type} 0-16",
        ]
    head = [f"m=audio {port} {media.proto} {' '.join(formats)}"]
    if media.label is not None:
        lines.append(f"a=label:{media.label}")
    lines.append(f"a={_ANSWER_DIRECTION[media.direction]}")
    return head + lines


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4 or not is_short_number(parts[1].split("/")[0]):
        raise ProtocolError(f"malformed m= line {value[:60]!r}")
    port = number_value(parts[1].split("/")[0])
    if port > MAX_PORT:
        raise ProtocolError(f"m= line port {port} is above {MAX_PORT}")
    return MediaDescription(
        media=parts[0].lower(),
        port=port,
        proto=parts[2].upper(),
        formats=parts[3:],
    )


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise ProtocolError(f"malformed c= line {value[:60]!r}")
    return parts[2].split("/")[0]


def _apply_attribute(media: MediaDescription, value: str) -> None:
    media.attributes.append(value)
    name, _, rest = value.partition(":")
    if name in DIRECTIONS:
        media.direction = name
    elif name == "label":
        media.label = rest.strip()
    elif name == "rtpmap":
        payload_type, _, encoding = rest.strip().partition(" ")
        pieces = encoding.split("/")
        if not is_short_number(payload_type) or len(pieces) < 2 or not is_short_number(pieces[1]):
            raise ProtocolError(f"malformed rtpmap {value[:60]!r}")
        channels = number_value(pieces[2]) if len(pieces) > 2 and is_short_number(pieces[2]) else 1
        media.rtpmaps[number_value(payload_type)] = (pieces[0].upper(), number_value(pieces[1]), channels)
