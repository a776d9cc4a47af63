"""SIPREC legs get unique names when two a=label values clean to the same one ("a b" and "a_b",
or a label repeated): else the second RTP receiver replaced the first, whose port stayed bound
after BYE and whose audio never ended."""

from __future__ import annotations

import asyncio
import socket

import pytest

from telephony.settings import TelephonySettings
from telephony.sip.mapping import plan_call
from telephony.sip.message import SipMessage
from telephony.sip.sdp import negotiate, parse_sdp
from tests.telephony.sip_peer import SipPeer, sip_server

SDP = (
    "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 7000 RTP/AVP 0\r\na=label:{a}\r\na=sendonly\r\n"
    "m=audio 7002 RTP/AVP 0\r\na=label:{b}\r\na=sendonly\r\n"
    "m=audio 7004 RTP/AVP 0\r\na=label:{c}\r\na=sendonly\r\n"
)


def bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@pytest.mark.unit
@pytest.mark.parametrize(
    ("labels", "legs"),
    [
        (("a b", "a_b", "a?b"), ["label-a_b", "label-a_b-2", "label-a_b-3"]),
        (("7", "7", "7-2"), ["label-7", "label-7-2", "label-7-2-2"]),
        (("1", "2", "3"), ["label-1", "label-2", "label-3"]),
    ],
)
def test_labels_that_clean_to_one_name_get_unique_legs(labels: tuple[str, str, str], legs: list[str]) -> None:
    invite = SipMessage(method="INVITE", uri="sip:srs@rec", headers=[("Call-ID", "c1"), ("Require", "siprec")])
    offer = parse_sdp(SDP.format(a=labels[0], b=labels[1], c=labels[2]))
    plan = plan_call(invite, negotiate(offer), None, TelephonySettings())
    assert [leg.leg for leg in plan.legs] == legs


@pytest.mark.e2e
def test_every_colliding_stream_gets_a_receiver_and_bye_frees_every_port() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            ok, _ = await peer.invite(SDP.format(a="a b", b="a_b", c="x"), headers={"Require": "siprec"})
            ports = [m.port for m in parse_sdp(ok.body).media]
            receivers = len(next(iter(server.calls.values())).receivers)
            peer.request("BYE", cseq=2)
            await peer.response(200)
            await asyncio.sleep(0.1)
            return ports, receivers, [bound(port) for port in ports]

    ports, receivers, still_bound = asyncio.run(asyncio.wait_for(scenario(), 10.0))
    assert len(set(ports)) == 3 and receivers == 3
    assert still_bound == [False, False, False]
