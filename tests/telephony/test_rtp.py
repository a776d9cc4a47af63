"""RTP packets, the reorder/jitter buffer (manual clock) and RFC 4733 DTMF dedupe."""

from __future__ import annotations

import pytest

from telephony.errors import RtpParseError
from telephony.rtp import DtmfDetector, JitterBuffer, RtpPacket, TelephoneEvent

pytestmark = pytest.mark.unit


def packet(
    seq: int,
    ts: int | None = None,
    *,
    pt: int = 0,
    payload: bytes = b"\xff" * 160,
    ssrc: int = 0x1234,
) -> RtpPacket:
    return RtpPacket(
        payload_type=pt,
        sequence=seq & 0xFFFF,
        timestamp=(seq * 160 if ts is None else ts),
        ssrc=ssrc,
        payload=payload,
    )


# --- packets ---------------------------------------------------------------------------------


def test_parse_build_round_trip_with_csrc_extension_and_padding() -> None:
    original = RtpPacket(
        payload_type=8,
        sequence=65535,
        timestamp=0xFFFFFFF0,
        ssrc=0xDEE0EE8F,
        payload=b"abc",
        marker=True,
        csrcs=(1, 2),
        extension=(0xBEDE, b"\x01\x02\x03\x04"),
        padding=4,
    )
    data = original.build()
    assert len(data) == 12 + 8 + 4 + 4 + 3 + 4
    assert RtpPacket.parse(data) == original


def test_parse_known_header_bytes() -> None:
    data = bytes.fromhex("80 08 00 01 00 00 00 f0 de e0 ee 8f") + b"\xd5" * 240
    parsed = RtpPacket.parse(data)
    assert (parsed.payload_type, parsed.sequence, parsed.timestamp, parsed.ssrc) == (
        8,
        1,
        240,
        0xDEE0EE8F,
    )
    assert len(parsed.payload) == 240 and not parsed.marker


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x00\x00",  # shorter than a header
        bytes.fromhex("40 00 00 01 00 00 00 00 00 00 00 01"),  # version 1
        bytes.fromhex("82 00 00 01 00 00 00 00 00 00 00 01") + b"\x00" * 4,  # CSRC count past end
        bytes.fromhex("90 00 00 01 00 00 00 00 00 00 00 01 be de 00 05"),  # extension past end
        bytes.fromhex("a0 00 00 01 00 00 00 00 00 00 00 01 00 00 00 09"),  # padding past end
    ],
)
def test_malformed_packets_raise(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse(data)


# --- jitter buffer ---------------------------------------------------------------------------


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence for p in packets]


def test_in_order_packets_flow_after_the_first_ones() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = []
    for n in range(10):
        out += buffer.push(packet(n), now=n * 0.02)
    assert seqs(out) == list(range(10))
    assert buffer.stats.lost == buffer.stats.late == buffer.stats.duplicate == 0


def test_reordered_packets_come_out_in_order_without_loss() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    arrival = [0, 1, 2, 4, 3, 5, 7, 6, 8, 9]
    out = []
    for i, n in enumerate(arrival):
        out += buffer.push(packet(n), now=i * 0.02)
    out += buffer.flush()
    assert seqs(out) == list(range(10))
    assert buffer.stats.lost == 0 and buffer.stats.reordered == 2


def test_a_gap_is_given_up_after_max_delay_and_counted_lost() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = []
    for i, n in enumerate([0, 1, 2, 5, 6]):
        out += buffer.push(packet(n), now=i * 0.02)
    assert seqs(out) == [0, 1, 2]  # 3 and 4 still awaited
    out += buffer.poll(now=0.06 + 0.06 - 0.001)
    assert seqs(out) == [0, 1, 2]
    out += buffer.poll(now=0.06 + 0.06)
    assert seqs(out) == [0, 1, 2, 5, 6]
    assert buffer.stats.lost == 2
    assert buffer.push(packet(3), now=0.2) == []  # arrives after being given up
    assert buffer.stats.late == 1


def test_duplicates_are_dropped_whether_held_or_released() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = []
    for i, n in enumerate([0, 1, 2, 2, 4, 4, 1]):
        out += buffer.push(packet(n), now=i * 0.02)
    out += buffer.flush()
    assert seqs(out) == [0, 1, 2, 4]
    assert buffer.stats.duplicate == 3 and buffer.stats.lost == 1


def test_sequence_wraparound_keeps_order() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    arrival = [65533, 65534, 65535, 1, 0, 2, 3]
    out = []
    for i, n in enumerate(arrival):
        out += buffer.push(packet(n, ts=i * 160), now=i * 0.02)
    out += buffer.flush()
    assert seqs(out) == [65533, 65534, 65535, 0, 1, 2, 3]
    assert buffer.stats.lost == 0


def test_a_big_sequence_jump_is_a_restart_not_thousands_of_losses() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = []
    for i, n in enumerate([10, 11, 12, 30000, 30001, 30002]):
        out += buffer.push(packet(n), now=i * 0.02)
    out += buffer.flush()
    assert seqs(out) == [10, 11, 12, 30000, 30001, 30002]
    assert buffer.stats.restarts == 1 and buffer.stats.lost == 0


def test_max_packets_bounds_the_buffer_without_time_passing() -> None:
    buffer = JitterBuffer(max_delay=10.0, max_packets=5)
    out = (
        buffer.push(packet(0), now=0.0)
        + buffer.push(packet(1), now=0.0)
        + buffer.push(packet(2), now=0.0)
    )
    for n in range(4, 10):  # 3 never comes
        out += buffer.push(packet(n), now=0.0)
    assert seqs(out)[:3] == [0, 1, 2] and 4 in seqs(out)
    assert buffer.stats.lost == 1


# --- RFC 4733 ---------------------------------------------------------------------------------


def event(ts: int, digit_code: int, *, end: bool, duration: int, seq: int) -> RtpPacket:
    payload = TelephoneEvent(event=digit_code, end=end, volume=10, duration=duration).build()
    return packet(seq, ts=ts, pt=101, payload=payload)


def test_end_packet_sent_three_times_reports_one_digit() -> None:
    detector = DtmfDetector()
    digits = []
    for n, duration in enumerate([160, 320, 480]):
        digits += detector.push(event(8000, 1, end=False, duration=duration, seq=n))
    for n in range(3):
        digits += detector.push(event(8000, 1, end=True, duration=640, seq=3 + n))
    assert digits == [("1", 8000)]


def test_same_digit_twice_is_two_events_by_timestamp() -> None:
    detector = DtmfDetector()
    digits = []
    for ts in (8000, 16000):
        for n in range(3):
            digits += detector.push(event(ts, 11, end=True, duration=640, seq=ts + n))
    assert digits == [("#", 8000), ("#", 16000)]


def test_digit_whose_end_packets_were_lost_is_reported_when_the_next_starts_or_at_flush() -> None:
    detector = DtmfDetector()
    digits = detector.push(event(8000, 5, end=False, duration=160, seq=1))
    digits += detector.push(event(16000, 10, end=False, duration=160, seq=2))
    assert digits == [("5", 8000)]
    assert detector.flush() == [("*", 16000)]


def test_truncated_event_payload_raises() -> None:
    with pytest.raises(RtpParseError):
        TelephoneEvent.parse(b"\x01\x8a")
