"""RTP reception for SIP calls: one UDP receiver per accepted m-line.

The receiver only moves bytes: it latches onto the first source that sends to its port, counts
and drops everything else (stray datagrams, other sources, payload types we did not negotiate),
keeps one :class:`~telephony.rtp.JitterBuffer` per SSRC, and hands released packets to a
:class:`RtpStreamDecoder`, which owns the payload formats (G.711, RFC 4733) and the timeline:
a stream's first packet is placed at its arrival time on the call clock, later packets by their
RTP timestamps, so lost packets and silence suppression become silence of the right length.
A packet whose timestamp places it well ahead of its arrival, or an audio packet whose timestamp
went well back, shows a new timestamp base on the same SSRC (RFC 3550 5.1: an SBC re-anchoring media,
a switch of media source): the SSRC is re-anchored at that packet's arrival, as a new SSRC is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from telephony import codecs
from telephony.errors import RtpParseError
from telephony.legs import LegAudio
from telephony.rtp import DtmfDetector, JitterBuffer, JitterStats, RtpPacket
from telephony.sip.sdp import MediaChoice
from voice.frames import DtmfFrame, EndOfInputFrame, Frame

log = logging.getLogger(__name__)
CLOCK_RATE = 8000
MAX_SSRCS = 8
"""SSRCs tracked per port. Why a bound: a source that changes SSRC per packet would otherwise
grow the call's state and its 20 ms poll without limit (20,000 SSRCs: a 600 ms poll). Real
streams use one, or a few after re-anchoring; the least recently heard one is dropped."""
MAX_TIMESTAMP_LEAD = 1.0
"""Seconds a packet's timestamp may place it ahead of its arrival before its SSRC is re-anchored.

