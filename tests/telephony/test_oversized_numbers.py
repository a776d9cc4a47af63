"""Numbers of thousands of digits are the ingress's normal protocol errors.

``int()`` of over 4,300 digits raises ValueError (and a huge hour count OverflowError once added
to float seconds); uncaught, they became a SIP 500, a WebSocket 1011 or a traceback in the SIP TCP
reader. Each must be what any other malformed input is: SipParseError / ProtocolError (SIP 400),
MalformedMessageError (WebSocket 1007), an AudioHook ``disconnect`` with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from telephony.errors import MalformedMessageError, ProtocolError, SipParseError
from telephony.sip.channel import read_tcp_messages
from telephony.sip.message import parse_message
from telephony.sip.sdp import parse_sdp
from telephony.websocket.audiohook import AudioHookSerializer, parse_duration
from telephony.websocket.common import load_json_object
from telephony.websocket.twilio import TwilioSerializer

pytestmark = pytest.mark.unit
HUGE = "1" + "0" * 5000
OFFER = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:{pt} PCMU/{rate}\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def request(*, cseq: str = "1 OPTIONS", length: str = "0") -> bytes:
    return (
        "OPTIONS sip:rec@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:rec@127.0.0.1>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(("field", "raw"), [("CSeq", request(cseq=f"{HUGE} OPTIONS")),
                                            ("Content-Length", request(length=HUGE))])
def test_sip_header_numbers_of_thousands_of_digits_are_parse_errors(field: str, raw: bytes) -> None:
    with pytest.raises(SipParseError, match=field) as caught:
        parse_message(raw)
    assert dict(caught.value.headers)["Call-ID"] == "c1"  # enough left to address the 400


def test_sip_numbers_of_ordinary_length_still_parse() -> None:
    message = parse_message(request(cseq="2147483647 OPTIONS", length="0000000000"))
    assert message.cseq == (2147483647, "OPTIONS")


def test_leading_zeros_do_not_count_towards_the_limit() -> None:
    # 1*DIGIT allows them, and int() counts them towards its 4,300 digits: read past them.
    message = parse_message(request(cseq="0" * 5000 + "7 OPTIONS", length="0" * 5000))
    assert message.cseq == (7, "OPTIONS") and message.body == b""
    offer = parse_sdp(OFFER.format(port="0" * 5000 + "7000", pt="0" * 5000, rate="0" * 5000 + "8000"))
    assert offer.media[0].port == 7000 and offer.media[0].rtpmaps[0] == ("PCMU", 8000, 1)


@pytest.mark.parametrize("values", [{"port": HUGE}, {"pt": HUGE}, {"rate": HUGE}])
def test_sdp_numbers_of_thousands_of_digits_are_protocol_errors(values: dict[str, str]) -> None:
    fields = {"port": "7000", "pt": "0", "rate": "8000"} | values
    with pytest.raises(ProtocolError):
        parse_sdp(OFFER.format(**fields))


def test_sip_tcp_content_length_of_thousands_of_digits_drops_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[bool, list[bytes]]:
        reader = asyncio.StreamReader()
        reader.feed_data(request(length=HUGE))
        reader.feed_eof()
        seen: list[bytes] = []
        channel: Any = SimpleNamespace(peer=("127.0.0.1", 5061))
        kept = await read_tcp_messages(reader, channel, lambda data, _: seen.append(data),
                                       idle_timeout=5.0, in_use=lambda _: False)
        return kept, seen

    with caplog.at_level(logging.INFO):
        kept, seen = asyncio.run(scenario())
    assert kept is False and seen == []  # as for any Content-Length over the limit
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("Content-Length" in r.getMessage() for r in caplog.records)


def test_json_integer_of_thousands_of_digits_is_malformed() -> None:
    with pytest.raises(MalformedMessageError, match="malformed JSON"):
        load_json_object('{"a": ' + HUGE + "}")


def test_twilio_media_timestamp_of_thousands_of_digits_is_malformed() -> None:
    serializer = TwilioSerializer()
    serializer.deserialize(json.dumps({"event": "start", "start": {"streamSid": "MZ1", "tracks": ["inbound"]}}))
    media = '{"event": "media", "media": {"track": "inbound", "payload": "", "timestamp": ' + HUGE + "}}"
    with pytest.raises(MalformedMessageError):  # the transport closes 1007
        serializer.deserialize(media)


@pytest.mark.parametrize("text", ["PT" + "9" * 400 + "H", "PT" + "9" * 5000 + "M", "PT" + "9" * 5000 + "S",
                                  "PT99999999999999999999S"])
def test_audiohook_durations_of_absurd_length_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        parse_duration(text)


def test_audiohook_durations_of_ordinary_form_still_parse() -> None:
    assert parse_duration("PT1H2M3.5S") == pytest.approx(3723.5)
    assert parse_duration("PT0." + "5" * 5000 + "S") == pytest.approx(5 / 9)  # a long fraction is fine
    assert parse_duration("PT999999999999S") == 999999999999


def test_audiohook_resumed_with_a_huge_start_is_a_disconnect_with_the_reason() -> None:
    serializer = AudioHookSerializer()
    open_params = {"conversationId": "c1", "media": [
        {"type": "audio", "format": "PCMU", "rate": 8000, "channels": ["external", "internal"]}]}

    def message(seq: int, kind: str, parameters: dict[str, Any]) -> str:
        return json.dumps({"version": "2", "id": "s1", "type": kind, "seq": seq, "serverseq": 0,
                           "position": "PT0S", "parameters": parameters})

    serializer.deserialize(message(1, "open", open_params))
    serializer.deserialize(message(2, "paused", {}))
    serializer.take_replies()
    with pytest.raises(ProtocolError):
        serializer.deserialize(message(3, "resumed", {"start": "PT" + "9" * 5000 + "S", "discarded": "PT1S"}))
    (disconnect,) = [json.loads(r) for r in serializer.take_replies()]
    assert disconnect["type"] == "disconnect" and disconnect["parameters"]["reason"] == "error"
    assert "out of range" in disconnect["parameters"]["info"]
