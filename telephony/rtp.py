"""RTP (RFC 3550) packets, a per-SSRC reorder/jitter buffer, and RFC 4733 telephone events.

Why our own: the header is 12 bytes plus three optional parts, and the buffer's policy (how long
to wait, what counts as lost, late or duplicate) is ours to choose and to test; the PyPI ``rtp``
package (0.0.4) parses headers only. Everything here is synchronous and takes the time as an
argument, so tests drive it with a manual clock.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from telephony.errors import RtpParseError

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
MAX_DROPOUT = 3000
"""A forward sequence jump beyond this many packets may be a restarted stream (RFC 3550 A.1)."""
MAX_MISORDER = 100
"""A backward jump beyond this many packets may be a restarted stream, not a late packet (A.1)."""
DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 events 0-15 as keypad characters."""
REPORTED_KEPT = 16
"""Events a :class:`DtmfDetector` remembers after reporting them: their repeated end packets are
dropped, and their durations can be asked for."""


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the count of padding bytes (0: none)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    """(profile-defined id, extension data whose length is a multiple of 4)."""
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a datagram.

        Raises:
            RtpParseError: not RTP version 2, or lengths that do not add up.
        """
        if len(data) < _HEADER.size:
            raise RtpParseError(f"{len(data)} bytes is shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTP version {first >> 6}, expected 2")
        offset = _HEADER.size
        csrc_count = first & 0x0F
        if len(data) < offset + 4 * csrc_count:
            raise RtpParseError("CSRC list runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
        offset += 4 * csrc_count
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpParseError("extension header runs past the end of the packet")
            profile, words = struct.unpack_from("!HH", data, offset)
            offset += 4
            if len(data) < offset + 4 * words:
                raise RtpParseError("extension runs past the end of the packet")
            extension = (profile, bytes(data[offset : offset + 4 * words]))
            offset += 4 * words
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > end:
                raise RtpParseError(f"bad padding length {padding}")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            marker=bool(second & 0x80),
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )

    def build(self) -> bytes:
        """Serialize the packet (the inverse of :meth:`parse`)."""
        first = RTP_VERSION << 6 | len(self.csrcs)
        first |= 0x10 if self.extension is not None else 0
        first |= 0x20 if self.padding else 0
        second = self.payload_type & 0x7F | (0x80 if self.marker else 0)
        parts = [
            _HEADER.pack(
                first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
            )
        ]
        parts += [struct.pack("!I", csrc) for csrc in self.csrcs]
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise ValueError("RTP extension data must be a multiple of 4 bytes")
            parts.append(struct.pack("!HH", profile, len(data) // 4) + data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


# --- reorder / jitter buffer ----------------------------------------------------------------


@dataclass
class JitterStats:
    """What one SSRC's buffer saw.

    ``lost`` counts sequence numbers given up on; a packet that arrives after its number was
    given up is ``late`` (and dropped), one seen twice is a ``duplicate``.
    """

    received: int = 0
    released: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    reordered: int = 0
    restarts: int = 0


@dataclass(order=True)
class _Held:
    sequence: int
    arrived: float = field(compare=False)
    packet: RtpPacket = field(compare=False)


class JitterBuffer:
    """Releases one SSRC's packets in sequence order, waiting at most ``max_delay`` for a gap.

    A missing packet holds back its successors until the oldest of them has waited
    ``max_delay`` seconds or ``max_packets`` are held; then it is counted lost and skipped.
    Sequence numbers are extended past 16-bit wrap-around. Call :meth:`poll` periodically so a
    gap is given up on even when no new packet arrives.

    A jump of more than ``MAX_DROPOUT`` forward or ``MAX_MISORDER`` backward puts the packet on
    probation, as RFC 3550 A.1 does: if the next jumped packet follows it in sequence, the
    sender restarted its numbering, and the buffer restarts at the first of the two.
    """

    def __init__(self, *, max_delay: float = 0.06, max_packets: int = 64) -> None:
        self.max_delay = max_delay
        self.max_packets = max_packets
        self.stats = JitterStats()
        self._held: dict[int, _Held] = {}
        self._next: int | None = None  # extended sequence number to release next
        self._highest: int | None = None  # highest extended sequence number seen
        self._recent: deque[int] = deque(maxlen=256)
        self._recent_set: set[int] = set()
        self._probation: _Held | None = None  # the last packet after a large jump (A.1 bad_seq)

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        """Add an arrived packet; returns the packets now releasable, in order."""
        self.stats.received += 1
        extended = self._extend(packet.sequence)
        if self._highest is not None and not (
            -MAX_MISORDER <= extended - self._highest <= MAX_DROPOUT
        ):
            return self._on_jump(packet, now)
        return self._accept(extended, packet, now)

    def poll(self, now: float) -> list[RtpPacket]:
        """Packets releasable at ``now`` because a gap waited long enough."""
        return self._release(now)

    def flush(self) -> list[RtpPacket]:
        """Release everything held, in order, counting the remaining gaps as lost."""
        released: list[RtpPacket] = []
        for sequence in sorted(self._held):
            if self._next is not None and sequence > self._next:
                self.stats.lost += sequence - self._next
            released.append(self._take(sequence))
        return released

    def _on_jump(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        probe = self._probation
        if probe is None or packet.sequence != (probe.packet.sequence + 1) & 0xFFFF:
            if probe is not None:
                self.stats.late += 1  # a lone stray packet: dropped
            self._probation = _Held(packet.sequence, now, packet)
            return []
        # Two in-order packets after the jump: the sender restarted its numbering (RFC 3550
        # A.1). Why restart rather than wait: a backward jump would otherwise be "late" until
        # the new numbers pass the old ones, which drops seconds of audio.
        released = self.flush()
        self.stats.restarts += 1
        self._probation = None
        self._recent.clear()
        self._recent_set.clear()
        start = probe.packet.sequence  # re-based: extended numbers start over here
        self._next = self._highest = start
        released += self._accept(start, probe.packet, probe.arrived)
        return released + self._accept(start + 1, packet, now)

    def _accept(self, extended: int, packet: RtpPacket, now: float) -> list[RtpPacket]:
        if extended in self._held or extended in self._recent_set:
            self.stats.duplicate += 1
            return []
        if self._next is not None and extended < self._next:
            self.stats.late += 1
            return []
        if self._highest is not None and extended < self._highest:
            self.stats.reordered += 1
        self._highest = extended if self._highest is None else max(self._highest, extended)
        self._held[extended] = _Held(extended, now, packet)
        return self._release(now)

    def _release(self, now: float) -> list[RtpPacket]:
        released: list[RtpPacket] = []
        while self._held:
            if self._next is None:
                if not self._waited_enough(now) and len(self._held) < 3:
                    break  # hold the very first packets briefly: they may arrive out of order
                self._next = min(self._held)
            if self._next in self._held:
                released.append(self._take(self._next))
            elif self._waited_enough(now):
                oldest = min(self._held)
                self.stats.lost += oldest - self._next
                self._next = oldest
            else:
                break
        return released

    def _waited_enough(self, now: float) -> bool:
        if len(self._held) >= self.max_packets:
            return True
        return now - min(held.arrived for held in self._held.values()) >= self.max_delay

    def _take(self, extended: int) -> RtpPacket:
        held = self._held.pop(extended)
        self._next = extended + 1
        self.stats.released += 1
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(extended)
        self._recent_set.add(extended)
        return held.packet

    def _extend(self, sequence: int) -> int:
        reference = self._highest if self._highest is not None else sequence
        delta = (sequence - reference + 0x8000) % 0x10000 - 0x8000
        return reference + delta


# --- RFC 4733 telephone events ----------------------------------------------------------------


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 payload: event code, end bit, volume (-dBm0) and duration (timestamp units)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first 4-byte event block (redundant blocks, rare in practice, are ignored)."""
        if len(payload) < 4:
            raise RtpParseError(f"telephone-event payload of {len(payload)} bytes (need 4)")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def build(self) -> bytes:
        """Serialize (for tests and scripted peers)."""
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )

    @property
    def digit(self) -> str | None:
        """The keypad character, or ``None`` for non-DTMF events (flash, tones)."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


class DtmfDetector:
    """Turns one stream's telephone-event packets into digits, each reported exactly once.

    An event is identified by its RTP timestamp (RFC 4733 2.5.1.3); senders repeat its end packet
    three times. A digit is reported at its first end packet, or when a new event starts before
    any end packet of the previous one arrived (all of them lost). Its duration, which the
    end packet carries in full (the others so far), is kept for :meth:`duration_of`.
    """

    def __init__(self) -> None:
        self._current: int | None = None  # timestamp of the event in progress
        self._current_digit: str | None = None
        self._current_duration = 0
        self._reported: dict[int, int] = {}  # timestamp -> duration of the last REPORTED_KEPT events

    def push(self, packet: RtpPacket) -> list[tuple[str, int]]:
        """Digits completed by ``packet`` as (digit, event start timestamp) pairs."""
        event = TelephoneEvent.parse(packet.payload)
        completed: list[tuple[str, int]] = []
        if packet.timestamp in self._reported:
            return completed  # a repeated end packet, or a straggler of a reported event
        if packet.timestamp != self._current:
            if self._current is not None:
                completed += self._report_current()
            self._current_duration = 0
        self._current, self._current_digit = packet.timestamp, event.digit
        self._current_duration = max(self._current_duration, event.duration)  # reordered packets
        if event.end:
            completed += self._report_current()
        return completed

    def flush(self) -> list[tuple[str, int]]:
        """End of stream: report an event whose end packets never came."""
        return self._report_current() if self._current is not None else []

    def duration_of(self, timestamp: int) -> int | None:
        """Duration in timestamp units of the reported event that started at ``timestamp`` (its
        end packet's, or the longest seen when its end packets were lost); ``None`` if unknown."""
        return self._reported.get(timestamp)

    def _report_current(self) -> list[tuple[str, int]]:
        timestamp, digit = self._current, self._current_digit
        self._current = self._current_digit = None
        assert timestamp is not None
        self._reported[timestamp] = self._current_duration
        if len(self._reported) > REPORTED_KEPT:
            del self._reported[next(iter(self._reported))]
        return [(digit, timestamp)] if digit is not None else []
