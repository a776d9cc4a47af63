"""SIP/SDP parsing and offer/answer edge cases found by the telephony audit (pure functions)."""

from __future__ import annotations

import pytest

from telephony.errors import ProtocolError, SipParseError, UnsupportedMediaError
from telephony.sip.channel import reachable_host
from telephony.sip.message import parse_message, response_to, split_header_values
from telephony.sip.sdp import build_answer, negotiate, parse_sdp

pytestmark = pytest.mark.unit

SDP = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
)


def request(method: str = "INVITE", *, cseq: str = "1 INVITE", length: str | None = None,
            extra: str = "", body: str = "") -> bytes:  # fmt: skip
    head = (
        f"{method} sip:rec@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n"
        f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:rec@127.0.0.1>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq}\r\n{extra}Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return (head + body).encode()


# Superscripts pass str.isdigit() but not int(); Arabic-Indic digits pass both.
@pytest.mark.parametrize("digits", ["\u00b2", "1\u00b9", "\u0661"])
def test_non_ascii_digits_in_cseq_and_content_length_are_parse_errors(digits: str) -> None:
    with pytest.raises(SipParseError, match="CSeq"):
        parse_message(request("OPTIONS", cseq=f"{digits} OPTIONS"))
    with pytest.raises(SipParseError, match="Content-Length") as caught:
        parse_message(request("OPTIONS", cseq="1 OPTIONS", length=digits))
    assert dict(caught.value.headers)["Call-ID"] == "c1"  # enough left to address a 400


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("m=audio 7000", "m=audio \u00b9\u00b2"),
        ("rtpmap:0 ", "rtpmap:\u00b2 "),
        ("PCMU/8000", "PCMU/\u0668000"),
    ],
)
def test_non_ascii_digits_in_sdp_are_protocol_errors(old: str, new: str) -> None:
    text = SDP.format(port=7000, proto="RTP/AVP").replace(old, new)
    with pytest.raises(ProtocolError):  # the server answers 400; a ValueError became a 500
        parse_sdp(text)


def test_non_ascii_channel_count_falls_back_to_mono() -> None:
    offer = parse_sdp(SDP.format(port=7000, proto="RTP/AVP").replace("PCMU/8000", "PCMU/8000/\u00b2"))
    assert offer.media[0].rtpmaps[0] == ("PCMU", 8000, 1)


def test_non_ascii_payload_type_in_m_line_is_skipped() -> None:
    offer = parse_sdp(SDP.format(port=7000, proto="RTP/AVP").replace(" 0 101", " \u00b2 0 101"))
    (choice,) = negotiate(offer)
    assert (choice.codec, choice.payload_type, choice.dtmf_payload_type) == ("PCMU", 0, 101)


def test_srtp_only_offer_is_refused_with_a_reason() -> None:
    offer = parse_sdp(SDP.format(port=7000, proto="RTP/SAVP") + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n")
    with pytest.raises(UnsupportedMediaError, match="SRTP") as caught:
        negotiate(offer)
    assert "RTP/AVP" in (caught.value.hint or "")


def test_srtp_m_line_next_to_plain_rtp_is_answered_with_port_zero() -> None:
    text = SDP.format(port=7000, proto="RTP/SAVP") + "m=audio 7002 RTP/AVPF 8\r\n"
    choices = negotiate(parse_sdp(text))
    assert [c.accepted for c in choices] == [False, True]
    answer = parse_sdp(build_answer(choices, {1: 40000}, address="127.0.0.1"))
    assert [(m.port, m.proto) for m in answer.media] == [(0, "RTP/SAVP"), (40000, "RTP/AVPF")]


def test_session_level_direction_applies_unless_the_m_line_has_its_own() -> None:
    text = SDP.format(port=7000, proto="RTP/AVP").replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n")
    two = parse_sdp(text + "m=audio 7002 RTP/AVP 8\r\na=sendonly\r\n")
    assert [m.direction for m in two.media] == ["inactive", "sendonly"]


def test_answer_version_is_separate_from_session_id() -> None:
    choices = negotiate(parse_sdp(SDP.format(port=7000, proto="RTP/AVP")))
    answer = build_answer(choices, {0: 40000}, address="127.0.0.1", session_id=5, version=7)
    assert "o=nextline 5 7 IN IP4 127.0.0.1" in answer


def test_record_route_is_copied_into_dialog_creating_responses_only() -> None:
    rr = "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p3;lr>\r\n"
    invite = parse_message(request(extra=rr))
    for status in (180, 200):
        got = response_to(invite, status, "x", to_tag="t").get_all("Record-Route")
        assert got == ["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>", "<sip:p3;lr>"]
    assert response_to(invite, 100, "Trying").get_all("Record-Route") == []
    assert response_to(invite, 488, "x", to_tag="t").get_all("Record-Route") == []
    options = parse_message(request("OPTIONS", cseq="1 OPTIONS", extra=rr))
    assert response_to(options, 200, "OK", to_tag="t").get_all("Record-Route") == []


def test_split_header_values_keeps_commas_inside_uris_and_quotes() -> None:
    values = ['"Proxy, One" <sip:p1;lr;x=a,b>, <sip:p2;lr>', "<sip:p3;lr>"]
    assert split_header_values(values) == ['"Proxy, One" <sip:p1;lr;x=a,b>', "<sip:p2;lr>", "<sip:p3;lr>"]


def test_wildcard_bind_address_is_replaced_by_the_routed_one() -> None:
    assert reachable_host("0.0.0.0", ("127.0.0.1", 5060)) == "127.0.0.1"
    assert reachable_host("127.0.0.1", ("127.0.0.1", 5060)) == "127.0.0.1"
