"""The RTP receiver latches the first source (symmetric RTP, NAT), but the address the far end's
SDP names wins when it sends later: a stranger's early packets cannot keep a call's media."""

from __future__ import annotations

import pytest

from telephony.rtp import RtpPacket
from telephony.sip.media import RtpReceiver, RtpStreamDecoder
from telephony.sip.sdp import MediaChoice, MediaDescription
from voice.frames import Frame

pytestmark = pytest.mark.unit
DECLARED = ("127.0.0.1", 4000)
STRANGER = ("127.0.0.1", 5555)


def _receiver(remote: tuple[str, int]) -> RtpReceiver:
    media = MediaDescription("audio", remote[1], "RTP/AVP", ["0"])
    decoder = RtpStreamDecoder("customer", MediaChoice(0, media, "PCMU", 0, None), 8000)
    emitted: list[Frame] = []
    rx = RtpReceiver(decoder, emitted.extend, lambda: 0.0, jitter_delay=0.06)
    rx.remote = remote
    return rx


def _send(rx: RtpReceiver, source: tuple[str, int], ssrc: int, seqs: range) -> None:
    for seq in seqs:
        packet = RtpPacket(payload_type=0, sequence=seq, timestamp=seq * 160, ssrc=ssrc, payload=b"\xff" * 160)
        rx.datagram_received(packet.build(), source)


def test_the_sdp_address_takes_the_media_back_from_a_stranger_who_sent_first() -> None:
    rx = _receiver(DECLARED)
    _send(rx, STRANGER, 0xBAD, range(5))  # arrives first: latched, as a NAT'd phone would be
    _send(rx, DECLARED, 0x600D, range(100, 120))  # the real far end starts
    _send(rx, STRANGER, 0xBAD, range(5, 12))
    assert rx.stats.packets == 5 + 20 and rx.stats.stray == 7  # the stranger's later packets dropped


def test_a_phone_behind_nat_keeps_its_latched_source() -> None:
    rx = _receiver(("10.1.2.3", 4000))  # a private address the phone never sends from
    _send(rx, DECLARED, 0x600D, range(20))
    _send(rx, STRANGER, 0xBAD, range(7))
    assert rx.stats.packets == 20 and rx.stats.stray == 7
