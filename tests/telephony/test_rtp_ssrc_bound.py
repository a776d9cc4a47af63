"""RtpReceiver keeps per-SSRC state for a bounded number of SSRCs (least recently heard go)."""

from __future__ import annotations

import pytest

from telephony.rtp import RtpPacket, TelephoneEvent
from telephony.sip.media import MAX_SSRCS, RtpReceiver, RtpStreamDecoder
from telephony.sip.sdp import MediaChoice, MediaDescription
from voice.frames import AudioFrame, DtmfFrame, Frame

pytestmark = pytest.mark.unit
SOURCE = ("127.0.0.1", 4000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def receiver(clock: Clock, emitted: list[Frame]) -> RtpReceiver:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
    choice = MediaChoice(0, media, "PCMU", 0, 101)
    decoder = RtpStreamDecoder("mixed", choice, 8000)
    return RtpReceiver(decoder, emitted.extend, clock, jitter_delay=0.06)


def send(rx: RtpReceiver, clock: Clock, ssrc: int, seq: int, *, pt: int = 0, payload: bytes = b"\xff" * 160) -> None:
    clock.now += 0.02
    packet = RtpPacket(payload_type=pt, sequence=seq, timestamp=seq * 160, ssrc=ssrc, payload=payload)
    rx.datagram_received(packet.build(), SOURCE)


def test_an_ssrc_per_packet_does_not_grow_the_state() -> None:
    clock, emitted = Clock(), []
    rx = receiver(clock, emitted)
    for n in range(2000):
        send(rx, clock, ssrc=n, seq=n)
    assert len(rx._buffers) <= MAX_SSRCS
    assert len(rx.decoder._origin) <= MAX_SSRCS and len(rx.decoder._last_ts) <= MAX_SSRCS
    rx.poll()
    rx.finish()
    # Evicted buffers were flushed, not thrown away: every packet's stats and audio survive.
    assert rx.stats.jitter.received == 2000
    assert rx.stats.jitter.released == 2000


def test_a_steady_stream_survives_ssrc_churn_and_a_pending_digit_is_reported() -> None:
    clock, emitted = Clock(), []
    rx = receiver(clock, emitted)
    digit = TelephoneEvent(event=5, end=False, volume=10, duration=160).build()
    send(rx, clock, ssrc=1, seq=0, pt=101, payload=digit)  # the digit's end packets never come
    for n in range(1, 300):
        send(rx, clock, ssrc=7, seq=n)  # the real stream, heard all along
        send(rx, clock, ssrc=1000 + n, seq=n)  # noise: a new SSRC every packet
        rx.poll()
    assert 7 in rx._buffers  # the most recently heard stream keeps its slot
    frames = emitted + rx.finish()
    assert [f.digit for f in frames if isinstance(f, DtmfFrame)] == ["5"]
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    assert sum(f.duration for f in audio) >= 299 * 0.02 - 1e-6