Why this is safe: audio cannot arrive before it was sent, so an honest stream runs ahead of its
arrival only by how much later its anchoring packet travelled than this one (network jitter,
tens of ms) plus clock drift (0.1 %: 1 s after 17 min, and re-anchoring then costs only that
second's overlap). Silence suppression advances arrival and timestamps together, and a network
stall makes packets arrive late, never early: neither is re-anchored. Why 1 s: well above jitter,
well below the elapsed call time a new timestamp base (RFC 3550 5.1) throws the timeline ahead by.
"""
ARRIVALS_KEPT = 1024
"""Arrival times remembered for packets not decoded yet. Why a bound: a dropped packet (late,
duplicate, stray after a jump) is never decoded; more than the jitter buffers of ``MAX_SSRCS``
SSRCs hold (64 packets each)."""


@dataclass
class ReceiverStats:
    """Counters of one RTP port."""

    packets: int = 0
    stray: int = 0
    """Datagrams dropped: not RTP, from an unlatched source, or an unnegotiated payload type."""
    jitter: JitterStats = field(default_factory=JitterStats)


class RtpStreamDecoder:
    """RTP payloads of one leg -> ``AudioFrame``/``DtmfFrame`` (the RTP 'serializer')."""

    def __init__(self, leg: str, choice: MediaChoice, out_rate: int) -> None:
        self.leg = leg
        self.codec = choice.codec or "PCMU"
        self.audio_pt = choice.payload_type
        self.dtmf_pt = choice.dtmf_payload_type
        self.audio = LegAudio(leg, CLOCK_RATE, out_rate)
        self._dtmf: dict[int, DtmfDetector] = {}
        self._origin: dict[int, tuple[float, int]] = {}  # ssrc -> (position, timestamp)
        self._last_ts: dict[int, int] = {}
        self._arrivals: dict[tuple[int, int], float] = {}  # (ssrc, sequence) -> call clock
        self.reanchors = 0
        """Times an SSRC's timestamps were re-anchored to the call clock (a new timestamp base)."""

    def note_arrival(self, packet: RtpPacket, position: float) -> None:
        """Anchor a new SSRC's timestamps to the call clock at its first arrival.

        Also remembers when the packet arrived, so :meth:`decode` can tell a new timestamp base
        on the same SSRC from silence suppression (whose gap passed on the call clock too).
        """
        if packet.ssrc not in self._origin:
            self._origin[packet.ssrc] = (max(position, 0.0), packet.timestamp)
            self._last_ts[packet.ssrc] = packet.timestamp
        key = (packet.ssrc, packet.sequence)
        # Re-inserted, not kept: after a sequence restart, a number may come back while the
        # arrival of a dropped packet with that number is still here.
        self._arrivals.pop(key, None)
        self._arrivals[key] = position
        if len(self._arrivals) > ARRIVALS_KEPT:
            del self._arrivals[next(iter(self._arrivals))]

    def decode(self, packet: RtpPacket) -> list[Frame]:
        """Frames carried by one in-order packet."""
        position = self._position(packet, self._arrivals.pop((packet.ssrc, packet.sequence), None))
        if packet.payload_type == self.dtmf_pt:
            detector = self._dtmf.setdefault(packet.ssrc, DtmfDetector())
            return [self._dtmf_frame(digit, ts, packet.ssrc, detector) for digit, ts in detector.push(packet)]
        pcm = codecs.decode(self.codec, packet.payload)
        return list(self.audio.push(pcm, position))

    def finish(self, audio_time: float) -> list[Frame]:
        """End of the leg: pending digits, the resampler's tail, then ``EndOfInputFrame``."""
        frames: list[Frame] = []
        for ssrc, detector in self._dtmf.items():
            frames += [self._dtmf_frame(digit, ts, ssrc, detector) for digit, ts in detector.flush()]
        frames += self.audio.flush()
        frames.append(
            EndOfInputFrame(leg=self.leg, audio_time=max(audio_time, self.audio.next_position))
        )
        return frames

    def forget(self, ssrc: int) -> list[Frame]:
        """Drop one SSRC's state (a newer SSRC took its slot); returns its pending digit."""
        detector = self._dtmf.pop(ssrc, None)
        frames: list[Frame] = []
        if detector is not None:
            frames = [self._dtmf_frame(digit, ts, ssrc, detector) for digit, ts in detector.flush()]
        self._origin.pop(ssrc, None)
        self._last_ts.pop(ssrc, None)
        for key in [key for key in self._arrivals if key[0] == ssrc]:
            del self._arrivals[key]
        return frames

    def _position(self, packet: RtpPacket, arrival: float | None) -> float:
        """Call-clock position of ``packet``: its timestamp read from the SSRC's origin.

        ``arrival`` (``None``: unknown) re-anchors the origin when the timestamps show a new base.
        """
        origin_position, origin_ts = self._origin.setdefault(
            packet.ssrc, (self.audio.next_position, packet.timestamp)
        )
        # Unwrap 32-bit timestamps relative to the previous packet of this SSRC.
        last = self._last_ts.get(packet.ssrc, origin_ts)
        delta = (packet.timestamp - last + 0x80000000) % 0x100000000 - 0x80000000
        unwrapped = last + delta
        self._last_ts[packet.ssrc] = unwrapped
        position = origin_position + (unwrapped - origin_ts) / CLOCK_RATE
        if arrival is None:
            return position
        arrival = max(arrival, 0.0)  # a packet before the answer counts from 0, as its SSRC's anchor
        # Why audio only, and by more than the lead: telephone-event packets all carry their
        # event's start timestamp, which lies behind audio sent meanwhile; a smaller step back
        # (a sender's odd event timestamps) is kept contiguous by LegAudio.
        went_back = delta < -MAX_TIMESTAMP_LEAD * CLOCK_RATE and packet.payload_type != self.dtmf_pt
        if position - arrival > MAX_TIMESTAMP_LEAD or went_back:
            # A new timestamp base on the same SSRC (RFC 3550 5.1). Read from the old origin, a
            # forward one would put the rest of the leg ahead of the other legs by up to the
            # call's length; a backward one (which LegAudio keeps contiguous) would stay behind
            # the call clock, so a later forward one would not be seen as ahead of arrival.
            position = arrival
            self._origin[packet.ssrc] = (position, unwrapped)
            self.reanchors += 1
            log.info("leg %s: SSRC %08x started a new timestamp base; re-anchored at %.2f s",
                     self.leg, packet.ssrc, position)
        return position

    def _dtmf_frame(self, digit: str, timestamp: int, ssrc: int, detector: DtmfDetector) -> DtmfFrame:
        """The digit at its tone's start on the leg's timeline, with the tone's duration (redaction
        silences the tone where a peer sends it in-band too)."""
        origin_position, origin_ts = self._origin.get(ssrc, (0.0, timestamp))
        delta = (timestamp - origin_ts + 0x80000000) % 0x100000000 - 0x80000000
        units = detector.duration_of(timestamp)
        return DtmfFrame(digit=digit, leg=self.leg, audio_time=origin_position + delta / CLOCK_RATE,
                         duration=None if units is None else units / CLOCK_RATE, at_tone_start=True)


class RtpReceiver(asyncio.DatagramProtocol):
    """One RTP port of one call."""

    def __init__(
        self,
        decoder: RtpStreamDecoder,
        emit: Callable[[list[Frame]], None],
        clock: Callable[[], float],
        *,
        jitter_delay: float,
    ) -> None:
        self.decoder = decoder
        self.stats = ReceiverStats()
        self.last_packet_at = clock()
        self._emit = emit
        self._clock = clock  # call clock: seconds since the call was answered
        self._jitter_delay = jitter_delay
        self._buffers: dict[int, JitterBuffer] = {}
        self._retired = JitterStats()  # stats of buffers dropped beyond MAX_SSRCS
        self._source: tuple[str, int] | None = None
        self._allowed = {pt for pt in (decoder.audio_pt, decoder.dtmf_pt) if pt is not None}
        self.remote: tuple[str | None, int] | None = None
        """Where the far end said its media comes from (the m-line's c= address and port)."""
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember our socket."""
        # The selector loop's datagram transport does not subclass DatagramTransport (3.11).
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Latch, filter, parse and buffer one datagram; never raises.

        The first source that sends is latched (symmetric RTP: a phone behind NAT never sends from
        the address its SDP names). The SDP's own address still wins when it sends later, so a
        stranger whose packets arrived first cannot keep the call's media.
        """
        relatch = False
        if self._source is not None and addr[:2] != self._source:
            if self.remote != (addr[0], addr[1]):
                self.stats.stray += 1
                return
            relatch = True
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self.stats.stray += 1
            return
        if packet.payload_type not in self._allowed:
            self.stats.stray += 1
            return
        if relatch:
            log.warning("leg %s: RTP from %s:%s, the address its SDP names, replaces %s:%s",
                        self.decoder.leg, addr[0], addr[1], *(self._source or ("?", 0)))
            self._source = None
        self._source = self._source or (addr[0], addr[1])
        self.stats.packets += 1
        now = self._clock()
        self.last_packet_at = now
        self.decoder.note_arrival(packet, now)
        self._deliver(self._buffer_for(packet.ssrc).push(packet, now))

    def renegotiate(self, choice: MediaChoice) -> None:
        """Apply a new offer for this m-line (re-INVITE, UPDATE): codec, payload types, source.

        When the far end moved its media (new c= address or m= port), the latch is reset, so
        the new source is accepted instead of being dropped as stray.
        """
        if choice.accepted:
            self.decoder.codec = choice.codec or self.decoder.codec
            self.decoder.audio_pt = choice.payload_type
            self.decoder.dtmf_pt = choice.dtmf_payload_type
            self._allowed = {
                pt for pt in (choice.payload_type, choice.dtmf_payload_type) if pt is not None
            }
        remote = (choice.media.address, choice.media.port)
        if self.remote is not None and remote != self.remote:
            log.info("RTP source of leg %s moved to %s:%s", self.decoder.leg, *remote)
            self._source = None
        self.remote = remote

    def poll(self) -> None:
        """Release packets whose gap waited long enough (called every few ms by the call)."""
        now = self._clock()
        for buffer in self._buffers.values():
            self._deliver(buffer.poll(now))

    def finish(self) -> list[Frame]:
        """Flush buffers and the decoder; close the socket. Returns the last frames."""
        frames: list[Frame] = []
        for buffer in self._buffers.values():
            frames += self._decode_all(buffer.flush())
        frames += self.decoder.finish(self._clock())
        self._sum_jitter_stats()
        if self.transport is not None:
            self.transport.close()
        return frames

    def _buffer_for(self, ssrc: int) -> JitterBuffer:
        """This SSRC's buffer, now the most recently heard; evicts the stalest beyond MAX_SSRCS."""
        buffer = self._buffers.pop(ssrc, None)  # re-inserted below: dict order is recency
        if buffer is None:
            buffer = JitterBuffer(max_delay=self._jitter_delay)
            if len(self._buffers) >= MAX_SSRCS:
                stale = next(iter(self._buffers))
                old = self._buffers.pop(stale)
                frames = self._decode_all(old.flush()) + self.decoder.forget(stale)
                _add_stats(self._retired, old.stats)
                if frames:
                    self._emit(frames)
        self._buffers[ssrc] = buffer
        return buffer

    def _deliver(self, packets: list[RtpPacket]) -> None:
        if packets:
            frames = self._decode_all(packets)
            if frames:
                self._emit(frames)

    def _decode_all(self, packets: list[RtpPacket]) -> list[Frame]:
        frames: list[Frame] = []
        for packet in packets:
            try:
                frames += self.decoder.decode(packet)
            except RtpParseError:
                self.stats.stray += 1  # e.g. a truncated telephone-event payload
        return frames

    def _sum_jitter_stats(self) -> None:
        total = JitterStats()
        for stats in (self._retired, *(buffer.stats for buffer in self._buffers.values())):
            _add_stats(total, stats)
        self.stats.jitter = total


def _add_stats(total: JitterStats, stats: JitterStats) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(stats, name))


async def open_receiver(
    host: str, port_range: tuple[int, int], factory: Callable[[], RtpReceiver]
) -> RtpReceiver:
    """Bind a receiver on a free even port in ``port_range`` ((0, 0): any free port).

    Raises:
        OSError: no port in the range could be bound.
    """
    loop = asyncio.get_running_loop()
    low, high = port_range
    candidates = [0] if low == 0 else _even_ports_from_random_start(low, high)
    last_error: OSError | None = None
    for port in candidates:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        _, protocol = await loop.create_datagram_endpoint(factory, sock=sock)
        return protocol
    raise OSError(f"no free RTP port in {low}-{high}") from last_error


def _even_ports_from_random_start(low: int, high: int) -> list[int]:
    ports = list(range(low + low % 2, high + 1, 2))
    start = random.randrange(len(ports)) if ports else 0
    return ports[start:] + ports[:start]
