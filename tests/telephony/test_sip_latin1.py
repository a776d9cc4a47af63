"""Header bytes that are not UTF-8 (a Latin-1 calling name from an older PBX or ISDN gateway)
are read as Latin-1, line by line: the INVITE is answered and recorded, not dropped unanswered."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from telephony.sip.message import parse_message, parse_name_addr, response_to
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, drain, sip_server

NAME = "Jos\xe9 M\xfcller"


def latin1_invite(port: int, peer_port: int, body: str = PCMU_OFFER.format(port=7000)) -> bytes:
    head = (
        f"INVITE sip:rec@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch=z9hG4bK{uuid.uuid4().hex[:10]}\r\n"
        f'From: "{NAME}" <sip:+4930123@127.0.0.1>;tag=abc\r\n'
        f"To: <sip:rec@127.0.0.1>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
        f"Subject: Gr\u00fc\u00dfe\r\n"  # this line is UTF-8 and stays so
        f"Contact: <sip:peer@127.0.0.1:{peer_port}>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    lines = head.split("\r\n")
    raw = b"\r\n".join(line.encode("utf-8" if line.startswith("Subject") else "latin-1") for line in lines)
    return raw + body.encode()


@pytest.mark.unit
def test_latin1_header_line_is_read_as_latin1_and_utf8_lines_as_utf8() -> None:
    message = parse_message(latin1_invite(5060, 5061))
    assert parse_name_addr(message.get("From") or "").display == NAME
    assert message.get("Subject") == "Gr\u00fc\u00dfe"
    assert b"Jos\xc3\xa9" in response_to(message, 400, "Bad Request").to_bytes()  # our responses are UTF-8


@pytest.mark.e2e
def test_invite_with_a_latin1_display_name_is_answered_and_recorded() -> None:
    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            peer.send_raw(latin1_invite(server.ports["udp"], peer.local_port))
            seen = await drain(peer, 0.5)
            return [m.status for m in seen], server.stats.unreadable, handler.calls

    statuses, unreadable, calls = run(scenario())
    assert statuses[:2] == [100, 200] and unreadable == 0
    (call,) = calls
    assert NAME in call.started.metadata["from"]


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
