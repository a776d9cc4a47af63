"""Real captures (shared/data/telephony) through our parsers, jitter buffer, DTMF and decoders."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from telephony.rtp import DtmfDetector, JitterBuffer, RtpPacket
from telephony.sip.media import RtpStreamDecoder
from telephony.sip.message import parse_message
from telephony.sip.sdp import MediaChoice, MediaDescription, negotiate, parse_sdp
from tests.telephony.pcap import read_udp
from voice.frames import AudioFrame, DtmfFrame

pytestmark = pytest.mark.data
SIP_STARTS = (
    b"SIP/",
    b"INVI",
    b"ACK ",
    b"BYE ",
    b"REGI",
    b"CANC",
    b"OPTI",
    b"INFO",
    b"PRAC",
    b"SUBS",
)


@pytest.fixture(scope="module")
def captures(shared_data: Path) -> Path:
    return shared_data / "telephony"


def rtp_streams(path: Path) -> dict[tuple, list[tuple[float, RtpPacket]]]:
    streams: dict[tuple, list] = defaultdict(list)
    for datagram in read_udp(path):
        if (
            datagram.payload[:4] in SIP_STARTS
            or len(datagram.payload) < 12
            or datagram.payload[0] >> 6 != 2
        ):
            continue
        packet = RtpPacket.parse(datagram.payload)
        streams[(datagram.src, datagram.dst, packet.ssrc)].append((datagram.time, packet))
    return streams


def decode_stream(
    packets: list[tuple[float, RtpPacket]],
    codec: str,
    pt: int,
    dtmf_pt: int | None = None,
    rate: int = 8000,
) -> tuple[list, JitterBuffer]:
    """Play captured packets through the jitter buffer (capture clock) and the RTP decoder."""
    media = MediaDescription("audio", 1, "RTP/AVP", [str(pt)])
    decoder = RtpStreamDecoder("leg", MediaChoice(0, media, codec, pt, dtmf_pt), rate)
    buffer, frames, start = JitterBuffer(max_delay=0.06), [], packets[0][0]
    for time, packet in packets:
        decoder.note_arrival(packet, time - start)
        for released in buffer.push(packet, time - start):
            frames += decoder.decode(released)
    for released in buffer.flush():
        frames += decoder.decode(released)
    return frames + decoder.finish(packets[-1][0] - start), buffer


def audio_of(frames: list) -> np.ndarray:
    return np.concatenate([f.pcm for f in frames if isinstance(f, AudioFrame)])


def test_sipp_g711a_capture_decodes_to_7_08_seconds(captures: Path) -> None:
    (packets,) = rtp_streams(captures / "sipp" / "g711a.pcap").values()
    assert len(packets) == 236 and {p.payload_type for _, p in packets} == {8}
    frames, buffer = decode_stream(packets, "PCMA", 8)
    audio = audio_of(frames)
    assert len(audio) == 236 * 240 == 56640  # 30 ms packets, nothing lost, nothing invented
    assert buffer.stats.lost == buffer.stats.late == 0
    assert 1800 < np.sqrt(np.mean(audio.astype(float) ** 2)) < 2000  # 1906 measured with audioop


@pytest.mark.parametrize("name", ["0", "1", "5", "9", "star", "pound"])
def test_sipp_dtmf_captures_give_exactly_one_digit(captures: Path, name: str) -> None:
    (packets,) = rtp_streams(captures / "sipp" / f"dtmf_2833_{name}.pcap").values()
    frames, _ = decode_stream(packets, "PCMA", 8, dtmf_pt=101)
    digits = [f.digit for f in frames if isinstance(f, DtmfFrame)]
    assert digits == [{"star": "*", "pound": "#"}.get(name, name)]


def test_linux_cooked_capture_with_pcmu_speech(captures: Path) -> None:
    (packets,) = rtp_streams(captures / "sipnab_rtp_only" / "speech_8k_ulaw.pcap").values()
    frames, buffer = decode_stream(packets, "PCMU", 0, rate=16000)
    assert len(packets) == 835 and buffer.stats.lost == 0
    assert len(audio_of(frames)) / 16000 == pytest.approx(835 * 0.02, abs=0.01)


def test_capture_with_loss_is_counted_and_filled(captures: Path) -> None:
    streams = rtp_streams(captures / "wireshark_samples" / "Asterisk_ZFONE_XLITE.pcap")
    packets = max(streams.values(), key=len)
    assert len(packets) == 790
    frames, buffer = decode_stream(packets, "PCMU", 0)
    span = packets[-1][1].sequence - packets[0][1].sequence + 1
    assert buffer.stats.released == 790 and buffer.stats.lost == span - 790 == 1
    first_ts, last_ts = packets[0][1].timestamp, packets[-1][1].timestamp
    expected = (last_ts - first_ts) / 8000 + len(packets[-1][1].payload) / 8000
    assert len(audio_of(frames)) / 8000 == pytest.approx(expected, abs=0.001)  # loss became silence


def test_dtmf_on_a_dynamic_payload_type(captures: Path) -> None:
    streams = rtp_streams(captures / "wireshark_samples" / "SIP_DTMF2.pcap")
    packets = next(v for v in streams.values() if any(p.payload_type == 96 for _, p in v))
    detector, digits = DtmfDetector(), []
    for _, packet in packets:
        if packet.payload_type == 96:
            digits += [d for d, _ in detector.push(packet)]
    assert "".join(digits + [d for d, _ in detector.flush()]) == "6789123"


@pytest.mark.parametrize(
    ("capture", "methods"),
    [
        ("SIP_CALL_RTP_G711.pcap", {"REGISTER", "INVITE", "ACK"}),
        ("Asterisk_ZFONE_XLITE.pcap", {"REGISTER", "SUBSCRIBE", "INVITE", "OPTIONS", "BYE"}),
        ("rtp-protocol.pcap", {"INVITE", "PRACK", "ACK", "BYE"}),
        ("aaa.pcap", {"REGISTER", "INVITE", "CANCEL", "ACK"}),
    ],
)
def test_every_captured_sip_message_parses(captures: Path, capture: str, methods: set[str]) -> None:
    seen: Counter[str] = Counter()
    for datagram in read_udp(captures / "wireshark_samples" / capture):
        if 5060 not in (datagram.src[1], datagram.dst[1]) or not datagram.payload.strip():
            continue  # aaa.pcap has whitespace keep-alives, which the server ignores too
        message = parse_message(datagram.payload)
        seen[message.method or str(message.status)] += 1
    assert methods <= set(seen)


@pytest.mark.parametrize(
    ("capture", "codecs"),
    [
        ("SIP_CALL_RTP_G711.pcap", ["PCMA"]),  # offer: PCMA, G729, G723, PCMU
        ("sip-rtp-g711.pcap", ["PCMU", "PCMA"]),  # two calls
        ("Asterisk_ZFONE_XLITE.pcap", ["PCMU"]),
    ],
)
def test_captured_offers_negotiate(captures: Path, capture: str, codecs: list[str]) -> None:
    chosen = []
    for datagram in read_udp(captures / "wireshark_samples" / capture):
        if datagram.payload.startswith(b"INVITE"):
            message = parse_message(datagram.payload)
            if message.body:
                chosen.append(negotiate(parse_sdp(message.body))[0].codec)
    assert sorted(set(chosen)) == sorted(codecs)
