"""A new RTP timestamp base on the same SSRC (RFC 3550 5.1: an SBC re-anchoring media, a switch of
media source) re-anchors the stream at its arrival, so the leg stays on the call clock; silence
suppression, jitter, a network stall and telephone events keep their timestamp timeline."""

from __future__ import annotations

import random

import numpy as np
import pytest

from telephony import codecs
from telephony.legs import LegAudio
from telephony.rtp import RtpPacket, TelephoneEvent
from telephony.sip import media
from telephony.sip.media import RtpReceiver, RtpStreamDecoder
from telephony.sip.sdp import MediaChoice, MediaDescription
from voice.frames import AudioFrame, DtmfFrame, Frame

pytestmark = pytest.mark.unit
SOURCE = ("127.0.0.1", 4000)
SSRC = 0xABC
PAYLOAD = codecs.encode("PCMU", np.full(160, 1000, dtype=np.int16))
Sent = tuple[float, RtpPacket]  # (arrival on the call clock, packet)


class Call:
    """One leg's receiver on a manual call clock (the leg's wall-clock bound reads it too)."""

    def __init__(self) -> None:
        self.now = 0.0
        description = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
        self.decoder = RtpStreamDecoder("customer", MediaChoice(0, description, "PCMU", 0, 101), 16000)
        self.decoder.audio = LegAudio("customer", 8000, 16000, clock=lambda: self.now)
        self.frames: list[Frame] = []
        self.rx = RtpReceiver(self.decoder, self.frames.extend, lambda: self.now, jitter_delay=0.06)

    def play(self, sent: list[Sent]) -> list[AudioFrame]:
        for arrival, packet in sorted(sent, key=lambda item: item[0]):
            self.now = arrival
            self.rx.datagram_received(packet.build(), SOURCE)
            self.rx.poll()
        self.now += 0.1
        self.rx.poll()
        self.frames += self.rx.finish()
        return [f for f in self.frames if isinstance(f, AudioFrame)]


def stream(seconds: float, *, start: float = 0.0, seq: int = 0, ts: int = 1000) -> list[Sent]:
    """20 ms packets sent in real time from ``start``, arriving 30 ms later."""
    return [(start + 0.03 + 0.02 * i, RtpPacket(0, (seq + i) & 0xFFFF, (ts + 160 * i) & 0xFFFFFFFF, SSRC, PAYLOAD))
            for i in range(round(seconds / 0.02))]


def end_and_largest_gap(audio: list[AudioFrame]) -> tuple[float, float]:
    gaps = [b.pts - (a.pts + a.duration) for a, b in zip(audio, audio[1:], strict=False)]
    return audio[-1].pts + audio[-1].duration, max(gaps, default=0.0)


def with_jitter(sent: list[Sent], spread: float) -> list[Sent]:
    rng = random.Random(7)
    return [(arrival + rng.uniform(0.0, spread), packet) for arrival, packet in sent]


@pytest.mark.parametrize("jump", [123_456_789, 0x80000000 - 160 * 1600, 8000 * 3])
def test_a_forward_timestamp_jump_on_the_same_ssrc_keeps_the_leg_on_the_call_clock(jump: int) -> None:
    call = Call()
    first, second = stream(30.0), stream(30.0, start=30.0, seq=1500, ts=1000 + 160 * 1500 + jump)
    second[0] = (second[0][0], RtpPacket(0, 1500, second[0][1].timestamp, SSRC, PAYLOAD, marker=True))
    audio = call.play(with_jitter(first + second, 0.04))
    end, gap = end_and_largest_gap(audio)
    # Read from the old origin, the second half sat `jump` ahead (up to the call's length: 35 s here).
    assert end == pytest.approx(60.03, abs=0.06) and gap < 0.05
    assert call.decoder.reanchors == 1


def test_a_backward_then_forward_jump_still_ends_on_the_call_clock() -> None:
    call = Call()
    back = stream(20.0, start=20.0, seq=1000, ts=10_000)  # 6,250 s back
    forward = stream(20.0, start=40.0, seq=2000, ts=10_000 + 160 * 1000 + 20_000)  # then 2.5 s forward
    sent = stream(20.0, ts=50_000_000) + back + forward
    end, gap = end_and_largest_gap(call.play(sent))
    assert end == pytest.approx(60.03, abs=0.06) and gap < 0.05


@pytest.mark.parametrize("silence", [5.0, 30.0])
def test_silence_suppression_keeps_its_gap(silence: float) -> None:
    call = Call()
    resumed = 10.0 + silence
    sent = stream(10.0) + stream(10.0, start=resumed, seq=500, ts=1000 + round(resumed * 8000))
    audio = call.play(with_jitter(sent, 0.04))
    end, _ = end_and_largest_gap(audio)
    talk = [f for f in audio if float(abs(f.pcm).max()) > 0]
    # The timeline starts at the first packet's arrival, which the jitter (up to 40 ms) moves.
    assert end == pytest.approx(resumed + 10.03, abs=0.045)
    assert min(f.pts for f in talk if f.pts > 10.1) == pytest.approx(resumed + 0.03, abs=0.045)
    assert call.decoder.reanchors == 0


def test_packets_held_up_by_a_network_stall_keep_their_timestamps() -> None:
    call = Call()
    sent = stream(20.0)
    sent = [(max(arrival, 12.0) if 10.0 <= arrival < 12.0 else arrival, packet) for arrival, packet in sent]
    end, gap = end_and_largest_gap(call.play(sent))  # 2 s of packets arrive at once, late
    assert end == pytest.approx(20.03, abs=0.01) and gap < 0.005
    assert call.decoder.reanchors == 0


def test_a_digit_sent_while_audio_goes_on_does_not_re_anchor_the_stream() -> None:
    call = Call()
    sent = stream(4.0)
    # RFC 4733: every packet of the event carries its start timestamp, interleaved with the audio.
    start_ts = sent[100][1].timestamp
    for n, i in enumerate(range(100, 110)):
        event = TelephoneEvent(event=7, end=n >= 7, volume=10, duration=160 * (n + 1)).build()
        sent.append((sent[i][0] + 0.001, RtpPacket(101, 0, start_ts, SSRC, event)))
    renumbered = sorted(sent, key=lambda item: item[0])
    sent = [(arrival, RtpPacket(p.payload_type, seq, p.timestamp, SSRC, p.payload))
            for seq, (arrival, p) in enumerate(renumbered)]
    audio = call.play(sent)
    [digit] = [f for f in call.frames if isinstance(f, DtmfFrame)]
    assert digit.digit == "7" and digit.audio_time == pytest.approx(2.03, abs=0.01)
    assert end_and_largest_gap(audio)[0] == pytest.approx(4.03, abs=0.01)
    assert call.decoder.reanchors == 0


def test_arrivals_of_packets_never_decoded_do_not_pile_up() -> None:
    call = Call()
    sent = stream(60.0)
    call.play(sent + [(arrival + 0.001, packet) for arrival, packet in sent])  # every packet twice
    assert call.rx.stats.jitter.duplicate == len(sent)
    assert len(call.decoder._arrivals) <= media.ARRIVALS_KEPT
