"""rs-metadata that declares an XML encoding Python does not know is the sender's error: a
ProtocolError, so the INVITE gets 400 (it raised LookupError and got 500)."""

from __future__ import annotations

import asyncio

import pytest

from telephony.errors import ProtocolError
from telephony.sip.siprec import parse_metadata
from tests.telephony.sip_peer import SipPeer, drain, sip_server

NS = "urn:ietf:params:xml:ns:recording:1"
XML = f'<?xml version="1.0" encoding="UTF8-BOGUS"?><recording xmlns="{NS}"><datamode>complete</datamode></recording>'
SDP = (
    "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 7000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
)
BODY = (
    f"--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1\r\n"
    f"Content-Type: application/rs-metadata+xml\r\n\r\n{XML}\r\n--b1--\r\n"
)


@pytest.mark.unit
def test_unknown_declared_encoding_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="cannot be read"):
        parse_metadata(XML.encode())


@pytest.mark.e2e
def test_invite_with_metadata_in_an_unknown_encoding_gets_400() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            headers = {"Content-Type": "multipart/mixed;boundary=b1", "Require": "siprec"}
            peer.request("INVITE", body=BODY, headers=headers)
            return [m.status for m in await drain(peer, 0.3)], dict(server.calls)

    statuses, calls = asyncio.run(asyncio.wait_for(scenario(), 10.0))
    assert statuses[:2] == [100, 400] and 500 not in statuses
    assert calls == {}
