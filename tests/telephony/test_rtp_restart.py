"""JitterBuffer sequence restarts per RFC 3550 A.1: probation after a large jump."""

from __future__ import annotations

import pytest

from telephony.rtp import JitterBuffer, RtpPacket

pytestmark = pytest.mark.unit


def packet(seq: int) -> RtpPacket:
    return RtpPacket(
        payload_type=0, sequence=seq & 0xFFFF, timestamp=seq * 160, ssrc=7, payload=b"\xff" * 160
    )


def feed(buffer: JitterBuffer, seqs: list[int], start: float = 0.0) -> list[int]:
    out: list[RtpPacket] = []
    for i, seq in enumerate(seqs):
        now = start + i * 0.02
        out += buffer.push(packet(seq), now) + buffer.poll(now)
    return [p.sequence for p in out]


def test_backward_jump_under_max_dropout_restarts_after_two_in_order_packets() -> None:
    # An SBC re-anchors media with the same SSRC, numbering 500 lower.
    buffer = JitterBuffer(max_delay=0.06)
    first = feed(buffer, list(range(1000, 1100)))
    second = feed(buffer, list(range(500, 1000)), start=10.0)
    assert first + second == list(range(1000, 1100)) + list(range(500, 1000))
    assert buffer.stats.restarts == 1
    assert buffer.stats.late == 0 and buffer.stats.lost == 0


def test_backward_restart_across_wraparound_keeps_order() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    feed(buffer, list(range(2000, 2010)))
    out = feed(buffer, [65534, 65535, 0, 1], start=1.0)
    assert out == [65534, 65535, 0, 1]
    assert buffer.stats.restarts == 1


def test_a_lone_stray_packet_far_back_is_dropped_without_a_restart() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = feed(buffer, [*range(1000, 1010), 400, *range(1010, 1020), 700])
    out += [p.sequence for p in buffer.flush()]
    assert out == list(range(1000, 1020))
    assert buffer.stats.restarts == 0 and buffer.stats.lost == 0


def test_a_lone_packet_far_ahead_does_not_flush_or_restart_the_stream() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = feed(buffer, [*range(10, 20), 40000, *range(20, 30)])
    out += [p.sequence for p in buffer.flush()]
    assert out == list(range(10, 30))
    assert buffer.stats.restarts == 0 and buffer.stats.lost == 0


def test_a_step_back_within_max_misorder_is_not_a_restart() -> None:
    buffer = JitterBuffer(max_delay=0.06)
    out = feed(buffer, [*range(100, 150), 120, 121, 150])
    assert out == list(range(100, 151))
    assert buffer.stats.duplicate == 2 and buffer.stats.restarts == 0
