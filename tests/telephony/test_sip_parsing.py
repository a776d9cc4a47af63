"""SIP message parsing/serializing and SDP offer/answer."""

from __future__ import annotations

import pytest

from telephony.errors import ProtocolError, SipParseError, UnsupportedMediaError
from telephony.sip.message import (
    parse_message,
    parse_name_addr,
    response_to,
    tag_of,
    uri_host,
    uri_user,
    via_branch,
)
from telephony.sip.sdp import build_answer, negotiate, parse_sdp

pytestmark = pytest.mark.unit

OFFER = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 18 8 0 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    "m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def invite(body: str = OFFER, **extra: str) -> bytes:
    headers = {
        "Via": "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport",
        "f": "sipp <sip:sipp@127.0.0.1:5061>;tag=abc",  # compact forms
        "t": "<sip:service@127.0.0.1:5060>",
        "i": "call-1@127.0.0.1",
        "CSeq": "1 INVITE",
        "Max-Forwards": "70",
        "Contact": "<sip:sipp@127.0.0.1:5061>",
        "Content-Type": "application/sdp",
        **extra,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    start = "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    raw = f"{start}{head}Content-Length: {len(body)}\r\n\r\n{body}"
    return raw.encode()


def test_parse_request_expands_compact_headers() -> None:
    message = parse_message(invite())
    assert message.method == "INVITE" and message.uri == "sip:service@127.0.0.1:5060"
    assert message.call_id == "call-1@127.0.0.1" and message.cseq == (1, "INVITE")
    assert tag_of(message.get("From") or "") == "abc" and tag_of(message.get("to") or "") is None
    assert message.body.decode() == OFFER


def test_folded_header_lines_are_joined() -> None:
    raw = invite().replace(b"Max-Forwards: 70\r\n", b"Subject: first\r\n  second\r\n")
    assert parse_message(raw).get("Subject") == "first second"


def test_response_copies_dialog_headers_and_adds_to_tag() -> None:
    request = parse_message(invite())
    response = parse_message(response_to(request, 200, "OK", to_tag="xyz").to_bytes())
    assert response.status == 200 and response.reason == "OK"
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.get(name) == request.get(name)
    assert tag_of(response.get("To") or "") == "xyz"
    assert response.get("Content-Length") == "0"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda raw: raw.replace(b"CSeq: 1 INVITE\r\n", b""), "missing header"),
        (lambda raw: raw.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"), "CSeq"),
        (lambda raw: raw.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), "does not match"),
        (
            lambda raw: raw.replace(
                b"INVITE sip:service@127.0.0.1:5060 SIP/2.0", b"INVITE  SIP/3.0"
            ),
            "start line",
        ),
        (lambda raw: raw.replace(b"Content-Length: ", b"Content-Length: 9"), "exceeds"),
        (lambda raw: raw.replace(b"Max-Forwards: 70", b"Max Forwards 70"), "header line"),
    ],
)
def test_malformed_requests_raise_with_readable_headers(mutate, problem: str) -> None:
    with pytest.raises(SipParseError, match=problem) as caught:
        parse_message(mutate(invite()))
    assert any(name == "Via" for name, _ in caught.value.headers)  # enough to answer 400


def test_garbage_raises() -> None:
    with pytest.raises(SipParseError):
        parse_message(b"\x80\x08\x00\x01\xff\xfe")


def test_header_value_helpers() -> None:
    addr = parse_name_addr('"Agent 42" <sip:agent42@example.com:5060;transport=tcp>;tag=9')
    assert (addr.display, addr.uri, addr.params["tag"]) == (
        "Agent 42",
        "sip:agent42@example.com:5060;transport=tcp",
        "9",
    )
    assert uri_user(addr.uri) == "agent42" and uri_host(addr.uri) == "example.com"
    assert via_branch("SIP/2.0/UDP 1.2.3.4;rport;branch=z9hG4bK77") == "z9hG4bK77"


# --- SDP ---------------------------------------------------------------------------------------


def test_negotiate_picks_first_offered_g711_and_telephone_event() -> None:
    offer = parse_sdp(OFFER)
    choices = negotiate(offer)
    audio, video = choices
    assert (audio.codec, audio.payload_type, audio.dtmf_payload_type) == ("PCMA", 8, 101)
    assert audio.media.address == "127.0.0.1" and audio.media.port == 6000
    assert not video.accepted


def test_static_payload_types_need_no_rtpmap() -> None:
    offer = parse_sdp("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert negotiate(offer)[0].codec == "PCMU"


def test_answer_is_receive_only_with_rejected_lines_at_port_zero() -> None:
    offer = parse_sdp(OFFER.replace("a=ptime:20", "a=label:1\r\na=sendonly"))
    answer = parse_sdp(build_answer(negotiate(offer), {0: 40000}, address="127.0.0.1"))
    audio, video = answer.media
    assert (audio.port, audio.formats, audio.direction, audio.label) == (
        40000,
        ["8", "101"],
        "recvonly",
        "1",
    )
    assert audio.rtpmaps[8] == ("PCMA", 8000, 1) and audio.rtpmaps[101][0] == "TELEPHONE-EVENT"
    assert video.port == 0 and answer.address == "127.0.0.1"


def test_offer_without_g711_is_unsupported() -> None:
    offer = parse_sdp(
        "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 9\r\n"
        "a=rtpmap:18 G729/8000\r\na=rtpmap:9 G722/8000\r\n"
    )
    with pytest.raises(UnsupportedMediaError, match="G729"):
        negotiate(offer)


@pytest.mark.parametrize(
    "body",
    [
        "hello",
        "v=0\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\nc=IN IP4\r\n",
        "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x\r\n",
    ],
)
def test_malformed_sdp_raises(body: str) -> None:
    with pytest.raises(ProtocolError):
        parse_sdp(body)
